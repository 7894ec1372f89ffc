"""BSDS500-style natural images with segment label maps: source material for synthesis."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from .images import IMAGE_EXTENSIONS, PathLike, read_label_map
from .samples import Dataset, Label, Sample

BSDS_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SegmentedImage:
    """A natural image and its label map (one integer id per region)."""

    image: Path
    segments: Path
    split: str


def read_bsds500(root: PathLike, splits: tuple[str, ...] = BSDS_SPLITS) -> list[SegmentedImage]:
    """List ``images/<split>/*`` with their ``segments/<split>/<stem>.png`` label maps."""
    root = Path(root)
    unknown = set(splits) - set(BSDS_SPLITS)
    if unknown:
        raise DataError(f"unknown BSDS split(s) {sorted(unknown)}; known: {', '.join(BSDS_SPLITS)}")
    items, missing = [], []
    for split in splits:
        folder = root / "images" / split
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found (expected BSDS500 layout images/<split>/)")
        for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
            segments = root / "segments" / split / f"{image.stem}.png"
            if segments.is_file():
                items.append(SegmentedImage(image, segments, split))
            else:
                missing.append(str(segments))
    if missing:
        raise DataError(f"{root}: {len(missing)} image(s) have no label map, e.g. {missing[0]}")
    if not items:
        raise DataError(f"{root}: no images found in splits {', '.join(splits)}")
    return items


def read_bsds_as_dataset(root: PathLike, splits: tuple[str, ...] = BSDS_SPLITS) -> Dataset:
    """The BSDS images as an all-authentic dataset (they are untouched natural photographs)."""
    items = read_bsds500(root, splits)
    return Dataset([Sample(it.image, None, Label.AUTHENTIC) for it in items], Path(root), f"{root}")


def _boundary_contrast(image: np.ndarray, labels: np.ndarray) -> float:
    """Mean image gradient on the label boundaries over the mean gradient: high when they align."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gradient = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    boundary = (np.diff(labels, axis=0, prepend=labels[:1]) != 0) \
        | (np.diff(labels, axis=1, prepend=labels[:, :1]) != 0)
    return float(gradient[boundary].mean() / max(gradient.mean(), 1e-6)) if boundary.any() else 0.0


def aligned_label_map(item: SegmentedImage, image: np.ndarray) -> np.ndarray:
    """The item's label map, turned to lie on its image.

    Documented fix-up: in the shared BSDS500 copy, 63 of the 500 label maps are portrait while
    their images are landscape (a quarter turn, not a transpose). Such a map is turned by 90
    degrees in whichever direction puts its region boundaries on the image's edges (62 of 63 go
    clockwise, and clearly). Any other size mismatch is an error naming both files.
    """
    labels = read_label_map(item.segments)
    if labels.shape == image.shape[:2]:
        return labels
    if labels.shape[::-1] != image.shape[:2]:
        raise DataError(f"label map {item.segments} is {labels.shape[1]}x{labels.shape[0]} but image {item.image} "
                        f"is {image.shape[1]}x{image.shape[0]}")
    turns = max((1, 3), key=lambda k: _boundary_contrast(image, np.rot90(labels, k)))
    return np.ascontiguousarray(np.rot90(labels, turns))
