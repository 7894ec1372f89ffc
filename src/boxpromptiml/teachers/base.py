"""The teacher interface: a frozen model that turns boxes into a soft mask.

``teacher.segment(image_rgb_uint8, boxes) -> float32 HxW in [0, 1]``: the union (pixel-wise
maximum) of one mask per box, at the image's own size. Teachers never train.

Photos with a longer side over ``WORK_SIDE`` are segmented on a copy shrunk to it, and the mask is
scaled back up: SAM sees 256-1024 px anyway and GrabCut gains nothing from more pixels, while a
12000 x 9000 photo at full size needed over 20 GB. Peak memory then stays near one full-size
float32 map (the output; its box clip is a uint8 mask) beside the photo.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import cv2
import numpy as np

from ..boxes.simulate import boxes_to_mask
from ..data.images import fit_within
from ..data.samples import Box
from ..errors import DataError

WORK_SIDE = 2048  # teachers segment larger photos at this longer side (see the module docstring)

BoxesLike = Sequence[Box] | np.ndarray


class OutputKind(StrEnum):
    SOFT = "soft"  # probabilities, what the student distils from
    HARD = "hard"  # 0 / 1 at 0.5


@dataclass(frozen=True)
class TeacherOptions:
    """Options every teacher honours."""

    clip_to_box: bool = True  # a box says where the tampering is: nothing outside it counts
    output: OutputKind = OutputKind.SOFT

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, StrEnum) else v for k, v in asdict(self).items()}


def as_boxes(boxes: BoxesLike, height: int, width: int) -> list[Box]:
    """Boxes as :class:`Box` clipped to the image; boxes with no area inside it are dropped."""
    if isinstance(boxes, np.ndarray):
        if boxes.size == 0:
            return []
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must be an N x 4 array (x1, y1, x2, y2), got shape {boxes.shape}")
        boxes = [Box(*map(float, row)) for row in boxes]
    clipped = [b.clip(width, height) for b in boxes]
    return [b for b in clipped if not b.is_empty]


def check_image(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        shape = getattr(image, "shape", None)
        raise DataError(f"teachers take RGB uint8 images of shape HxWx3, got {getattr(image, 'dtype', type(image))} "
                        f"{shape}")


class Teacher(ABC):
    """A frozen box-prompted segmenter."""

    name: str = "teacher"

    def __init__(self, options: TeacherOptions | None = None) -> None:
        self.options = options or TeacherOptions()

    def segment(self, image: np.ndarray, boxes: BoxesLike) -> np.ndarray:
        """Soft (or hard) mask, float32 HxW in [0, 1], of the union of the boxes' objects."""
        check_image(image)
        height, width = image.shape[:2]
        boxes = as_boxes(boxes, height, width)
        if not boxes:
            return np.zeros((height, width), np.float32)
        if max(height, width) > WORK_SIDE:
            return self._segment_shrunk(image, boxes)
        per_box = self.segment_boxes(image, boxes)
        if self.options.clip_to_box:
            per_box = per_box * np.stack([boxes_to_mask([b], (height, width)) for b in boxes])
        out = per_box.max(axis=0).astype(np.float32)
        if self.options.output is OutputKind.HARD:
            out = (out > 0.5).astype(np.float32)
        return out

    def segment_uint8(self, image: np.ndarray, boxes: BoxesLike) -> np.ndarray:
        """:meth:`segment` quantised to 0..255 (what pseudo-label files hold). A large photo's mask is quantised at
        the working size and scaled up as uint8: a full-size float32 map of a 12000 x 9000 photo would be 430 MB."""
        from ..data.images import probability_to_uint8

        check_image(image)
        height, width = image.shape[:2]
        boxes = as_boxes(boxes, height, width)
        if not boxes or max(height, width) <= WORK_SIDE:
            return probability_to_uint8(self.segment(image, boxes))
        return self._segment_shrunk(image, boxes, quantised=True)

    def _segment_shrunk(self, image: np.ndarray, boxes: list[Box], quantised: bool = False) -> np.ndarray:
        """:meth:`segment` of a large photo through a copy shrunk to ``WORK_SIDE``, scaled back to full size
        (``quantised``: as uint8 0..255, quantised before it is scaled up)."""
        from ..data.images import probability_to_uint8

        height, width = image.shape[:2]
        small, scale = fit_within(image, WORK_SIDE)
        small_map = self.segment(small, [Box(b.x1 * scale, b.y1 * scale, b.x2 * scale, b.y2 * scale) for b in boxes])
        if quantised:
            small_map = probability_to_uint8(small_map)
        out = cv2.resize(small_map, (width, height), interpolation=cv2.INTER_LINEAR)
        if self.options.clip_to_box:  # the upscaled edge must not spill past a box (a uint8 mask: a quarter of
            np.multiply(out, boxes_to_mask(boxes, (height, width), np.uint8), out=out)  # a float32 one's memory)
        if self.options.output is OutputKind.HARD:  # 0 / 1 (0 / 255 quantised) again after interpolation, in place
            if quantised:
                np.multiply(out > 127, np.uint8(255), out=out)
            else:
                np.greater(out, 0.5, out=out, casting="unsafe")
        return out

    @abstractmethod
    def segment_boxes(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """One probability map per box: float32 N x H x W (boxes already clipped, non-empty)."""

    def to(self, device: Any) -> Teacher:
        """Move the teacher's network to ``device`` (classical teachers have none); returns self."""
        return self

    def describe(self) -> dict[str, Any]:
        """What produced the masks (saved in pseudo-label manifests)."""
        return {"teacher": self.name, "options": self.options.to_dict()}
