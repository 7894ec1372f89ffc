"""What the pages need from the models, fast enough to follow a mouse on a laptop CPU.

- :class:`BoxPrompter`: the teacher's pseudo mask for the boxes being drawn. Images are worked on
  at a bounded size (``work_side``), the SAM image embedding is cached per image (only the decoder
  runs per box) and each box's mask is cached, so moving one box re-segments that box only.
- :func:`propose_boxes`: boxes around the regions of a heat map above a threshold (the student's
  suggestions to start annotating from).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import cv2
import numpy as np

from ..data.images import fit_within
from ..data.samples import Box
from ..teachers.base import Teacher


class BoxPrompter:
    """Pseudo masks for boxes on dataset images, with the caches an interactive session needs."""

    def __init__(self, teacher: Teacher, work_side: int = 1024, cached_images: int = 4, cached_boxes: int = 256):
        self.teacher = teacher
        self.work_side = work_side
        if hasattr(teacher, "cache_embeddings"):
            teacher.cache_embeddings(cached_images)
        self._images: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()
        self._masks: OrderedDict[tuple[str, tuple[float, ...]], np.ndarray] = OrderedDict()
        self._cached_images, self._cached_boxes = cached_images, cached_boxes
        self._lock = threading.Lock()  # one segmentation at a time: two would only share the same two cores

    def working_image(self, key: str, load) -> tuple[np.ndarray, float]:
        """The image at working size (``load()`` reads it at full size when not cached) and its scale."""
        if key in self._images:
            self._images.move_to_end(key)
            return self._images[key]
        entry = fit_within(load(), self.work_side)
        self._images[key] = entry
        while len(self._images) > self._cached_images:
            self._images.popitem(last=False)
        return entry

    def prefetch(self, key: str, load) -> None:
        """Load the image at working size and have the teacher encode it, ahead of the annotator's first box (the
        encoder is most of the first box's wait: 0.6 s for later boxes against seconds for the first)."""
        with self._lock:
            image, _ = self.working_image(key, load)
            warm = getattr(self.teacher, "warm", None)
            if warm is not None:
                warm(image)

    def pseudo_mask(self, key: str, load, boxes: list[Box]) -> tuple[np.ndarray, float]:
        """Soft mask (float32, working size) of the union of the boxes (given in full-size pixels), and the scale."""
        with self._lock:
            image, scale = self.working_image(key, load)
            height, width = image.shape[:2]
            union = np.zeros((height, width), np.float32)
            for box in boxes:
                scaled = Box(box.x1 * scale, box.y1 * scale, box.x2 * scale, box.y2 * scale).clip(width, height)
                if scaled.is_empty:
                    continue
                cache_key = (key, tuple(round(v, 1) for v in scaled.to_xyxy()))
                mask = self._masks.get(cache_key)
                if mask is None:
                    mask = self.teacher.segment(image, [scaled])
                    self._masks[cache_key] = mask
                    while len(self._masks) > self._cached_boxes:
                        self._masks.popitem(last=False)
                np.maximum(union, mask, out=union)
            return union, scale


def propose_boxes(probability: np.ndarray, threshold: float = 0.5, min_area_fraction: float = 0.001,
                  max_boxes: int = 10) -> list[Box]:
    """Boxes around the connected regions of ``probability > threshold`` (largest first); specks smaller
    than ``min_area_fraction`` of the image are left out."""
    binary = (probability > threshold).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    min_area = min_area_fraction * probability.size
    regions = [stats[i] for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    regions.sort(key=lambda s: -int(s[cv2.CC_STAT_AREA]))
    return [Box(float(s[0]), float(s[1]), float(s[0] + s[2]), float(s[1] + s[3])) for s in regions[:max_boxes]]
