"""Paired augmentation: geometry moves image, target and box region together; colour and JPEG
re-compression touch the image only (so the student does not lean on one compression level)."""

from __future__ import annotations

import numpy as np

from ..data.degrade import jpeg_recompress
from .config import AugmentConfig


def random_resized_crop(arrays: list[np.ndarray], rng: np.random.Generator, scale_min: float) -> list[np.ndarray]:
    """The same random crop (side fraction in [scale_min, 1], aspect kept) of every array."""
    height, width = arrays[0].shape[:2]
    frac = rng.uniform(scale_min, 1.0)
    ch, cw = max(1, int(height * frac)), max(1, int(width * frac))
    y, x = rng.integers(0, height - ch + 1), rng.integers(0, width - cw + 1)
    return [a[y:y + ch, x:x + cw] for a in arrays]


def colour_jitter(image: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Random brightness, contrast and saturation changes of up to +/- ``amount``."""
    img = image.astype(np.float32)
    img = img * rng.uniform(1 - amount, 1 + amount)  # brightness
    mean = img.mean()
    img = (img - mean) * rng.uniform(1 - amount, 1 + amount) + mean  # contrast
    gray = img.mean(axis=2, keepdims=True)
    img = (img - gray) * rng.uniform(1 - amount, 1 + amount) + gray  # saturation
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def native_crop(arrays: list[np.ndarray], size: int, rng: np.random.Generator,
                focus: float = 0.5, grid: int = 1) -> list[np.ndarray]:
    """The same ``size`` x ``size`` crop of every array at native scale (zero-padded if smaller).

    With probability ``focus`` the crop is centred (up to a random shift) on a pixel where the
    second array, the target, exceeds 0.5, so that small tampered regions are not mostly missed.
    The crop's corner lies on multiples of ``grid`` (8 keeps the JPEG block grid of the image).
    """
    height, width = arrays[0].shape[:2]
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        arrays = [np.pad(a, ((0, pad_h), (0, pad_w)) + ((0, 0),) * (a.ndim - 2)) for a in arrays]
        height, width = height + pad_h, width + pad_w
    ys, xs = np.nonzero(arrays[1] > 0.5) if rng.random() < focus else ((), ())
    if len(ys):
        pick = rng.integers(len(ys))
        cy, cx = ys[pick] + rng.integers(-size // 4, size // 4 + 1), xs[pick] + rng.integers(-size // 4, size // 4 + 1)
        y, x = int(np.clip(cy - size // 2, 0, height - size)), int(np.clip(cx - size // 2, 0, width - size))
    else:
        y, x = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    y, x = y - y % grid, x - x % grid  # still inside: the largest corner, height - size, only moves down
    return [a[y:y + size, x:x + size] for a in arrays]


def augment(image: np.ndarray, target: np.ndarray, region: np.ndarray, config: AugmentConfig,
            rng: np.random.Generator, crop: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augmented (image, soft target, box region); all keep their relative alignment.
    ``crop=False`` skips the random resized crop (native-resolution students crop without resampling)."""
    if crop and config.scale_min < 1.0:
        image, target, region = random_resized_crop([image, target, region], rng, config.scale_min)
    if rng.random() < config.hflip:
        image, target, region = image[:, ::-1], target[:, ::-1], region[:, ::-1]
    if config.colour > 0:
        image = colour_jitter(image, rng, config.colour)
    if rng.random() < config.jpeg:
        image = jpeg_recompress(np.ascontiguousarray(image),
                                rng.integers(config.jpeg_quality_min, config.jpeg_quality_max + 1))
    return np.ascontiguousarray(image), np.ascontiguousarray(target), np.ascontiguousarray(region)
