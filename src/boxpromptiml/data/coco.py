"""Box annotations in COCO format, the format annotation tools (CVAT, Label Studio, ...) export.

Reading fixes up what annotators commonly get wrong, and says so in the log: boxes reaching
outside the image (when the COCO ``images`` entry gives its size) are clipped to it; boxes with
no area (zero or negative width/height, or nothing left after clipping) are dropped.
Images are matched to dataset samples by their path relative to the dataset root, or else by
file name.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import DataError
from ..fileio import write_json_atomic
from .images import PathLike
from .problems import problem
from .readers import read_json
from .samples import Box, Dataset

log = logging.getLogger(__name__)

TAMPERED_CATEGORY = {"id": 1, "name": "tampered"}


@dataclass
class CocoBoxes:
    """Boxes per COCO ``file_name``, with image sizes where the file gives them."""

    boxes: dict[str, list[Box]]
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # file_name -> (height, width)
    fixups: list[str] = field(default_factory=list)


def read_coco_boxes(path: PathLike) -> CocoBoxes:
    """Read a COCO JSON file into boxes per image file name (see module docstring for fix-ups)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DataError(f"{path}: not a COCO file (expected an object with 'images' and 'annotations' lists)")
    by_id: dict[int, str] = {}
    result = CocoBoxes(boxes={})
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise DataError(f"{path}: images[{i}] needs 'id' and 'file_name'")
        by_id[img["id"]] = img["file_name"]
        result.boxes.setdefault(img["file_name"], [])
        if isinstance(img.get("width"), int | float) and isinstance(img.get("height"), int | float):
            result.sizes[img["file_name"]] = (int(img["height"]), int(img["width"]))
    for i, ann in enumerate(data["annotations"]):
        bbox = ann.get("bbox") if isinstance(ann, dict) else None
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
            problem("box that is not [x, y, width, height] (left out)", f"{path}: annotations[{i}]: {bbox!r}",
                    f"{path}: annotations[{i}] needs 'bbox' = [x, y, width, height], got {bbox!r}")
            continue
        if ann.get("image_id") not in by_id:
            problem("box on an unknown COCO image id (left out)", f"{path}: annotations[{i}]: {ann.get('image_id')!r}",
                    f"{path}: annotations[{i}] refers to unknown image_id {ann.get('image_id')!r}")
            continue
        name = by_id[ann["image_id"]]
        if not all(math.isfinite(v) for v in bbox):
            result.fixups.append(f"annotations[{i}] ({name}): box {bbox} is not made of finite numbers; dropped")
            continue
        box = Box.from_xywh(*bbox)
        if name in result.sizes:
            height, width = result.sizes[name]
            clipped = box.clip(width, height)
            if clipped != box and not clipped.is_empty:
                result.fixups.append(f"annotations[{i}] ({name}): box {bbox} clipped to the {width}x{height} image")
            box = clipped
        if box.is_empty:
            result.fixups.append(f"annotations[{i}] ({name}): box {bbox} has no area inside the image; dropped")
            continue
        result.boxes[name].append(box)
    for note in result.fixups:
        log.warning("%s: %s", path, note)
    return result


def attach_boxes(dataset: Dataset, coco: CocoBoxes, source: str = "boxes") -> Dataset:
    """Set each sample's boxes from ``coco``, matching by relative path, then by file name."""
    by_relative = {PurePosixPath(name).as_posix(): boxes for name, boxes in coco.boxes.items()}
    by_basename: dict[str, list[Box] | None] = {}
    for name, boxes in coco.boxes.items():
        base = PurePosixPath(name).name
        by_basename[base] = None if base in by_basename else boxes  # None marks an ambiguous name
    matched: dict[str, list[Box]] = {}
    for sample in dataset:
        boxes = by_relative.get(dataset.relative_name(sample))
        if boxes is None:
            boxes = by_basename.get(sample.image.name)
        if boxes is not None:
            matched[sample.name] = boxes
    known = {dataset.relative_name(s) for s in dataset} | {s.image.name for s in dataset}
    foreign = sorted(n for n in coco.boxes if n not in known and PurePosixPath(n).name not in known)
    if foreign:
        log.warning("%s: %d of its %d image(s) are not in %s and are ignored (e.g. %s)", source, len(foreign),
                    len(coco.boxes), dataset.source, ", ".join(foreign[:5]))
    unannotated = [s.image.name for s in dataset.tampered if s.name not in matched]
    if unannotated:
        log.warning("%s: %d tampered image(s) have no entry in %s (e.g. %s)", dataset.source, len(unannotated),
                    source, ", ".join(unannotated[:5]))
    if not matched:
        raise DataError(f"{source}: none of its {len(coco.boxes)} image(s) match an image of {dataset.source}")
    return dataset.with_boxes(matched)


def write_coco_boxes(
    path: PathLike,
    dataset: Dataset,
    boxes_by_name: dict[str, list[Box]],
    sizes_by_name: dict[str, tuple[int, int]],
    info: dict | None = None,
) -> Path:
    """Write boxes as COCO JSON (every image listed, with its size; boxes only where given)."""
    images, annotations = [], []
    for image_id, sample in enumerate(dataset, start=1):
        height, width = sizes_by_name[sample.name]
        images.append({"id": image_id, "file_name": dataset.relative_name(sample), "width": width, "height": height})
        for box in boxes_by_name.get(sample.name, []):
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": TAMPERED_CATEGORY["id"],
                "bbox": [round(v, 2) for v in box.to_xywh()],
                "area": round(box.area, 2),
                "iscrowd": 0,
            })
    coco = {"info": info or {}, "images": images, "annotations": annotations, "categories": [TAMPERED_CATEGORY]}
    return write_json_atomic(path, coco)
