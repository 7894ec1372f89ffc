"""A tiny procedurally generated IML dataset, for trying the tool and for tests (no download).

Each tampered image is a smooth random colour texture with one or two blobs spliced in from a
second texture (with light noise so the traces are not trivial); authentic images are plain
textures. Written in the ``Tp/ Gt/ Au/`` layout plus an IMDL-BenCo ``dataset.json``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..fileio import write_json_atomic
from .images import PathLike, write_image
from .readers import read_imdl_json
from .samples import Dataset


def random_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth colour texture (blurred noise at two scales plus a gradient), uint8 RGB."""
    coarse = rng.uniform(0, 255, size=(max(height // 32, 2), max(width // 32, 2), 3)).astype(np.float32)
    fine = rng.normal(0, 12, size=(height, width, 3)).astype(np.float32)
    base = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(-30, 30, width, dtype=np.float32)[None, :, None] * rng.uniform(-1, 1, size=3)
    texture = cv2.GaussianBlur(base, (0, 0), 3) + cv2.GaussianBlur(fine, (0, 0), 1.0) + ramp
    return np.clip(texture, 0, 255).astype(np.uint8)


def random_blob(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A bool mask of one random filled polygon covering roughly 2-15% of the image."""
    cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
    radius = rng.uniform(0.08, 0.22) * min(height, width)
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=rng.integers(5, 10)))
    radii = radius * rng.uniform(0.6, 1.4, size=angles.size)
    points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1).astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


def make_toy_dataset(
    out_dir: PathLike, n_tampered: int = 8, n_authentic: int = 4, size: tuple[int, int] = (192, 256), seed: int = 0
) -> Dataset:
    """Write the toy dataset to ``out_dir`` and return it as read back by the IMDL reader."""
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    height, width = size
    pairs: list[list[str]] = []
    for i in range(n_tampered):
        image, donor = random_texture(rng, height, width), random_texture(rng, height, width)
        mask = np.zeros((height, width), bool)
        for _ in range(int(rng.integers(1, 3))):
            mask |= random_blob(rng, height, width)
        image[mask] = donor[mask]
        noisy = image.astype(np.int16) + rng.normal(0, 2, size=image.shape).astype(np.int16)
        write_image(out / "Tp" / f"toy_tp_{i:03d}.png", np.clip(noisy, 0, 255).astype(np.uint8))
        write_image(out / "Gt" / f"toy_tp_{i:03d}.png", mask.astype(np.uint8) * 255)
        pairs.append([f"Tp/toy_tp_{i:03d}.png", f"Gt/toy_tp_{i:03d}.png"])
    for i in range(n_authentic):
        write_image(out / "Au" / f"toy_au_{i:03d}.png", random_texture(rng, height, width))
        pairs.append([f"Au/toy_au_{i:03d}.png", "Negative"])
    write_json_atomic(out / "dataset.json", pairs)
    return read_imdl_json(out / "dataset.json")
