"""Image degradations shared by synthesis, augmentation and the robustness suite: JPEG
re-encoding, blur, noise and rescaling (a mask, when given, follows the image's geometry)."""

from __future__ import annotations

import cv2
import numpy as np


def jpeg_recompress(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as JPEG at ``quality`` (RGB uint8 in, RGB uint8 out)."""
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def gaussian_blur(image: np.ndarray, kernel: int, sigma: float = 0.0) -> np.ndarray:
    """Gaussian blur with an odd ``kernel`` size (sigma 0: OpenCV derives it from the kernel)."""
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"blur kernel must be odd and positive, got {kernel}")
    return cv2.GaussianBlur(image, (kernel, kernel), sigma)


def gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise with standard deviation ``sigma`` in 0..255 units, clipped."""
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def rescale(image: np.ndarray, scale: float, mask: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize by ``scale`` (area filter down, bilinear up); the mask follows with nearest neighbour."""
    height, width = image.shape[:2]
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    return resize_to(image, size, mask)


def resize_to(image: np.ndarray, size_wh: tuple[int, int], mask: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize to (width, height); the mask follows with nearest neighbour."""
    shrinking = size_wh[0] * size_wh[1] < image.shape[0] * image.shape[1]
    out = cv2.resize(image, size_wh, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if mask is None:
        return out, None
    resized = cv2.resize(mask.astype(np.uint8), size_wh, interpolation=cv2.INTER_NEAREST)
    return out, resized.astype(mask.dtype)


def limit_long_side(image: np.ndarray, long_side: int, mask: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Shrink so the longer side is at most ``long_side`` (never enlarges), as platforms do."""
    height, width = image.shape[:2]
    if max(height, width) <= long_side:
        return image, mask
    return rescale(image, long_side / max(height, width), mask)
