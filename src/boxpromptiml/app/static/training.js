// "Train on my boxes" (app/jobs.py): start, follow and cancel the server's fine-tuning job from Annotate.
"use strict";

import {$, api, postJSON} from "./common.js";

// "Train on my boxes": a job on the server (its state is on disk, so a reloaded page picks it up again)
export const training = {
  timer: null, onModelReady: null,

  describe(job) {
    if (!job) return "";
    const p = job.progress || {};
    if (job.state === "queued") return "training: starting…";
    if (job.state === "pseudo-label") return `training: the teacher makes pseudo masks (${p.pseudo_masks || 0} so far)…`;
    if (job.state === "train") {
      const f1 = p.val_f1 !== null && p.val_f1 !== undefined ? `validation F1 ${p.val_f1.toFixed(3)}` :
        p.fit_f1 !== null && p.fit_f1 !== undefined ? `fit to the pseudo masks ${p.fit_f1.toFixed(3)}` : "";
      return `training: fine-tuning, ${p.epochs_done || 0} of ${job.spec.epochs} epochs ` +
             `(${p.samples_seen || 0} samples) ${f1}`;
    }
    if (job.state === "done") return `training done (${job.name}): Inspect can use the adapted model. ${job.message}`;
    return `training ${job.state}: ${job.message}`;
  },

  show(job) {
    const running = job && ["queued", "pseudo-label", "train"].includes(job.state);
    $("train-status").textContent = this.describe(job);
    $("train-status").dataset.state = job ? job.state : "";
    $("train-status").classList.toggle("busy", Boolean(running));
    $("train-cancel").classList.toggle("hidden", !running);
    $("train").disabled = Boolean(running);
    if (running && !this.timer) this.timer = setInterval(() => this.poll(), 1500);
    if (!running && this.timer) { clearInterval(this.timer); this.timer = null; }
    if (job && job.state === "done" && this.onModelReady) this.onModelReady(job);
  },

  async poll() {
    try { this.show((await (await api("/api/train")).json()).job); } catch (error) { /* the next poll retries */ }
  },

  async start() {
    try {
      this.show(await (await postJSON("/api/train", {})).json());
    } catch (error) {
      $("train-status").textContent = `training: ${error.message}`;
    }
  },

  async cancel() {
    try { this.show(await (await postJSON("/api/train/cancel", {})).json()); } catch (error) { this.poll(); }
  },

  bind() {
    $("train").addEventListener("click", () => this.start());
    $("train-cancel").addEventListener("click", () => this.cancel());
  },
};
