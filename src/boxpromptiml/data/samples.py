"""The one sample type every reader produces, and the dataset that holds them."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path

from ..errors import DataError


class Label(IntEnum):
    """Image-level ground truth. Parsed once at the edge (e.g. IMDL-BenCo's ``"Negative"``)."""

    AUTHENTIC = 0
    TAMPERED = 1


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel-edge coordinates: x1 <= x < x2, y1 <= y < y2."""

    x1: float
    y1: float
    x2: float
    y2: float

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        """Box from COCO's ``[x, y, width, height]``."""
        return cls(float(x), float(y), float(x) + float(w), float(y) + float(h))

    def to_xywh(self) -> list[float]:
        return [self.x1, self.y1, self.width, self.height]

    def to_xyxy(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def clip(self, width: float, height: float) -> Box:
        """The part of the box inside a ``width`` x ``height`` image (may become empty)."""
        return Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )

    def union(self, other: Box) -> Box:
        return Box(min(self.x1, other.x1), min(self.y1, other.y1), max(self.x2, other.x2), max(self.y2, other.y2))

    def gap_to(self, other: Box) -> float:
        """Largest axis gap between two boxes (<= 0 when they touch or overlap)."""
        return max(other.x1 - self.x2, self.x1 - other.x2, other.y1 - self.y2, self.y1 - other.y2)


@dataclass(frozen=True)
class Sample:
    """One image: where it is, its mask (if any), its label, and its boxes (None = not annotated)."""

    image: Path
    mask: Path | None
    label: Label
    boxes: tuple[Box, ...] | None = None

    @property
    def name(self) -> str:
        """Stem of the image file: predictions and pseudo masks are stored as ``<name>.png``."""
        return self.image.stem

    @property
    def is_tampered(self) -> bool:
        return self.label is Label.TAMPERED


@dataclass
class Dataset:
    """An ordered list of samples read from one or more sources.

    ``root`` is the folder relative to which image names are written in annotation files.
    Sample names (file stems) must be unique, because outputs are stored per name.
    """

    samples: list[Sample]
    root: Path
    source: str

    def __post_init__(self) -> None:
        if not self.samples:
            raise DataError(f"{self.source}: contains no samples")
        counts = Counter(s.name for s in self.samples)
        clashes = sorted(name for name, n in counts.items() if n > 1)
        if clashes:
            examples = ", ".join(clashes[:5])
            raise DataError(
                f"{self.source}: {len(clashes)} image name(s) occur more than once ({examples}); "
                "outputs are stored per file stem, so stems must be unique"
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    @property
    def tampered(self) -> list[Sample]:
        return [s for s in self.samples if s.is_tampered]

    @property
    def authentic(self) -> list[Sample]:
        return [s for s in self.samples if not s.is_tampered]

    def relative_name(self, sample: Sample) -> str:
        """The image path relative to ``root`` (POSIX), or absolute if it lies outside."""
        try:
            return sample.image.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return sample.image.resolve().as_posix()

    def by_relative_name(self) -> dict[str, Sample]:
        """Samples keyed by :meth:`relative_name`, in dataset order (how box files and the web app name them)."""
        return {self.relative_name(s): s for s in self.samples}

    def replace_samples(self, samples: list[Sample]) -> Dataset:
        return Dataset(samples=samples, root=self.root, source=self.source)

    def with_boxes(self, boxes_by_name: dict[str, Sequence[Box]]) -> Dataset:
        """Copy with ``boxes`` set from a mapping sample name -> boxes (others unchanged)."""
        return self.replace_samples(
            [replace(s, boxes=tuple(boxes_by_name[s.name])) if s.name in boxes_by_name else s for s in self.samples]
        )

    @staticmethod
    def concat(datasets: Sequence[Dataset]) -> Dataset:
        """One dataset from several (e.g. a tampered list and its authentic list)."""
        if len(datasets) == 1:
            return datasets[0]
        return Dataset(
            samples=[s for d in datasets for s in d.samples],
            root=Path(os.path.commonpath([str(d.root) for d in datasets])),
            source=" + ".join(d.source for d in datasets),
        )

