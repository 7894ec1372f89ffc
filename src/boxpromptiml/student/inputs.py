"""How an RGB uint8 image becomes the student's input tensor (shared by training and inference)."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def image_to_input(image: np.ndarray, size: int) -> torch.Tensor:
    """RGB uint8 HxWx3 -> 3 x size x size float in [0, 1] (area-averaged when shrinking)."""
    shrinking = min(image.shape[:2]) > size
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1).float().div_(255.0)
