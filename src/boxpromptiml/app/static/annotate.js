// Annotate: draw boxes on the dataset's images, see the teacher's pseudo mask, save to the COCO box file.
"use strict";

import {$, api, grayValues, loadImage, overlayCanvas, postJSON} from "./common.js";

const HANDLE = 8;  // corner handle radius, in screen pixels
const CONFIRM_MS = 500;  // a second Enter for "no box on a tampered image" must come this much later
const MAX_ZOOM = 8;

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

  // the pseudo mask as a green layer at the chosen opacity (rebuilt only when the mask or opacity changes)
  mask() {
    if (!this.maskGray || !$("show-mask").checked) return null;
    const opacity = parseFloat($("mask-opacity").value);
    if (!this.maskLayer || this.maskLayer.opacity !== opacity) {
      const {naturalWidth: width, naturalHeight: height} = this.image;
      this.maskLayer = {opacity, canvas: overlayCanvas(this.maskGray, width, height,
                                                       {mode: "soft", color: [0, 200, 80], opacity})};
    }
    return this.maskLayer.canvas;
  },

  draw() {
    const canvas = $("annotate-canvas");
    const ctx = canvas.getContext("2d");
    if (!this.image) return;
    ctx.drawImage(this.image, 0, 0);
    const mask = this.mask();
    if (mask) ctx.drawImage(mask, 0, 0);
    const ratio = canvas.width / canvas.getBoundingClientRect().width || 1;
    this.boxes.forEach((box, i) => {
      const [x1, y1, x2, y2] = box.map((v) => v * this.scale);
      ctx.lineWidth = 2 * ratio;
      ctx.strokeStyle = i === this.selected ? "#ffcc00" : "#00a0ff";
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      ctx.fillStyle = ctx.strokeStyle;
      const r = 4 * ratio;
      for (const [hx, hy] of [[x1, y1], [x2, y1], [x1, y2], [x2, y2]]) ctx.fillRect(hx - r, hy - r, 2 * r, 2 * r);
    });
    if (this.drag && this.drag.mode === "draw") {
      const d = this.drag;
      ctx.setLineDash([6 * ratio, 4 * ratio]);
      ctx.strokeStyle = "#00a0ff";
      ctx.strokeRect(d.x0, d.y0, d.x - d.x0, d.y - d.y0);
      ctx.setLineDash([]);
    }
  },

  // -- zoom and pan: the canvas is shown at the stage's fitting size times ``zoom``; the stage scrolls
  fitSize() {
    const stage = $("annotate-stage");
    const maxWidth = stage.clientWidth - 4, maxHeight = Math.max(200, window.innerHeight * 0.72);
    const fit = Math.min(maxWidth / this.image.naturalWidth, maxHeight / this.image.naturalHeight);
    return {width: this.image.naturalWidth * fit, height: this.image.naturalHeight * fit};
  },

  fit() { this.zoom = 1; this.applyZoom(); },

  applyZoom(anchor) {
    if (!this.image) return;
    const stage = $("annotate-stage"), canvas = $("annotate-canvas");
    const before = canvas.getBoundingClientRect();
    const {width, height} = this.fitSize();
    canvas.style.width = `${width * this.zoom}px`;
    canvas.style.height = `${height * this.zoom}px`;
    if (anchor) {  // keep the image point under the cursor where it was
      const fx = (anchor.clientX - before.left) / before.width, fy = (anchor.clientY - before.top) / before.height;
      const after = canvas.getBoundingClientRect();
      stage.scrollLeft += after.left + fx * after.width - anchor.clientX;
      stage.scrollTop += after.top + fy * after.height - anchor.clientY;
    }
    $("zoom-value").textContent = `${Math.round(this.zoom * 100)}%`;
    this.draw();
  },

  wheel(event) {
    if (!this.image) return;
    event.preventDefault();
    this.zoom = Math.min(MAX_ZOOM, Math.max(1, this.zoom * (event.deltaY < 0 ? 1.25 : 0.8)));
    this.applyZoom(event);
  },

  // canvas pixel of a mouse event, and the canvas pixels per screen pixel
  point(event) {
    const canvas = $("annotate-canvas");
    const rect = canvas.getBoundingClientRect();
    const ratio = canvas.width / rect.width;
    return {x: (event.clientX - rect.left) * ratio, y: (event.clientY - rect.top) * (canvas.height / rect.height),
            ratio};
  },

  hit(p) {
    const reach = HANDLE * p.ratio;
    for (let i = this.boxes.length - 1; i >= 0; i--) {
      const [x1, y1, x2, y2] = this.boxes[i].map((v) => v * this.scale);
      const corners = [[x1, y1], [x2, y1], [x1, y2], [x2, y2]];
      for (let c = 0; c < 4; c++) {
        if (Math.abs(p.x - corners[c][0]) <= reach && Math.abs(p.y - corners[c][1]) <= reach) {
          return {index: i, mode: "resize", corner: c};
        }
      }
      if (p.x >= x1 && p.x <= x2 && p.y >= y1 && p.y <= y2) return {index: i, mode: "move"};
    }
    return null;
  },

  mouseDown(event) {
    if (!this.image) return;
    if (event.button === 1 || event.shiftKey) {  // pan: middle button, or Shift + drag
      event.preventDefault();
      const stage = $("annotate-stage");
      this.drag = {mode: "pan", x0: event.clientX, y0: event.clientY, left: stage.scrollLeft, top: stage.scrollTop};
      return;
    }
    const p = this.point(event);
    const hit = event.altKey ? null : this.hit(p);  // Alt + drag draws, also inside another box
    if (hit) {
      this.selected = hit.index;
      this.drag = {...hit, x0: p.x, y0: p.y, x: p.x, y: p.y, before: JSON.stringify(this.boxes),
                   original: this.boxes[hit.index].slice()};
    } else {
      this.selected = -1;
      this.drag = {mode: "draw", x0: p.x, y0: p.y, x: p.x, y: p.y};
    }
    this.draw();
  },

  mouseMove(event) {
    if (!this.drag) return;
    const d = this.drag;
    if (d.mode === "pan") {
      const stage = $("annotate-stage");
      stage.scrollLeft = d.left - (event.clientX - d.x0);
      stage.scrollTop = d.top - (event.clientY - d.y0);
      return;
    }
    const p = this.point(event);
    d.x = p.x; d.y = p.y;
    const clampX = (v) => Math.min(Math.max(v, 0), this.width), clampY = (v) => Math.min(Math.max(v, 0), this.height);
    if (d.mode === "move") {
      const [x1, y1, x2, y2] = d.original;
      const dx = Math.min(Math.max((p.x - d.x0) / this.scale, -x1), this.width - x2);
      const dy = Math.min(Math.max((p.y - d.y0) / this.scale, -y1), this.height - y2);
      this.boxes[d.index] = [x1 + dx, y1 + dy, x2 + dx, y2 + dy];
    } else if (d.mode === "resize") {
      const box = d.original.slice();
      const x = clampX(p.x / this.scale), y = clampY(p.y / this.scale);
      if (d.corner === 0 || d.corner === 2) box[0] = x; else box[2] = x;
      if (d.corner === 0 || d.corner === 1) box[1] = y; else box[3] = y;
      this.boxes[d.index] = [Math.min(box[0], box[2]), Math.min(box[1], box[3]),
                             Math.max(box[0], box[2]), Math.max(box[1], box[3])];
    }
    this.draw();
  },

  mouseUp(event) {
    if (!this.drag) return;
    const d = this.drag;
    this.drag = null;
    if (d.mode === "pan") return;
    if (d.mode === "draw") {
      const p = this.point(event);
      const x1 = Math.min(d.x0, p.x) / this.scale, x2 = Math.max(d.x0, p.x) / this.scale;
      const y1 = Math.min(d.y0, p.y) / this.scale, y2 = Math.max(d.y0, p.y) / this.scale;
      const clampX = (v) => Math.min(Math.max(v, 0), this.width), clampY = (v) => Math.min(Math.max(v, 0), this.height);
      const box = [clampX(x1), clampY(y1), clampX(x2), clampY(y2)];
      if ((box[2] - box[0]) * this.scale / p.ratio < 4 || (box[3] - box[1]) * this.scale / p.ratio < 4) {
        this.draw();
        return;
      }
      this.change(() => { this.boxes.push(box); this.selected = this.boxes.length - 1; });
    } else if (JSON.stringify(this.boxes) !== d.before) {
      const after = this.boxes[d.index];
      this.boxes = JSON.parse(d.before);
      this.change(() => { this.boxes[d.index] = after; });
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

export function showStats(stats) {
  if (!stats) return;
  const mean = stats.mean_seconds === null ? "–" : `${stats.mean_seconds.toFixed(1)} s`;
  $("stats").textContent = `${stats.accepted} / ${stats.images} images done; mean time per image ${mean} ` +
    `(${stats.timed} timed)`;
}
