"""Simulated coarse annotation: the boxes a person draws around tampered regions in ~7 s.

For datasets that have pixel masks we derive boxes as an annotator would draw them:
1. one box per 8-connected tampered region; regions smaller than ``min_area`` (fraction of the
   image) are dropped as mask noise, but the largest region is always kept;
2. boxes that touch or lie within ``merge_gap`` (fraction of the image's long side) of each other
   are merged, as one quick stroke would cover them (``None`` disables merging);
3. each side is pushed out by ``margin`` x the box's width/height (default 10%: loose boxes are
   what people draw quickly, and the paper's annotators were not asked for tight ones);
4. each side is then moved by a uniform random amount in ``[-jitter, +jitter]`` x width/height
   (default 5%, below the margin, so the region stays inside its box);
5. the box is clipped to the image and rounded outwards to whole pixels.
Randomness is seeded per image (seed + image name), so results do not depend on order.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ..data.samples import Box
from ..errors import ConfigError


@dataclass(frozen=True)
class BoxSimulationConfig:
    """How loosely the simulated annotator draws (see module docstring)."""

    margin: float = 0.10
    jitter: float = 0.05
    min_area: float = 0.001
    merge_gap: float | None = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.margin < 0 or self.jitter < 0 or not 0 <= self.min_area < 1:
            raise ConfigError(f"invalid box simulation settings: {self}")
        if self.merge_gap is not None and self.merge_gap < 0:
            raise ConfigError(f"merge_gap must be >= 0 or None, got {self.merge_gap}")

    def to_dict(self) -> dict:
        return asdict(self)


def rng_for(name: str, seed: int) -> np.random.Generator:
    """A generator that depends only on the seed and the image name."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def region_boxes(mask: np.ndarray, min_area: float = 0.0) -> list[Box]:
    """Tight boxes of the 8-connected regions of a bool mask, small ones dropped (largest kept)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    regions = stats[1:]  # row 0 is the background
    if len(regions) == 0:
        return []
    keep = regions[:, cv2.CC_STAT_AREA] >= min_area * mask.size
    keep[np.argmax(regions[:, cv2.CC_STAT_AREA])] = True
    return [
        Box(float(x), float(y), float(x + w), float(y + h))
        for x, y, w, h, _ in regions[keep]
    ]


def merge_close_boxes(boxes: list[Box], max_gap: float) -> list[Box]:
    """Repeatedly merge pairs of boxes whose gap is at most ``max_gap`` pixels."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if boxes[i].gap_to(boxes[j]) <= max_gap:
                    boxes[i] = boxes[i].union(boxes.pop(j))
                    merged = True
                    break
            if merged:
                break
    return boxes


def loosen_box(box: Box, margin: float, jitter: float, rng: np.random.Generator, width: int, height: int) -> Box:
    """Expand by the margin, jitter each side, clip to the image and round outwards."""
    w, h = box.width, box.height
    shifts = rng.uniform(-jitter, jitter, size=4) if jitter > 0 else np.zeros(4)
    loose = Box(
        box.x1 - (margin + shifts[0]) * w,
        box.y1 - (margin + shifts[1]) * h,
        box.x2 + (margin + shifts[2]) * w,
        box.y2 + (margin + shifts[3]) * h,
    ).clip(width, height)
    return Box(float(np.floor(loose.x1)), float(np.floor(loose.y1)), float(np.ceil(loose.x2)), float(np.ceil(loose.y2)))


def simulate_boxes(mask: np.ndarray, config: BoxSimulationConfig, rng: np.random.Generator) -> list[Box]:
    """Boxes an annotator would draw for a bool mask (empty list for an empty mask)."""
    height, width = mask.shape
    boxes = region_boxes(mask, config.min_area)
    if config.merge_gap is not None:
        boxes = merge_close_boxes(boxes, config.merge_gap * max(height, width))
    return [loosen_box(b, config.margin, config.jitter, rng, width, height) for b in boxes]


def boxes_to_mask(boxes: list[Box] | tuple[Box, ...], shape: tuple[int, int],
                  dtype: type[np.generic] = np.float32) -> np.ndarray:
    """Map (float32 unless ``dtype`` says otherwise) with 1 on pixels whose centre lies inside any box (the 'filled
    box' target)."""
    height, width = shape
    out = np.zeros((height, width), dtype=dtype)
    for box in boxes:
        x1, x2 = (int(np.clip(np.ceil(v - 0.5), 0, width)) for v in (box.x1, box.x2))
        y1, y2 = (int(np.clip(np.ceil(v - 0.5), 0, height)) for v in (box.y1, box.y2))
        out[y1:y2, x1:x2] = 1.0
    return out
