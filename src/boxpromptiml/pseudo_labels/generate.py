"""`bpiml pseudo-label`: run a frozen teacher on every tampered image's boxes, resumably.

Output folder: one 8-bit PNG soft mask per tampered image (``<name>.png``; authentic images get
none, their target is all zero) and ``manifest.json`` recording the teacher, its weights' hash,
its options, the boxes and the time of every image. Each file is written atomically and the
manifest after every image, so an interrupted run loses at most the image in progress.
Re-running the same command skips images whose manifest entry matches (same teacher, same
boxes) and whose PNG still has the recorded SHA-256; a folder made by another teacher or with
other options is refused rather than mixed.

Sharded (``shard=Shard(K, N)``, ``--shard K/N`` or a torchrun rank): the shard takes every N-th
tampered image and records them in ``manifest.shard-K-of-N.json``; when it finishes it merges
every shard's part into ``manifest.json`` under a lock, so whichever shard finishes last leaves
a manifest that lists every image once. Shards may run at once, on one machine or many sharing
the folder.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data.images import PathLike, encode_png, read_image
from ..data.samples import Dataset, Sample
from ..errors import ConfigError, DataError
from ..fileio import read_json, write_bytes_atomic, write_json_atomic
from ..runner import SampleRun, run_per_sample
from ..sharding import Shard, exclusive_lock
from ..teachers.base import Teacher

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".manifest.lock"
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


def read_manifest(out_dir: Path, name: str = MANIFEST_NAME) -> dict[str, Any] | None:
    path = out_dir / name
    if not path.is_file():
        return None
    return read_json(path, DataError, "move the folder aside or pass a new --out")


def _is_done(out_dir: Path, entry: dict[str, Any] | None, sample: Sample) -> bool:
    if not entry or entry.get("boxes") != _boxes_of(sample):
        return False
    path = out_dir / entry.get("file", "")
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == entry.get("sha256")


def _same_teacher(recorded: Any, current: dict[str, Any]) -> bool:
    """Same teacher, options and weights (by hash: the weights file may have moved). What runs the encoder is
    recorded but not compared: its backends give the same pseudo masks within rounding (docs/results.md)."""
    if not isinstance(recorded, dict):
        return False
    ignored = ("checkpoint", "encoder_backend")
    return {k: v for k, v in recorded.items() if k not in ignored} == \
        {k: v for k, v in current.items() if k not in ignored}


def _check_teacher(out_dir: Path, manifest: dict[str, Any] | None, description: dict[str, Any]) -> None:
    if manifest is not None and not _same_teacher(manifest.get("teacher"), description):
        raise ConfigError(
            f"{out_dir} holds pseudo labels of another teacher or options ({manifest.get('teacher')}); "
            "use a new --out folder (nothing was changed)"
        )


def generate_pseudo_labels(
    dataset: Dataset, teacher: Teacher, out_dir: PathLike, boxes_source: str = "", shard: Shard | None = None
) -> SampleRun[PseudoLabel]:
    """Write pseudo masks for the tampered images that have boxes (this shard's share of them, if
    given); returns done / failed per image."""
    out_dir = Path(out_dir)
    description = teacher.describe()
    own_name = MANIFEST_NAME if shard is None else f"manifest.{shard.tag}.json"
    previous, own_previous = read_manifest(out_dir), read_manifest(out_dir, own_name)
    for recorded in (previous, own_previous):
        _check_teacher(out_dir, recorded, description)
    tampered = dataset.tampered if shard is None else shard.select(dataset.tampered)
    known = {**(previous or {}).get("images", {}), **(own_previous or {}).get("images", {})}
    mine = {s.name for s in tampered}
    done: dict[str, Any] = {n: e for n, e in known.items() if shard is None or n in mine}
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION, "teacher": description, "dataset": dataset.source, "boxes": boxes_source,
        "images": done, "failures": {},
    }
    if shard is not None:
        manifest["shard"] = {"index": shard.index, "count": shard.count, "complete": False}
    no_boxes = [s.name for s in tampered if not s.boxes]
    todo: list[Sample] = []
    resumed: list[str] = []
    for sample in tampered:
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
        png = encode_png(teacher.segment_uint8(image, list(sample.boxes or ())))
        write_bytes_atomic(out_dir / f"{sample.name}.png", png)
        label = PseudoLabel(f"{sample.name}.png", hashlib.sha256(png).hexdigest(), _boxes_of(sample),
                            round(time.perf_counter() - start, 4), image.shape[0], image.shape[1])
        done[sample.name] = asdict(label)
        write_json_atomic(out_dir / own_name, manifest)
        return label

    out_dir.mkdir(parents=True, exist_ok=True)
    run = run_per_sample(todo, step, desc=f"pseudo-label ({teacher.name})", total=len(todo))
    run.skipped = resumed
    for name in no_boxes:
        run.failures[name] = "tampered image without boxes in the annotation file"
    manifest["failures"] = run.failures
    if shard is not None:
        manifest["shard"]["complete"] = True
    write_json_atomic(out_dir / own_name, manifest)
    if shard is not None:
        merge_shard_manifests(out_dir, description)
    return run


def merge_shard_manifests(out_dir: Path, description: dict[str, Any]) -> dict[str, Any]:
    """Fold every shard's manifest into ``manifest.json`` (under a lock); returns the merged manifest."""
    with exclusive_lock(out_dir / LOCK_NAME):
        merged = read_manifest(out_dir) or {"version": MANIFEST_VERSION, "teacher": description, "images": {},
                                            "failures": {}}
        _check_teacher(out_dir, merged, description)
        finished: dict[int, list[int]] = {}
        for path in sorted(out_dir.glob("manifest.shard-*-of-*.json")):
            part = read_manifest(out_dir, path.name) or {}
            _check_teacher(out_dir, part, description)
            merged["images"].update(part.get("images", {}))
            merged["failures"].update(part.get("failures", {}))
            for key in ("dataset", "boxes"):
                merged.setdefault(key, part.get(key))
            info = part.get("shard", {})
            if info.get("complete"):
                finished.setdefault(info["count"], []).append(info["index"])
        merged["failures"] = {n: why for n, why in merged["failures"].items() if n not in merged["images"]}
        merged["shards"] = {str(count): sorted(indices) for count, indices in sorted(finished.items())}
        write_json_atomic(out_dir / MANIFEST_NAME, merged)
    return merged
