"""What a training run keeps in its folder, apart from checkpoints: the config it was started with (and the
check that a folder is resumed only by the same run), ``metrics.csv``, the list of samples that could not be read,
and the summary printed at the end."""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError
from ..fileio import write_json_atomic
from .checkpoint import read_json, resume_point
from .config import TrainConfig

log = logging.getLogger(__name__)

METRICS_FIELDS = ["epoch", "samples_seen", "lr", "train_loss", "bce", "dice", "outside_box", "false_alarm", "image",
                  "fit_pixel_f1", "val_pixel_f1", "val_pixel_iou", "val_pixel_auc", "val_image_auc",
                  "samples_per_second", "seconds"]


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epochs_done: int
    epochs_planned: int
    best_val_f1: float | None
    skipped_images: dict[str, str]  # unreadable images, left out before training
    skipped_samples: dict[str, str] = field(default_factory=dict)  # items that failed while training


# Settings of one invocation, not of the run: changing them between a stop and a resume is allowed.
INVOCATION_SETTINGS = {"max_minutes", "workers", "threads", "device"}


def check_run_folder(run_dir: Path, config: TrainConfig, write: bool = True) -> None:
    """Refuse a folder that holds another run; record this invocation's config (when ``write``).

    A folder whose run never finished an epoch is free to reuse (e.g. after a typo in a path). A
    finished run may be given more epochs: it continues, with the learning-rate schedule stretched
    over the new budget from where it stands."""
    saved = run_dir / "config.json"
    wanted = config.to_dict()
    if saved.is_file() and resume_point(run_dir) is not None:
        existing = read_json(saved)
        try:  # settings added to TrainConfig after the run started take their defaults, as the run had them
            existing = TrainConfig.from_dict(existing).to_dict()
        except ConfigError:
            pass  # a config this version cannot read: compared as written, so it is refused below

        def run_part(settings: dict) -> dict:
            """The settings that define the run (the budget in epochs may grow)."""
            optim = {k: v for k, v in settings.get("optim", {}).items() if k not in INVOCATION_SETTINGS | {"epochs"}}
            return {**settings, "optim": optim}

        if run_part(existing) != run_part(wanted):
            raise ConfigError(f"{run_dir} holds a run with another configuration (see {saved}); "
                              "use a new --out folder to start a different run")
        before, after = existing.get("optim", {}).get("epochs"), wanted["optim"]["epochs"]
        if before != after:
            log.warning("%s: the budget changes from %s to %s epochs; the run continues after its last finished "
                        "epoch, with the learning-rate schedule stretched over the new budget", run_dir, before, after)
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(saved, wanted)


def metrics_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRICS_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_metrics(path: Path, before_epoch: int | None = None) -> list[dict]:
    """Rows of a run's metrics.csv (those of epochs before ``before_epoch``, if given); [] if none."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if before_epoch is None or int(row["epoch"]) < before_epoch]


class BadSamples:
    """Training samples that could not be read (e.g. a truncated pseudo mask): each is replaced by another
    item, warned about once, and listed in ``skipped_samples.json``; the run stops only when more than
    ``max_fraction`` of an epoch's draws failed."""

    def __init__(self, path: Path | None, max_fraction: float) -> None:
        self.path, self.max_fraction = path, max_fraction
        self.reasons: dict[str, str] = dict(read_json(path)) if path is not None and path.is_file() else {}
        self.in_epoch = 0

    def note(self, entries: list[str]) -> None:
        for entry in filter(None, entries):
            name, _, reason = entry.partition(": ")
            if name not in self.reasons:
                log.warning("skipping an unreadable training sample (listed in skipped_samples.json): %s", entry)
                self.reasons[name] = reason
                if self.path is not None:
                    write_json_atomic(self.path, self.reasons)
            self.in_epoch += 1

    def check(self, draws: int) -> None:
        failed, self.in_epoch = self.in_epoch, 0
        if draws and failed / draws > self.max_fraction:
            raise DataError(f"{failed} of {draws} training draws this epoch could not be read (more than "
                            f"data.max_bad_fraction={self.max_fraction}); see {self.path}")


def run_summary(result: TrainResult) -> str:
    best = "n/a" if result.best_val_f1 is None else f"{result.best_val_f1:.4f}"
    if result.epochs_done == 0:
        return f"no epoch trained (optim.epochs={result.epochs_planned}); no model was written"
    text = (f"trained {result.epochs_done} of {result.epochs_planned} epochs; best validation pixel F1 {best}; "
            f"model in {result.run_dir / 'best'}")
    if result.epochs_done < result.epochs_planned:
        text += "\nstopped at the time limit: run the same command to continue"
    if result.skipped_samples:
        text += (f"\n{len(result.skipped_samples)} training item(s) could not be read and were replaced by others "
                 f"(listed in {result.run_dir / 'skipped_samples.json'})")
    if result.skipped_images:
        text += f"\n{len(result.skipped_images)} unreadable training image(s) left out: " + json.dumps(
            result.skipped_images, indent=1)
    return text

