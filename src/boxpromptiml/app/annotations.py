"""The COCO box file the annotation view writes: one image at a time, atomically, never losing work.

Each accepted image is written at once (the whole file goes to a temporary file and is renamed over
the old one), with its boxes and the seconds the annotator spent on it (``bpiml_seconds`` in its
``images`` entry; other COCO readers ignore the key). Entries of images that are not in the dataset,
and any other content of an existing file, are kept as they were. `bpiml pseudo-label` and
`bpiml train` read the file unchanged.

Several servers (or a server and a script) may share one file: a save holds an OS lock on
``FILE.lock``, re-reads the file as it now is, changes only its own image's entry and writes the
whole back, so no one's annotations are lost. Reads pick up another writer's saves when the file
changed on disk.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..data.coco import TAMPERED_CATEGORY, read_coco_boxes
from ..data.images import image_size
from ..data.readers import read_json
from ..data.samples import Box, Dataset, Sample
from ..errors import DataError
from ..fileio import write_json_atomic
from ..sharding import exclusive_lock

SECONDS_KEY = "bpiml_seconds"  # per image: time spent annotating it in `bpiml serve`
MAX_SECONDS = 24 * 3600.0  # a longer "annotation time" is a tab left open, not work


@dataclass(frozen=True)
class ImageAnnotation:
    name: str  # the image's path relative to the dataset root, as written in the COCO file
    boxes: tuple[Box, ...]
    seconds: float | None  # time spent in `bpiml serve`, if it was annotated there
    accepted: bool  # has an entry with boxes, or was accepted (maybe with no box) in `bpiml serve`


class AnnotationFile:
    """Boxes per dataset image, backed by a COCO file that is rewritten atomically on every save."""

    def __init__(self, path: Path, dataset: Dataset) -> None:
        self.path = Path(path)
        self.dataset = dataset
        self._lock = threading.Lock()
        self._names = dataset.by_relative_name()
        self._position = {name: i for i, name in enumerate(self._names)}
        self._by_base: dict[str, str | None] = {}
        for name in self._names:
            base = Path(name).name
            self._by_base[base] = None if base in self._by_base else name
        self._signature: tuple[int, int] | None = None
        self._load()

    def _load(self) -> None:
        """(Re)read the file as it is on disk now (or start an empty one) and index it."""
        self._coco: dict[str, Any] = {"info": {"description": "boxes drawn in bpiml serve"}, "images": [],
                                      "annotations": [], "categories": [TAMPERED_CATEGORY]}
        self._signature = self._disk_signature()
        if self._signature is not None:
            read_coco_boxes(self.path)  # validates the file (clear errors) before we ever rewrite it
            self._coco = read_json(self.path)
            self._coco.setdefault("categories", [TAMPERED_CATEGORY])
        self._entry_of: dict[str, dict[str, Any]] = {}  # relative name -> its COCO images entry
        for entry in self._coco["images"]:
            file_name = entry.get("file_name", "")
            name = file_name if file_name in self._names else self._by_base.get(Path(file_name).name)
            if name is not None:
                self._entry_of.setdefault(name, entry)
        self._boxes_of: dict[Any, list[Box]] = {}  # COCO image id -> its boxes (rebuilt on every save)
        self._index_boxes()

    def _disk_signature(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _refresh(self) -> None:
        """Re-read the file if another writer changed it since we last read or wrote it (call under the lock)."""
        if self._disk_signature() != self._signature:
            self._load()

    def _index_boxes(self) -> None:
        self._boxes_of = {}
        for a in self._coco["annotations"]:
            if _finite_box(a.get("bbox")):
                self._boxes_of.setdefault(a.get("image_id"), []).append(Box.from_xywh(*a["bbox"]))

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def position(self, name: str) -> int:
        """The image's index in the dataset (KeyError if it is not listed)."""
        return self._position[name]

    def sample(self, name: str) -> Sample:
        if name not in self._names:
            raise KeyError(name)
        return self._names[name]

    def get(self, name: str) -> ImageAnnotation:
        with self._lock:
            self._refresh()
            return self._get(name)

    def _get(self, name: str) -> ImageAnnotation:
        entry = self._entry_of.get(name)
        if entry is None:
            return ImageAnnotation(name, (), None, False)
        boxes = tuple(self._boxes_of.get(entry.get("id"), ()))
        seconds = entry.get(SECONDS_KEY)
        return ImageAnnotation(name, boxes, float(seconds) if isinstance(seconds, int | float) else None,
                               bool(boxes) or SECONDS_KEY in entry)

    def _all(self) -> list[ImageAnnotation]:
        with self._lock:
            self._refresh()
            return [self._get(n) for n in self._names]

    def first_to_do(self) -> str | None:
        """The first dataset image that has no box yet and was not accepted without one."""
        return next((a.name for a in self._all() if not a.accepted), None)

    def save(self, name: str, boxes: list[Box], seconds: float) -> ImageAnnotation:
        """Set the image's boxes (clipped to it; empty ones dropped), add ``seconds`` to its time, write the file."""
        if name not in self._names:
            raise KeyError(name)
        if not (math.isfinite(seconds) and seconds >= 0):
            raise DataError(f"seconds must be a finite number >= 0, got {seconds}")
        height, width = image_size(self._names[name].image)
        kept = [b.clip(width, height) for b in boxes]
        kept = [b for b in kept if not b.is_empty]
        with self._lock, exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            self._load()  # as it is now: another server may have saved since
            entry = self._entry_of.get(name)
            if entry is None:
                entry = {"id": 1 + max((e.get("id", 0) for e in self._coco["images"]
                                        if isinstance(e.get("id"), int)), default=0),
                         "file_name": name}
                self._coco["images"].append(entry)
                self._entry_of[name] = entry
            entry.update(width=width, height=height)
            entry[SECONDS_KEY] = round(min(MAX_SECONDS, float(entry.get(SECONDS_KEY, 0.0)) + seconds), 2)
            entry["bpiml_saved"] = datetime.now(UTC).isoformat(timespec="seconds")
            annotations = [a for a in self._coco["annotations"] if a.get("image_id") != entry["id"]]
            next_id = 1 + max((a.get("id", 0) for a in annotations if isinstance(a.get("id"), int)), default=0)
            for i, box in enumerate(kept):
                annotations.append({"id": next_id + i, "image_id": entry["id"], "category_id": TAMPERED_CATEGORY["id"],
                                    "bbox": [round(v, 2) for v in box.to_xywh()], "area": round(box.area, 2),
                                    "iscrowd": 0})
            self._coco["annotations"] = annotations
            write_json_atomic(self.path, self._coco)
            self._signature = self._disk_signature()
            self._index_boxes()
            return self._get(name)

    def stats(self) -> dict[str, Any]:
        """How many images are done, and the mean seconds per image annotated in `bpiml serve`."""
        done = self._all()
        timed = [a.seconds for a in done if a.seconds is not None]
        return {"images": len(done), "accepted": sum(a.accepted for a in done), "timed": len(timed),
                "mean_seconds": round(sum(timed) / len(timed), 2) if timed else None}


def annotation_seconds(coco: dict[str, Any]) -> list[float]:
    """The seconds each image of a box file took to annotate in `bpiml serve` (images it timed only): what an
    annotator really spends per image, for costing annotation (e.g. the adaptation curve's minutes)."""
    return [float(e[SECONDS_KEY]) for e in coco.get("images", []) if isinstance(e, dict)
            and isinstance(e.get(SECONDS_KEY), int | float) and math.isfinite(e[SECONDS_KEY])]


def _finite_box(bbox: Any) -> bool:
    return (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)
            and all(math.isfinite(v) for v in bbox) and bbox[2] > 0 and bbox[3] > 0)
