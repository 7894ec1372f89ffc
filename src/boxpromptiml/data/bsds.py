"""BSDS500-style natural images with segment label maps: source material for synthesis."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .images import IMAGE_EXTENSIONS, PathLike
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
