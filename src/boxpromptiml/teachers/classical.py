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


class GrabCutTeacher(Teacher):
    """GrabCut (colour GMMs + graph cut) initialised with each box; a box GrabCut cannot use
    (too thin, or covering the whole image so no background is left) falls back to the box."""

    name = "grabcut"

    def __init__(self, options: TeacherOptions | None = None, iterations: int = 5) -> None:
        super().__init__(options)
        self.iterations = iterations

    def segment_boxes(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        bgr = np.ascontiguousarray(image[..., ::-1])
        return np.stack([self._one(bgr, b) for b in boxes])

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
        return {**super().describe(), "iterations": self.iterations}
