"""'Train on my boxes': pseudo-label the boxes saved so far and fine-tune a model on them, in a worker process.

The web app starts one job at a time with :func:`start_job`; the job runs in its own process
(``multiprocessing``, spawned, so that its torch threads and memory are its own and cancelling it is
one signal), and keeps its whole state on disk in its folder, so the page can be reloaded, or the
server restarted, and still find it:
- ``job.json``: what was asked (the job's spec), its state (queued, pseudo-label, train, done,
  failed, cancelled), the worker's pid, a message;
- ``train.json`` / ``boxes.json``: the annotated images and their boxes at the moment it started;
- ``pseudo/``: the teacher's masks (its manifest counts them); ``run/``: the fine-tuned run folder
  (``metrics.csv`` per epoch), whose ``best/`` is the adapted model Inspect can switch to.
Fine-tuning starts from the shipped model (or the server's), with a short schedule at a low learning
rate (``optim.init``, training/init_from.py); its thresholds are set again on a validation part when
the annotated images have masks to validate on, and are otherwise left at 0.5 with no verdict.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import BPIMLError, ConfigError
from ..fileio import write_json_atomic

log = logging.getLogger(__name__)
JOB_FILE = "job.json"
RUNNING = ("queued", "pseudo-label", "train")
MIN_FOR_VALIDATION = 10  # annotated images with masks needed before a fifth of them is set aside


@dataclass(frozen=True)
class TrainJobSpec:
    """What a job does: the server's dataset, box file and teacher, the model to start from, the budget."""

    dataset: tuple[str, ...]
    boxes: str
    teacher: str = "litemedsam"
    checkpoint: str | None = None
    init: str = "shipped"
    # the budget benchmarks.adaptation chose on held-out photos: 6 x 200 at 3e-4, batch-norm statistics kept as the
    # start model's (a few photos would move them; this lifted held-out F1 on both draws it was tried on)
    epochs: int = 6
    samples_per_epoch: int = 200
    lr: float = 3e-4
    freeze_batchnorm: bool = True
    threads: int = 2
    extra: tuple[str, ...] = field(default_factory=tuple)  # further `section.key=value` training settings


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_job(job_dir: Path) -> dict[str, Any]:
    return json.loads((Path(job_dir) / JOB_FILE).read_text(encoding="utf-8"))


def _update(job_dir: Path, **changes: Any) -> dict[str, Any]:
    job = read_job(job_dir)
    job.update(changes, updated=_now())
    write_json_atomic(Path(job_dir) / JOB_FILE, job)
    return job


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child of this server stays a zombie until reaped: that is not alive
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True  # not our child (another server started it): it exists


def jobs_of(jobs_dir: Path) -> list[Path]:
    """The job folders under ``jobs_dir``, oldest first."""
    return sorted(p for p in Path(jobs_dir).glob("job-*") if (p / JOB_FILE).is_file())


def job_status(job_dir: Path) -> dict[str, Any]:
    """The job as the page shows it: its state (a worker that died unannounced is 'failed'), and its progress:
    pseudo masks made, epochs and samples done, the last validation or fit F1."""
    job = read_job(job_dir)
    if job["state"] in RUNNING and not _alive(job.get("pid")):
        job = _update(job_dir, state="failed", message="the worker process ended without finishing")
    progress: dict[str, Any] = {}
    manifest = Path(job_dir) / "pseudo" / "manifest.json"
    if manifest.is_file():
        try:
            progress["pseudo_masks"] = len(json.loads(manifest.read_text(encoding="utf-8")).get("images", {}))
        except (OSError, ValueError):
            pass
    metrics = Path(job_dir) / "run" / "metrics.csv"
    if metrics.is_file():
        import csv

        with metrics.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if rows:
            last = rows[-1]
            progress.update(epochs_done=len(rows), samples_seen=int(float(last.get("samples_seen") or 0)),
                            fit_f1=_number(last.get("fit_pixel_f1")), val_f1=_number(last.get("val_pixel_f1")))
    return {**job, "name": Path(job_dir).name, "progress": progress,
            "model_ready": job["state"] == "done" and (Path(job_dir) / "run" / "best" / "model.safetensors").is_file()}


def _number(text: str | None) -> float | None:
    try:
        return round(float(text), 4) if text not in (None, "") else None
    except ValueError:
        return None


def running_job(jobs_dir: Path) -> Path | None:
    return next((j for j in reversed(jobs_of(jobs_dir)) if job_status(j)["state"] in RUNNING), None)


def start_job(jobs_dir: Path, spec: TrainJobSpec) -> Path:
    """A new job folder and its worker process; refused while another job of this folder runs."""
    busy = running_job(jobs_dir)
    if busy is not None:
        raise ConfigError(f"a training job is already running ({busy.name}); wait for it or cancel it")
    job_dir = Path(jobs_dir) / f"job-{datetime.now(UTC):%Y%m%d-%H%M%S}-{os.getpid() % 1000:03d}"
    job_dir.mkdir(parents=True)
    write_json_atomic(job_dir / JOB_FILE, {"spec": asdict(spec), "state": "queued", "pid": None, "message": "",
                                           "created": _now(), "updated": _now()})
    worker = multiprocessing.get_context("spawn").Process(target=run_job, args=(str(job_dir),), daemon=True,
                                                          name=f"bpiml-{job_dir.name}")
    worker.start()
    _update(job_dir, pid=worker.pid)
    return job_dir


def cancel_job(job_dir: Path) -> dict[str, Any]:
    """Stop the job's worker (its files are written atomically, so nothing is left half-written)."""
    job = read_job(job_dir)
    if job["state"] in RUNNING and _alive(job.get("pid")):
        os.kill(job["pid"], signal.SIGTERM)
        for _ in range(100):
            if not _alive(job["pid"]):
                break
            time.sleep(0.05)
    if job["state"] in RUNNING:
        _update(job_dir, state="cancelled", message="cancelled from the page")
    return job_status(job_dir)


def run_job(job_dir: str) -> None:
    """The worker: pseudo masks for the saved boxes, then fine-tuning; every step is recorded in job.json."""
    job_dir_path = Path(job_dir)
    spec = TrainJobSpec(**{k: tuple(v) if k in ("dataset", "extra") else v
                           for k, v in read_job(job_dir_path)["spec"].items()})
    import torch

    torch.set_num_threads(max(1, spec.threads))
    try:
        dataset, has_val = _prepare(job_dir_path, spec)
        _update(job_dir_path, state="pseudo-label", message=f"{len(dataset.tampered)} annotated image(s)")
        from ..pseudo_labels.generate import generate_pseudo_labels
        from ..teachers.zoo import create_teacher

        generate_pseudo_labels(dataset, create_teacher(spec.teacher, spec.checkpoint), job_dir_path / "pseudo",
                               str(job_dir_path / "boxes.json"))
        _update(job_dir_path, state="train")
        from ..cli.train_cmd import recalibrate_after_fine_tuning
        from ..training.config import TrainConfig
        from ..training.loop import train

        settings = TrainConfig().to_dict()
        settings["optim"].update(init=spec.init, epochs=spec.epochs, samples_per_epoch=spec.samples_per_epoch,
                                 lr=spec.lr, freeze_batchnorm=spec.freeze_batchnorm, warmup_epochs=0.2, workers=0,
                                 threads=spec.threads, precision="auto")
        settings["loss"]["image"] = 0.0  # the start model's image head is left as it is: few boxes, no verdict data
        settings["data"].update(train=[{"dataset": str(job_dir_path / "train.json"),
                                        "boxes": str(job_dir_path / "boxes.json"),
                                        "pseudo_labels": str(job_dir_path / "pseudo")}],
                                val=[str(job_dir_path / "val.json")] if has_val else [])
        config = TrainConfig.from_dict(settings).override(list(spec.extra))
        train(config, job_dir_path / "run")
        notes = recalibrate_after_fine_tuning(config, job_dir_path / "run")
        _update(job_dir_path, state="done", message=" ".join(notes))
    except BPIMLError as exc:
        _update(job_dir_path, state="failed", message=str(exc))
    except Exception as exc:  # noqa: BLE001 - the page must learn why, not find a silent 'running' forever
        log.exception("training job %s failed", job_dir)
        _update(job_dir_path, state="failed", message=f"{type(exc).__name__}: {exc}")


def _prepare(job_dir: Path, spec: TrainJobSpec):
    """The annotated images (tampered ones with boxes, and the dataset's authentic ones) as of now, written as the
    job's own lists; a fifth of the annotated images is set aside for validation when they have masks."""
    from ..data.coco import attach_boxes, read_coco_boxes, write_coco_boxes
    from ..data.images import image_size
    from ..data.readers import load_datasets
    from ..data.samples import Dataset

    full = attach_boxes(load_datasets(list(spec.dataset)), read_coco_boxes(spec.boxes), source=spec.boxes)
    boxed = [s for s in full.tampered if s.boxes]
    if not boxed:
        raise ConfigError("no saved box yet: draw boxes on a few tampered images and accept them first")
    with_masks = [s for s in boxed if s.mask is not None]
    val = with_masks[::5] if len(with_masks) >= MIN_FOR_VALIDATION else []
    authentic = full.authentic[: len(boxed) + len(val)]  # as many negatives as positives, at most
    val_authentic, train_authentic = authentic[:len(val)], authentic[len(val):]
    dataset = Dataset([s for s in boxed if s not in val] + train_authentic, job_dir,
                      "the images annotated in bpiml serve")
    entries = [{"path": str(s.image.resolve()), "mask": None, "label": int(s.is_tampered)} for s in dataset]
    write_json_atomic(job_dir / "train.json", entries)
    sizes = {s.name: image_size(s.image) for s in dataset}
    write_coco_boxes(job_dir / "boxes.json", dataset, {s.name: list(s.boxes or ()) for s in dataset}, sizes,
                     info={"generator": "bpiml serve (train on my boxes)"})
    if val:
        write_json_atomic(job_dir / "val.json", [{"path": str(s.image.resolve()), "mask": str(s.mask.resolve()),
                                                  "label": 1} for s in val]
                          + [{"path": str(s.image.resolve()), "mask": None, "label": 0} for s in val_authentic])
    from ..data.readers import load_dataset

    return attach_boxes(load_dataset(job_dir / "train.json"), read_coco_boxes(job_dir / "boxes.json")), bool(val)
