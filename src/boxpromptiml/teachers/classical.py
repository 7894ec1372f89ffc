"""Classical baselines: the filled box, and OpenCV's GrabCut initialised with the box."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..boxes.simulate import boxes_to_mask
from ..data.samples import Box
from .base import Teacher, TeacherOptions


class BoxTeacher(Teacher):
    """The filled box itself: what the annotation alone says."""

    name = "box"

    def segment_boxes(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        return np.stack([boxes_to_mask([b], image.shape[:2]) for b in boxes])


# GrabCut builds a graph over every pixel it is given: on a 2048 x 1536 photo that is ~600 MB. Photos over this many
# pixels are cut on a crop around each box instead (the box, a margin of context, shrunk to this size if needed).
# CASIA and COVERAGE photos are far smaller, so their pseudo masks are what they were.
GRABCUT_MAX_PIXELS = 1_000_000
GRABCUT_CONTEXT = 0.5  # the crop's margin around a box, as a share of the box's longer side (at least 16 px)


class GrabCutTeacher(Teacher):
    """GrabCut (colour GMMs + graph cut) initialised with each box; a box GrabCut cannot use
    (too thin, or covering the whole image so no background is left) falls back to the box.

    ``context``: None cuts each box on the whole photo, except on photos over ``GRABCUT_MAX_PIXELS`` where a crop
    around the box (``GRABCUT_CONTEXT``) is cut; a number always cuts a crop, the box grown by that share of its
    longer side (at least 16 px), so the colour models learn the box's own surroundings. Crops are shrunk to at most
    ``GRABCUT_MAX_PIXELS``."""

    name = "grabcut"

    def __init__(self, options: TeacherOptions | None = None, iterations: int = 5,
                 context: float | None = None) -> None:
        super().__init__(options)
        if iterations < 1:
            raise ValueError(f"GrabCut needs at least 1 iteration, got {iterations}")
        if context is not None and context < 0:
            raise ValueError(f"GrabCut's crop context must be >= 0, got {context}")
        self.iterations = iterations
        self.context = context

    def segment_boxes(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        bgr = np.ascontiguousarray(image[..., ::-1])
        return np.stack([self._bounded(bgr, b) for b in boxes])

    def _bounded(self, bgr: np.ndarray, box: Box) -> np.ndarray:
        """:meth:`_one` on the whole photo (``context`` None and a small photo), else on a crop around the box
        (shrunk to at most ``GRABCUT_MAX_PIXELS``), the mask put back at the photo's size."""
        height, width = bgr.shape[:2]
        if self.context is None and height * width <= GRABCUT_MAX_PIXELS:
            return self._one(bgr, box)
        context = GRABCUT_CONTEXT if self.context is None else self.context
        grow = max(16.0, context * max(box.width, box.height))
        crop = Box(box.x1 - grow, box.y1 - grow, box.x2 + grow, box.y2 + grow).clip(width, height)
        x1, y1, x2, y2 = int(crop.x1), int(crop.y1), int(np.ceil(crop.x2)), int(np.ceil(crop.y2))
        if x2 - x1 < 2 or y2 - y1 < 2:
            return boxes_to_mask([box], (height, width))
        patch = bgr[y1:y2, x1:x2]
        scale = min(1.0, (GRABCUT_MAX_PIXELS / patch.shape[0] / patch.shape[1]) ** 0.5)
        local = Box((box.x1 - x1) * scale, (box.y1 - y1) * scale, (box.x2 - x1) * scale, (box.y2 - y1) * scale)
        if scale < 1.0:
            patch = cv2.resize(patch, (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale))),
                               interpolation=cv2.INTER_AREA)
        cut = self._one(np.ascontiguousarray(patch), local)
        if scale < 1.0:
            cut = (cv2.resize(cut, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.float32)
        out = np.zeros((height, width), np.float32)
        out[y1:y2, x1:x2] = cut
        return out

    def _one(self, bgr: np.ndarray, box: Box) -> np.ndarray:
        height, width = bgr.shape[:2]
        x1, y1 = int(round(box.x1)), int(round(box.y1))
        w, h = int(round(box.x2)) - x1, int(round(box.y2)) - y1
        covers_all = x1 <= 0 and y1 <= 0 and x1 + w >= width and y1 + h >= height
        if w < 2 or h < 2 or covers_all:
            return boxes_to_mask([box], (height, width))
        mask = np.zeros((height, width), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GrabCut's GMM initialisation is random: same image + box -> same mask
        try:
            cv2.grabCut(bgr, mask, (x1, y1, w, h), bgd, fgd, self.iterations, cv2.GC_INIT_WITH_RECT)
        except cv2.error:
            return boxes_to_mask([box], (height, width))
        return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "iterations": self.iterations, "context": self.context}
