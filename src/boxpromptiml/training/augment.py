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


def augment(image: np.ndarray, target: np.ndarray, region: np.ndarray, config: AugmentConfig,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augmented (image, soft target, box region); all keep their relative alignment."""
    if config.scale_min < 1.0:
        image, target, region = random_resized_crop([image, target, region], rng, config.scale_min)
    if rng.random() < config.hflip:
        image, target, region = image[:, ::-1], target[:, ::-1], region[:, ::-1]
    if config.colour > 0:
        image = colour_jitter(image, rng, config.colour)
    if rng.random() < config.jpeg:
        image = jpeg_recompress(np.ascontiguousarray(image),
                                rng.integers(config.jpeg_quality_min, config.jpeg_quality_max + 1))
    return np.ascontiguousarray(image), np.ascontiguousarray(target), np.ascontiguousarray(region)
