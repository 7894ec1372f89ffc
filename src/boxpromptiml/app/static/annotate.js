// Annotate: draw boxes on the dataset's images, see the teacher's pseudo mask, save to the COCO box file.
"use strict";

import {boxCanvas, MAX_ZOOM} from "./boxcanvas.js";
import {$, api, grayValues, loadImage, postJSON} from "./common.js";

const CONFIRM_MS = 500;  // a second Enter for "no box on a tampered image" must come this much later

export const annotate = {
  rows: [], names: [], name: null, width: 0, height: 0, scale: 1, image: null,
  boxes: [], selected: -1, undoStack: [], drag: null, dirty: false, busy: false,
  maskGray: null, maskLayer: null, requestSeq: 0, openSeq: 0, emptyArmed: null,
  zoom: 1, openedAt: 0, hiddenSince: null, hiddenMs: 0,

  row(name) { return this.rows.find((r) => r.name === name); },

  setStatus(text, busy = false) {
    $("annotate-status").textContent = text;
    $("annotate-status").classList.toggle("busy", busy);
  },

  // the go-to list: every image, marked done (✓), not done (·) or unreadable (⚠)
  fillGoTo() {
    const select = $("goto");
    select.replaceChildren();
    this.names.map((name) => this.row(name)).forEach((row, i) => {
      const option = document.createElement("option");
      option.value = row.name;
      const mark = row.unreadable ? "⚠" : row.accepted ? "✓" : "·";
      option.textContent = `${mark} ${i + 1}. ${row.name}${row.tampered ? "" : " (authentic)"}`;
      select.appendChild(option);
    });
    if (this.name) select.value = this.name;
  },

  async open(name) {
    if (!name) name = this.names[0];
    if (!name) return;
    const seq = ++this.openSeq;  // only the latest open() may change the page (a slow one may finish last)
    this.busy = true;
    this.name = name;
    this.emptyArmed = null;
    const index = this.names.indexOf(name);
    $("goto").value = name;
    try {
      const entry = await (await api(`/api/annotate?name=${encodeURIComponent(name)}`)).json();
      const image = await loadImage(`/api/dataset/image?name=${encodeURIComponent(name)}`);
      if (seq !== this.openSeq) return;
      Object.assign(this, {width: entry.width, height: entry.height, image, boxes: entry.boxes,
                           selected: -1, undoStack: [], dirty: false, maskGray: null, maskLayer: null});
      this.scale = image.naturalWidth / entry.width;
      this.openedAt = performance.now(); this.hiddenMs = 0;
      this.hiddenSince = document.hidden ? performance.now() : null;
      const canvas = $("annotate-canvas");
      canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
      canvas.dataset.maskReady = "0";
      canvas.classList.remove("hidden");
      $("annotate-error").classList.add("hidden");
      $("image-name").textContent = `${index + 1} / ${this.names.length}: ${name}` +
        (entry.accepted ? ` (saved, ${entry.boxes.length} box${entry.boxes.length === 1 ? "" : "es"})` : "");
      this.fit();
      this.draw();
      postJSON("/api/annotate/prefetch", {names: [name, this.names[index + 1]].filter(Boolean)})
        .catch(() => { /* only a speed-up */ });
      if (this.boxes.length) this.requestPseudo();
    } catch (error) {
      if (seq !== this.openSeq) return;
      // one unreadable image must not block the others: say why, keep Next / Prev / the list working
      Object.assign(this, {image: null, boxes: [], selected: -1, dirty: false, maskGray: null, maskLayer: null});
      const row = this.row(name);
      if (row) { row.unreadable = true; this.fillGoTo(); }
      $("image-name").textContent = `${index + 1} / ${this.names.length}: ${name}`;
      $("annotate-canvas").classList.add("hidden");
      $("annotate-error").textContent = `cannot open ${name}: ${error.message}. Next (n) goes on to the next image.`;
      $("annotate-error").classList.remove("hidden");
      this.setStatus(`error: ${error.message}`);
    } finally {
      if (seq === this.openSeq) this.busy = false;
    }
  },

  seconds() {
    const hidden = this.hiddenMs + (this.hiddenSince === null ? 0 : performance.now() - this.hiddenSince);
    return Math.max(0, (performance.now() - this.openedAt - hidden) / 1000);
  },

  async save() {
    const body = {name: this.name, boxes: this.boxes, seconds: this.seconds()};
    const result = await (await postJSON("/api/annotate/save", body)).json();
    this.dirty = false;
    this.openedAt = performance.now(); this.hiddenMs = 0;
    showStats(result.stats);
    const row = this.row(this.name);
    if (row) { row.accepted = true; row.boxes = result.saved.boxes.length; this.fillGoTo(); }
    this.setStatus(`saved ${this.name}: ${result.saved.boxes.length} box(es)`);
  },

  async step(delta) {
    if (this.busy) return;
    if (this.dirty && this.image) await this.save();
    const row = this.names.indexOf(this.name) + delta;
    if (row >= 0 && row < this.names.length) await this.open(this.names[row]);
  },

  // Save and go on. A tampered image with no box needs a deliberate second Enter (not a bounce of the first).
  async accept() {
    if (this.busy || !this.image) return;
    const row = this.row(this.name);
    if (row && row.tampered && !this.boxes.length) {
      const armed = this.emptyArmed;
      if (!armed || armed.name !== this.name || performance.now() - armed.at < CONFIRM_MS) {
        if (!armed || armed.name !== this.name) this.emptyArmed = {name: this.name, at: performance.now()};
        this.setStatus("this image is listed as tampered and has no box: press Enter (or Accept) again to save " +
                       "it without one");
        $("annotate-status").classList.add("warning");
        return;
      }
    }
    this.emptyArmed = null;
    $("annotate-status").classList.remove("warning");
    this.busy = true;
    try {
      await this.save();
      const index = this.names.indexOf(this.name);
      this.busy = false;
      if (index + 1 < this.names.length) await this.open(this.names[index + 1]);
    } catch (error) {
      this.setStatus(`error: ${error.message}`);
    } finally {
      this.busy = false;
    }
  },

  change(mutate) {
    this.undoStack.push(JSON.stringify(this.boxes));
    mutate();
    this.dirty = true;
    this.emptyArmed = null;
    this.draw();
    this.requestPseudo();
  },

  undo() {
    if (!this.undoStack.length) return;
    this.boxes = JSON.parse(this.undoStack.pop());
    this.selected = -1;
    this.dirty = true;
    this.draw();
    this.requestPseudo();
  },

  deleteSelected() {
    if (this.selected < 0) return;
    const index = this.selected;
    this.selected = -1;
    this.change(() => this.boxes.splice(index, 1));
  },

  async propose() {
    if (!this.image) return;
    this.setStatus("asking the student for boxes…", true);
    try {
      const result = await (await api(`/api/annotate/proposals?name=${encodeURIComponent(this.name)}`)).json();
      this.change(() => { this.boxes = this.boxes.concat(result.boxes); });
      this.setStatus(`the ${result.model === "shipped" ? "server's" : "adapted"} model proposed ` +
                     `${result.boxes.length} box(es) (image score ${result.score.toFixed(2)})`);
    } catch (error) {
      this.setStatus(`error: ${error.message}`);
    }
  },

  async requestPseudo() {
    const seq = ++this.requestSeq;
    const canvas = $("annotate-canvas");
    canvas.dataset.maskReady = "0";
    if (!this.boxes.length) { this.maskGray = null; this.maskLayer = null; this.draw(); return; }
    const started = performance.now();
    this.setStatus("the teacher is working on the pseudo mask…", true);
    try {
      const response = await postJSON("/api/annotate/pseudo", {name: this.name, boxes: this.boxes});
      const url = URL.createObjectURL(await response.blob());
      const maskImage = await loadImage(url);
      URL.revokeObjectURL(url);
      if (seq !== this.requestSeq) return;  // a newer change is on its way
      this.maskGray = grayValues(maskImage, this.image.naturalWidth, this.image.naturalHeight);
      this.maskLayer = null;
      this.draw();
      const elapsed = performance.now() - started;
      canvas.dataset.maskReady = "1";
      canvas.dataset.maskMs = elapsed.toFixed(0);
      this.setStatus(`pseudo mask in ${elapsed.toFixed(0)} ms (teacher ${response.headers.get("X-Elapsed-Ms")} ms)`);
    } catch (error) {
      if (seq === this.requestSeq) this.setStatus(`error: ${error.message}`);
    }
  },

  toggleHelp() { $("help").classList.toggle("hidden"); },

  // the order Next / Prev and the go-to list follow: the dataset's, or what teaches most (app/ordering.py)
  async setOrder(by) {
    try {
      for (;;) {
        const order = await (await api(`/api/annotate/order?by=${encodeURIComponent(by)}`)).json();
        if ($("order").value !== by) return;  // another order was chosen meanwhile
        if (order.ready) {
          this.names = order.names;
          this.fillGoTo();
          const done = by === "dataset" ? "" : ` (${order.model} model; the first is the one to annotate next)`;
          this.setStatus(`order: ${by}${done}`);
          if (by !== "dataset") await this.open(this.names.find((n) => !this.row(n).accepted) || this.names[0]);
          return;
        }
        this.setStatus(`scoring the images for the ${by} order: ${order.scored} of ${order.total}…`, true);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    } catch (error) {
      this.setStatus(`order: ${error.message}`);
      $("order").value = "dataset";
    }
  },

  bind() {
    const canvas = $("annotate-canvas");
    canvas.addEventListener("mousedown", (e) => this.mouseDown(e));
    window.addEventListener("mousemove", (e) => this.mouseMove(e));
    window.addEventListener("mouseup", (e) => this.mouseUp(e));
    $("annotate-stage").addEventListener("wheel", (e) => this.wheel(e), {passive: false});
    window.addEventListener("resize", () => this.applyZoom());
    $("prev").addEventListener("click", () => this.step(-1));
    $("next").addEventListener("click", () => this.step(1));
    $("undo").addEventListener("click", () => this.undo());
    $("delete").addEventListener("click", () => this.deleteSelected());
    $("accept").addEventListener("click", () => this.accept());
    $("propose").addEventListener("click", () => this.propose());
    $("fit").addEventListener("click", () => this.fit());
    $("help-button").addEventListener("click", () => this.toggleHelp());
    $("help").addEventListener("click", () => this.toggleHelp());
    $("goto").addEventListener("change", async (e) => {
      if (this.dirty && this.image) await this.save();
      this.open(e.target.value);
    });
    for (const id of ["show-mask", "mask-opacity"]) $(id).addEventListener("input", () => this.draw());
    $("order").addEventListener("change", (e) => this.setOrder(e.target.value));
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) this.hiddenSince = performance.now();
      else if (this.hiddenSince !== null) { this.hiddenMs += performance.now() - this.hiddenSince; this.hiddenSince = null; }
    });
    window.addEventListener("beforeunload", (e) => { if (this.dirty) { e.preventDefault(); e.returnValue = ""; } });
    document.addEventListener("keydown", (e) => {
      if ($("view-annotate").classList.contains("hidden") || ["INPUT", "SELECT"].includes(e.target.tagName)) return;
      if (e.repeat && e.key === "Enter") { e.preventDefault(); return; }  // a held key is not a second Enter
      if (e.key === "n" || e.key === "ArrowRight") this.step(1);
      else if (e.key === "p" || e.key === "ArrowLeft") this.step(-1);
      else if (e.key === "Delete" || e.key === "Backspace") this.deleteSelected();
      else if (e.key === "u" || (e.key === "z" && (e.ctrlKey || e.metaKey))) this.undo();
      else if (e.key === "Enter") this.accept();
      else if (e.key === "b") this.propose();
      else if (e.key === "m") { $("show-mask").checked = !$("show-mask").checked; this.draw(); }
      else if (e.key === "0") this.fit();
      else if (e.key === "+" || e.key === "=") { this.zoom = Math.min(MAX_ZOOM, this.zoom * 1.25); this.applyZoom(); }
      else if (e.key === "-") { this.zoom = Math.max(1, this.zoom * 0.8); this.applyZoom(); }
      else if (e.key === "?" || e.key === "h") this.toggleHelp();
      else if (e.key === "Escape") $("help").classList.add("hidden");
      else return;
      e.preventDefault();
    });
  },
};

// drawing, zoom and pan, and the mouse: the canvas half of Annotate (boxcanvas.js)
Object.assign(annotate, boxCanvas);

export function showStats(stats) {
  if (!stats) return;
  const mean = stats.mean_seconds === null ? "–" : `${stats.mean_seconds.toFixed(1)} s`;
  $("stats").textContent = `${stats.accepted} / ${stats.images} images done; mean time per image ${mean} ` +
    `(${stats.timed} timed)`;
}
