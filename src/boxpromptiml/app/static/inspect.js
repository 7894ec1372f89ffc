// Inspect: a photo (uploaded or from the dataset), the student's heat map or mask over it, the verdict, downloads.
"use strict";

import {$, api, drawColourScale, grayValues, loadImage, overlayCanvas} from "./common.js";

export const inspect = {
  result: null, image: null, gray: null, limits: null, lastRequest: null,

  async analyse(request, label) {
    $("inspect-status").textContent = `analysing ${label}…`;
    $("inspect-status").classList.add("busy");
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
      const shrunk = result.analysed_width < result.width ?
        ` (analysed at ${result.analysed_width} x ${result.analysed_height}: bpiml predict works at full size)` : "";
      $("inspect-status").textContent =
        `${result.name}: ${result.width} x ${result.height}, analysed in ${seconds} s${shrunk}`;
      $("verdict").textContent = result.verdict;
      $("verdict").dataset.model = result.model;
      $("verdict").classList.toggle("tampered", result.tampered === true);
      this.render();
    } catch (error) {
      $("inspect-status").textContent = `error: ${error.message}`;
    } finally {
      $("inspect-status").classList.remove("busy");
    }
  },

  render() {
    const threshold = parseFloat($("threshold").value);
    $("threshold-value").textContent = threshold.toFixed(2);
    drawColourScale($("colour-scale"), threshold);
    if (!this.result) return;
    const canvas = $("inspect-canvas");
    const width = this.image.naturalWidth, height = this.image.naturalHeight;
    canvas.width = width; canvas.height = height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(this.image, 0, 0);
    const mode = $("inspect-mode").value;
    const opacity = parseFloat($("opacity").value);
    ctx.drawImage(overlayCanvas(this.gray, width, height, {mode, opacity, threshold}), 0, 0);
    canvas.dataset.rendered = "1";
    const id = this.result.id;
    for (const [link, href] of [["download-map", `/api/inspect/${id}/map.png?full=true`],
                                ["download-mask", `/api/inspect/${id}/mask.png?threshold=${threshold}`],
                                ["download-report", `/api/inspect/${id}/report.html?threshold=${threshold}`]]) {
      $(link).href = href;
      $(link).classList.remove("disabled");
    }
  },

  // the model the maps come from: the server's, or an adapted one from "Train on my boxes"
  modelQuery() {
    const model = $("model-pick").value;
    return model && model !== "shipped" ? `model=${encodeURIComponent(model)}` : "";
  },

  async loadModels() {
    const {models} = await (await api("/api/models")).json();
    const select = $("model-pick"), chosen = select.value;
    select.replaceChildren();
    for (const model of models) {
      const option = document.createElement("option");
      option.value = model.id; option.textContent = model.label;
      select.appendChild(option);
    }
    if (models.some((m) => m.id === chosen)) select.value = chosen;
    $("model-choice").classList.toggle("hidden", models.length < 2);
  },

  again() {  // the same photo with the other model (before / after)
    if (this.lastRequest) this.analyse(this.lastRequest.build(), this.lastRequest.label);
  },

  upload(file) {
    if (!file) return;
    if (this.limits && file.size > this.limits.max_upload_mb * 1024 * 1024) {
      $("inspect-status").textContent = `error: ${file.name} is over the server's limit of ${this.limits.max_upload_mb} MB`;
      return;
    }
    const build = () => {
      const form = new FormData();
      form.append("file", file);
      const query = this.modelQuery();
      return {url: "/api/inspect" + (query ? `?${query}` : ""), options: {method: "POST", body: form}};
    };
    this.lastRequest = {build, label: file.name};
    this.analyse(build(), file.name);
  },

  bind() {
    $("file-input").addEventListener("change", (e) => this.upload(e.target.files[0]));
    $("dataset-pick").addEventListener("change", (e) => {
      if (e.target.value) {
        const name = e.target.value;
        const build = () => {
          const query = this.modelQuery();
          return {url: `/api/inspect/dataset?name=${encodeURIComponent(name)}` + (query ? `&${query}` : ""),
                  options: {method: "POST"}};
        };
        this.lastRequest = {build, label: name};
        this.analyse(build(), name);
      }
    });
    for (const id of ["inspect-mode", "opacity", "threshold"]) $(id).addEventListener("input", () => this.render());
    $("model-pick").addEventListener("change", () => this.again());
    const dropZone = $("drop-zone");
    dropZone.addEventListener("dragover", (e) => { e.preventDefault(); dropZone.classList.add("dragover"); });
    dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragover"));
    dropZone.addEventListener("drop", (e) => {
      e.preventDefault();
      dropZone.classList.remove("dragover");
      this.upload(e.dataTransfer.files[0]);
    });
    this.render();
  },
};
