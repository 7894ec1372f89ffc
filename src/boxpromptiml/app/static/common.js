// What both views use: the JSON API, images, gray maps and their coloured overlays.
"use strict";

export const $ = (id) => document.getElementById(id);

// A fetch that throws the server's own reason ({"detail": ...}) on an HTTP error.
export async function api(path, options) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response;
}

export function postJSON(path, body) {
  return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
}

export function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("cannot load " + url));
    image.src = url;
  });
}

// Gray values (0..255) of an image, one per pixel, at the given size.
export function grayValues(image, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0, width, height);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const gray = new Uint8ClampedArray(width * height);
  for (let i = 0; i < gray.length; i++) gray[i] = rgba[4 * i];
  return gray;
}

// The heat map's colour for a probability in [0, 1]: dark blue -> red -> yellow, as on the colour scale.
export function heatColor(p) {
  const stops = [[0, [40, 40, 160]], [0.5, [220, 30, 30]], [1, [255, 230, 40]]];
  for (let s = 1; s < stops.length; s++) {
    const [p1, c1] = stops[s];
    const [p0, c0] = stops[s - 1];
    if (p <= p1) {
      const t = (p - p0) / (p1 - p0);
      return c0.map((v, i) => Math.round(v + t * (c1[i] - v)));
    }
  }
  return stops[stops.length - 1][1];
}

const HEAT = Array.from({length: 256}, (_, v) => heatColor(v / 255));

// A canvas holding an overlay of gray values.
// mode "heat": the heat colour, alpha grows with the value, values at or below the threshold dimmed to a quarter;
// mode "mask": one colour where value > threshold; mode "soft": one colour, alpha = value.
export function overlayCanvas(gray, width, height, {mode, color = [255, 0, 255], opacity = 0.6, threshold = 0}) {
  const canvas = document.createElement("canvas");
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext("2d");
  const out = ctx.createImageData(width, height);
  const cut = threshold * 255;
  for (let i = 0; i < gray.length; i++) {
    const v = gray[i];
    let rgb = color, alpha = 0;
    if (mode === "heat") { rgb = HEAT[v]; alpha = (v / 255) * 255 * opacity * (v > cut ? 1 : 0.25); }
    else if (mode === "mask") alpha = v > cut ? 255 * opacity : 0;
    else alpha = v * opacity;
    out.data[4 * i] = rgb[0]; out.data[4 * i + 1] = rgb[1]; out.data[4 * i + 2] = rgb[2];
    out.data[4 * i + 3] = alpha;
  }
  ctx.putImageData(out, 0, 0);
  return canvas;
}

// The colour scale under the heat map: the colours from 0 to 1, dimmed below the threshold.
export function drawColourScale(canvas, threshold) {
  const ctx = canvas.getContext("2d");
  const {width, height} = canvas;
  for (let x = 0; x < width; x++) {
    const p = x / (width - 1);
    const [r, g, b] = heatColor(p);
    ctx.fillStyle = p <= threshold ? `rgba(${r}, ${g}, ${b}, 0.15)` : `rgb(${r}, ${g}, ${b})`;
    ctx.fillRect(x, 0, 1, height);
  }
  ctx.fillStyle = "#000";
  ctx.fillRect(Math.round(threshold * (width - 1)), 0, 2, height);
}
