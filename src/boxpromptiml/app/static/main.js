// BoxPromptIML web app: Inspect (heat map of a photo) and Annotate (boxes -> teacher pseudo masks).
// Plain JavaScript modules and canvases; every model call goes to the server's JSON API.
"use strict";

import {annotate, showStats} from "./annotate.js";
import {$, api} from "./common.js";
import {inspect} from "./inspect.js";
import {training} from "./training.js";

window.annotate = annotate;  // for the browser tests and the curious console user
window.inspect = inspect;

function showView(view) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === view);
  $("view-inspect").classList.toggle("hidden", view !== "inspect");
  $("view-annotate").classList.toggle("hidden", view !== "annotate");
  if (view === "annotate" && annotate.enabled && annotate.name === null) annotate.open(annotate.firstToDo);
}

async function start() {
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
  inspect.bind();
  annotate.bind();
  training.bind();
  training.onModelReady = () => inspect.loadModels();
  try {
    const info = await (await api("/api/info")).json();
    inspect.limits = info;
    annotate.enabled = info.annotate;
    annotate.firstToDo = info.first_to_do;
    $("info").textContent = (info.dataset ? `dataset ${info.dataset} (${info.images} images) · ` : "") +
      `model: ${info.model}` + (info.annotate ? ` · boxes: ${info.boxes_file}` : "");
    $("annotate-off").classList.toggle("hidden", info.annotate);
    $("annotate-on").classList.toggle("hidden", !info.annotate);
    const listing = await (await api("/api/dataset")).json();
    annotate.rows = listing.images;
    annotate.names = listing.images.map((row) => row.name);
    annotate.fillGoTo();
    for (const row of listing.images) {
      const option = document.createElement("option");
      option.value = row.name; option.textContent = row.name + (row.tampered ? "" : " (authentic)");
      $("dataset-pick").appendChild(option);
    }
    showStats(info.stats);
    await inspect.loadModels();
    if (info.annotate) training.poll();  // a job started before a reload is picked up again
    const wanted = new URLSearchParams(location.search).get("view");
    showView(wanted === "annotate" || (!wanted && info.annotate) ? "annotate" : "inspect");
  } catch (error) {
    $("info").textContent = `the server did not answer: ${error.message}`;
  }
  document.body.dataset.ready = "1";
}

start();
