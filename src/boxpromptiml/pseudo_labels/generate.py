"""`bpiml pseudo-label`: run a frozen teacher on every tampered image's boxes, resumably.

Output folder: one 8-bit PNG soft mask per tampered image (``<name>.png``; authentic images get
none, their target is all zero) and ``manifest.json`` recording the teacher, its weights' hash,
its options, the boxes and the time of every image. Each file is written atomically and the
manifest after every image, so an interrupted run loses at most the image in progress.
Re-running the same command skips images whose manifest entry matches (same teacher, same
boxes) and whose PNG still has the recorded SHA-256; a folder made by another teacher or with
other options is refused rather than mixed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data.images import PathLike, encode_png, probability_to_uint8, read_image
from ..data.samples import Dataset, Sample
from ..errors import ConfigError, DataError
from ..fileio import write_bytes_atomic, write_json_atomic
from ..runner import SampleRun, run_per_sample
from ..teachers.base import Teacher

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class PseudoLabel:
    """What the manifest records for one image."""

    file: str
    sha256: str
    boxes: list[list[float]]
    seconds: float
    height: int
    width: int


def _boxes_of(sample: Sample) -> list[list[float]]:
    return [b.to_xyxy() for b in sample.boxes or ()]


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path} ({exc}); move the folder aside or pass a new --out") from exc


def _is_done(out_dir: Path, entry: dict[str, Any] | None, sample: Sample) -> bool:
    if not entry or entry.get("boxes") != _boxes_of(sample):
        return False
    path = out_dir / entry.get("file", "")
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == entry.get("sha256")


def _same_teacher(recorded: Any, current: dict[str, Any]) -> bool:
    """Same teacher, options and weights (by hash: the weights file may have moved)."""
    if not isinstance(recorded, dict):
        return False
    return {k: v for k, v in recorded.items() if k != "checkpoint"} == \
        {k: v for k, v in current.items() if k != "checkpoint"}


def generate_pseudo_labels(
    dataset: Dataset, teacher: Teacher, out_dir: PathLike, boxes_source: str = ""
) -> SampleRun[PseudoLabel]:
    """Write pseudo masks for the tampered images that have boxes; returns done / failed per image."""
    out_dir = Path(out_dir)
    description = teacher.describe()
    previous = read_manifest(out_dir)
    if previous is not None and not _same_teacher(previous.get("teacher"), description):
        raise ConfigError(
            f"{out_dir} holds pseudo labels of another teacher or options ({previous.get('teacher')}); "
            "use a new --out folder (nothing was changed)"
        )
    done: dict[str, Any] = dict(previous.get("images", {})) if previous else {}
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION, "teacher": description, "dataset": dataset.source, "boxes": boxes_source,
        "images": done, "failures": {},
    }
    no_boxes = [s.name for s in dataset.tampered if not s.boxes]
    todo: list[Sample] = []
    resumed: list[str] = []
    for sample in dataset.tampered:
        if not sample.boxes:
            continue
        if _is_done(out_dir, done.get(sample.name), sample):
            resumed.append(sample.name)
        else:
            todo.append(sample)
    if resumed:
        log.info("%s: %d image(s) already done, resuming with %d", out_dir, len(resumed), len(todo))

    def step(sample: Sample) -> PseudoLabel:
        start = time.perf_counter()
        image = read_image(sample.image)
        soft = teacher.segment(image, list(sample.boxes or ()))
        png = encode_png(probability_to_uint8(soft))
        write_bytes_atomic(out_dir / f"{sample.name}.png", png)
        label = PseudoLabel(f"{sample.name}.png", hashlib.sha256(png).hexdigest(), _boxes_of(sample),
                            round(time.perf_counter() - start, 4), image.shape[0], image.shape[1])
        done[sample.name] = asdict(label)
        write_json_atomic(out_dir / MANIFEST_NAME, manifest)
        return label

    out_dir.mkdir(parents=True, exist_ok=True)
    run = run_per_sample(todo, step, desc=f"pseudo-label ({teacher.name})", total=len(todo))
    run.skipped = resumed
    for name in no_boxes:
        run.failures[name] = "tampered image without boxes in the annotation file"
    manifest["failures"] = run.failures
    write_json_atomic(out_dir / MANIFEST_NAME, manifest)
    return run
