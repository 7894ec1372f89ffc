// BoxPromptIML web app: Inspect (heat map of a photo) and Annotate (boxes -> teacher pseudo masks).
// Plain JavaScript and canvases; every model call goes to the server's JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;

async function api(path, options) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response;
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("cannot load " + url));
    image.src = url;
  });
}

// Gray values (0..255) of an image, one per pixel, at the given size.
function grayValues(image, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0, width, height);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const gray = new Uint8ClampedArray(width * height);
  for (let i = 0; i < gray.length; i++) gray[i] = rgba[4 * i];
  return gray;
}

// A canvas holding a coloured overlay of gray values: alpha = value (heat) or value > threshold (mask).
function overlayCanvas(gray, width, height, color, opacity, threshold) {
  const canvas = document.createElement("canvas");
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext("2d");
  const out = ctx.createImageData(width, height);
  const cut = threshold === null ? -1 : threshold * 255;
  for (let i = 0; i < gray.length; i++) {
    const alpha = cut < 0 ? gray[i] * opacity : (gray[i] > cut ? 255 * opacity : 0);
    out.data[4 * i] = color[0]; out.data[4 * i + 1] = color[1]; out.data[4 * i + 2] = color[2];
    out.data[4 * i + 3] = alpha;
  }
  ctx.putImageData(out, 0, 0);
  return canvas;
}

function showView(view) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === view);
  $("view-inspect").classList.toggle("hidden", view !== "inspect");
  $("view-annotate").classList.toggle("hidden", view !== "annotate");
  if (view === "annotate" && info && info.annotate && annotate.name === null) annotate.open(info.first_to_do);
}

// ---------------------------------------------------------------------------------------------- Inspect
const inspect = {
  result: null, image: null, gray: null,

  async analyse(request, label) {
    $("inspect-status").textContent = `analysing ${label}…`;
    $("verdict").textContent = "";
    $("inspect-canvas").dataset.rendered = "0";
    const started = performance.now();
    try {
      const result = await (await api(request.url, request.options)).json();
      const image = await loadImage(`/api/inspect/${result.id}/image`);
      const map = await loadImage(`/api/inspect/${result.id}/map.png`);
      this.result = result; this.image = image;
      this.gray = grayValues(map, image.naturalWidth, image.naturalHeight);
      $("drop-hint").classList.add("hidden");
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      $("inspect-status").textContent = `${result.name}: ${result.width} x ${result.height}, analysed in ${seconds} s`;
      $("verdict").textContent = result.verdict;
      $("verdict").classList.toggle("tampered", result.tampered === true);
      this.render();
    } catch (error) {
      $("inspect-status").textContent = `error: ${error.message}`;
    }
  },

  render() {
    if (!this.result) return;
    const canvas = $("inspect-canvas");
    const width = this.image.naturalWidth, height = this.image.naturalHeight;
    canvas.width = width; canvas.height = height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(this.image, 0, 0);
    const mode = $("inspect-mode").value;
    const opacity = parseFloat($("opacity").value), threshold = parseFloat($("threshold").value);
    const color = mode === "heat" ? [255, 0, 0] : [255, 0, 255];
    ctx.drawImage(overlayCanvas(this.gray, width, height, color, opacity, mode === "heat" ? null : threshold), 0, 0);
    canvas.dataset.rendered = "1";
    const id = this.result.id;
    for (const [link, href] of [["download-map", `/api/inspect/${id}/map.png?full=true`],
                                ["download-mask", `/api/inspect/${id}/mask.png?threshold=${threshold}`],
                                ["download-report", `/api/inspect/${id}/report.html?threshold=${threshold}`]]) {
      $(link).href = href;
      $(link).classList.remove("disabled");
    }
  },

  upload(file) {
    if (!file) return;
    if (info && file.size > info.max_upload_mb * 1024 * 1024) {
      $("inspect-status").textContent = `error: ${file.name} is over the server's limit of ${info.max_upload_mb} MB`;
      return;
    }
    const form = new FormData();
    form.append("file", file);
    this.analyse({url: "/api/inspect", options: {method: "POST", body: form}}, file.name);
  },
};

$("file-input").addEventListener("change", (e) => inspect.upload(e.target.files[0]));
$("dataset-pick").addEventListener("change", (e) => {
  if (e.target.value) {
    inspect.analyse({url: `/api/inspect/dataset?name=${encodeURIComponent(e.target.value)}`,
                     options: {method: "POST"}}, e.target.value);
  }
});
for (const id of ["inspect-mode", "opacity", "threshold"]) {
  $(id).addEventListener("input", () => {
    $("threshold-value").textContent = parseFloat($("threshold").value).toFixed(2);
    inspect.render();
  });
}
const dropZone = $("drop-zone");
dropZone.addEventListener("dragover", (e) => { e.preventDefault(); dropZone.classList.add("dragover"); });
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragover"));
dropZone.addEventListener("drop", (e) => {
  e.preventDefault();
  dropZone.classList.remove("dragover");
  inspect.upload(e.dataTransfer.files[0]);
});

// --------------------------------------------------------------------------------------------- Annotate
const HANDLE = 8;  // corner handle radius, in screen pixels
const annotate = {
  names: [], name: null, width: 0, height: 0, scale: 1, image: null,
  boxes: [], selected: -1, undoStack: [], drag: null, dirty: false,
  mask: null, maskSeq: 0, requestSeq: 0,
  openedAt: 0, hiddenSince: null, hiddenMs: 0,

  async open(name) {
    if (!name) name = this.names[0];
    if (!name) return;
    const entry = await (await api(`/api/annotate?name=${encodeURIComponent(name)}`)).json();
    const image = await loadImage(`/api/dataset/image?name=${encodeURIComponent(name)}`);
    Object.assign(this, {name, width: entry.width, height: entry.height, image, boxes: entry.boxes,
                         selected: -1, undoStack: [], dirty: false, mask: null});
    this.scale = image.naturalWidth / entry.width;
    this.openedAt = performance.now(); this.hiddenMs = 0;
    this.hiddenSince = document.hidden ? performance.now() : null;
    const canvas = $("annotate-canvas");
    canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
    canvas.dataset.maskReady = "0";
    $("image-name").textContent = `${entry.index + 1} / ${entry.count}: ${name}` +
      (entry.accepted ? ` (saved, ${entry.boxes.length} box${entry.boxes.length === 1 ? "" : "es"})` : "");
    this.draw();
    if (this.boxes.length) this.requestPseudo();
  },

  seconds() {
    const hidden = this.hiddenMs + (this.hiddenSince === null ? 0 : performance.now() - this.hiddenSince);
    return Math.max(0, (performance.now() - this.openedAt - hidden) / 1000);
  },

  async save() {
    const body = {name: this.name, boxes: this.boxes, seconds: this.seconds()};
    const result = await (await api("/api/annotate/save", {method: "POST", headers: {"Content-Type": "application/json"},
                                                           body: JSON.stringify(body)})).json();
    this.dirty = false;
    this.openedAt = performance.now(); this.hiddenMs = 0;
    showStats(result.stats);
    $("annotate-status").textContent = `saved ${this.name}: ${result.saved.boxes.length} box(es)`;
    const row = this.names.indexOf(this.name);
    return row;
  },

  async step(delta) {
    if (this.dirty) await this.save();
    const row = this.names.indexOf(this.name) + delta;
    if (row >= 0 && row < this.names.length) await this.open(this.names[row]);
  },

  async accept() {
    try {
      await this.save();
      const row = this.names.indexOf(this.name);
      if (row + 1 < this.names.length) await this.open(this.names[row + 1]);
    } catch (error) {
      $("annotate-status").textContent = `error: ${error.message}`;
    }
  },

  change(mutate) {
    this.undoStack.push(JSON.stringify(this.boxes));
    mutate();
    this.dirty = true;
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
    $("annotate-status").textContent = "asking the student for boxes…";
    try {
      const result = await (await api(`/api/annotate/proposals?name=${encodeURIComponent(this.name)}`)).json();
      this.change(() => { this.boxes = this.boxes.concat(result.boxes); });
      $("annotate-status").textContent = `the student proposed ${result.boxes.length} box(es) ` +
        `(image score ${result.score.toFixed(2)})`;
    } catch (error) {
      $("annotate-status").textContent = `error: ${error.message}`;
    }
  },

  async requestPseudo() {
    const seq = ++this.requestSeq;
    const canvas = $("annotate-canvas");
    canvas.dataset.maskReady = "0";
    if (!this.boxes.length) { this.mask = null; this.draw(); return; }
    const started = performance.now();
    try {
      const response = await api("/api/annotate/pseudo", {method: "POST", headers: {"Content-Type": "application/json"},
                                                          body: JSON.stringify({name: this.name, boxes: this.boxes})});
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const maskImage = await loadImage(url);
      URL.revokeObjectURL(url);
      if (seq !== this.requestSeq) return;  // a newer change is on its way
      const width = this.image.naturalWidth, height = this.image.naturalHeight;
      this.mask = overlayCanvas(grayValues(maskImage, width, height), width, height, [0, 200, 80], 0.55, null);
      this.draw();
      const elapsed = performance.now() - started;
      canvas.dataset.maskReady = "1";
      canvas.dataset.maskMs = elapsed.toFixed(0);
      $("annotate-status").textContent = `pseudo mask in ${elapsed.toFixed(0)} ms ` +
        `(teacher ${response.headers.get("X-Elapsed-Ms")} ms)`;
    } catch (error) {
      if (seq === this.requestSeq) $("annotate-status").textContent = `error: ${error.message}`;
    }
  },

  draw() {
    const canvas = $("annotate-canvas");
    const ctx = canvas.getContext("2d");
    if (!this.image) return;
    ctx.drawImage(this.image, 0, 0);
    if (this.mask) ctx.drawImage(this.mask, 0, 0);
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
    const p = this.point(event);
    const hit = this.hit(p);
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
    const p = this.point(event);
    const d = this.drag;
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
    if (d.mode === "draw") {
      const p = this.point(event);
      const x1 = Math.min(d.x0, p.x) / this.scale, x2 = Math.max(d.x0, p.x) / this.scale;
      const y1 = Math.min(d.y0, p.y) / this.scale, y2 = Math.max(d.y0, p.y) / this.scale;
      const clampX = (v) => Math.min(Math.max(v, 0), this.width), clampY = (v) => Math.min(Math.max(v, 0), this.height);
      const box = [clampX(x1), clampY(y1), clampX(x2), clampY(y2)];
      if ((box[2] - box[0]) * this.scale < 4 || (box[3] - box[1]) * this.scale < 4) { this.draw(); return; }
      this.change(() => { this.boxes.push(box); this.selected = this.boxes.length - 1; });
    } else if (JSON.stringify(this.boxes) !== d.before) {
      const after = this.boxes[d.index];
      this.boxes = JSON.parse(d.before);
      this.change(() => { this.boxes[d.index] = after; });
    }
  },
};

function showStats(stats) {
  if (!stats) return;
  const mean = stats.mean_seconds === null ? "–" : `${stats.mean_seconds.toFixed(1)} s`;
  $("stats").textContent = `${stats.accepted} / ${stats.images} images done; mean time per image ${mean} ` +
    `(${stats.timed} timed)`;
}

const annotateCanvas = $("annotate-canvas");
annotateCanvas.addEventListener("mousedown", (e) => annotate.mouseDown(e));
window.addEventListener("mousemove", (e) => annotate.mouseMove(e));
window.addEventListener("mouseup", (e) => annotate.mouseUp(e));
$("prev").addEventListener("click", () => annotate.step(-1));
$("next").addEventListener("click", () => annotate.step(1));
$("undo").addEventListener("click", () => annotate.undo());
$("delete").addEventListener("click", () => annotate.deleteSelected());
$("accept").addEventListener("click", () => annotate.accept());
$("propose").addEventListener("click", () => annotate.propose());
document.addEventListener("visibilitychange", () => {
  if (document.hidden) annotate.hiddenSince = performance.now();
  else if (annotate.hiddenSince !== null) { annotate.hiddenMs += performance.now() - annotate.hiddenSince; annotate.hiddenSince = null; }
});
window.addEventListener("beforeunload", (e) => { if (annotate.dirty) { e.preventDefault(); e.returnValue = ""; } });
document.addEventListener("keydown", (e) => {
  if ($("view-annotate").classList.contains("hidden") || ["INPUT", "SELECT"].includes(e.target.tagName)) return;
  if (e.key === "n" || e.key === "ArrowRight") annotate.step(1);
  else if (e.key === "p" || e.key === "ArrowLeft") annotate.step(-1);
  else if (e.key === "Delete" || e.key === "Backspace") annotate.deleteSelected();
  else if (e.key === "u" || (e.key === "z" && (e.ctrlKey || e.metaKey))) annotate.undo();
  else if (e.key === "Enter") annotate.accept();
  else return;
  e.preventDefault();
});

// ------------------------------------------------------------------------------------------------ start
for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));

(async function start() {
  info = await (await api("/api/info")).json();
  $("info").textContent = (info.dataset ? `dataset ${info.dataset} (${info.images} images) · ` : "") +
    `model: ${info.model}` + (info.annotate ? ` · boxes: ${info.boxes_file}` : "");
  $("annotate-off").classList.toggle("hidden", info.annotate);
  $("annotate-on").classList.toggle("hidden", !info.annotate);
  const listing = await (await api("/api/dataset")).json();
  annotate.names = listing.images.map((row) => row.name);
  for (const row of listing.images) {
    const option = document.createElement("option");
    option.value = row.name; option.textContent = row.name + (row.tampered ? "" : " (authentic)");
    $("dataset-pick").appendChild(option);
  }
  showStats(info.stats);
  const wanted = new URLSearchParams(location.search).get("view");
  showView(wanted === "annotate" || (!wanted && info.annotate) ? "annotate" : "inspect");
  document.body.dataset.ready = "1";
})();
