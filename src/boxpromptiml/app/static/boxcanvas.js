// The canvas half of Annotate: drawing the photo, its pseudo mask and the boxes; zoom and pan; drawing, moving and
// resizing boxes with the mouse. Mixed into the annotate object (annotate.js), whose state it reads and changes.
"use strict";

import {$, overlayCanvas} from "./common.js";

const HANDLE = 8;  // corner handle radius, in screen pixels
export const MAX_ZOOM = 8;

export const boxCanvas = {
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

};
