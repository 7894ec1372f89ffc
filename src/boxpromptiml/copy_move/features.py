"""Rotation-invariant patch features: magnitudes of Zernike moments over a disc around every pixel.

A Zernike moment of order (n, m) of a patch turns by m times the angle when the patch is rotated (and is
conjugated when it is mirrored), so its magnitude does not change: a copy that was rotated or flipped keeps
its features. All moments are computed at once as one convolution with the real and imaginary parts of the
Zernike polynomials sampled on the disc.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


def zernike_orders(max_order: int) -> list[tuple[int, int]]:
    """(n, m) with 0 <= m <= n, n - m even: one rotation-invariant magnitude each."""
    return [(n, m) for n in range(max_order + 1) for m in range(n % 2, n + 1, 2)]


def _radial(n: int, m: int, rho: np.ndarray) -> np.ndarray:
    values = np.zeros_like(rho)
    for s in range((n - m) // 2 + 1):
        coefficient = (-1) ** s * math.factorial(n - s) / (
            math.factorial(s) * math.factorial((n + m) // 2 - s) * math.factorial((n - m) // 2 - s))
        values += coefficient * rho ** (n - 2 * s)
    return values


@lru_cache(maxsize=8)
def zernike_kernels(radius: int, max_order: int) -> torch.Tensor:
    """(2K) x 1 x (2r+1) x (2r+1) kernels: real and imaginary part of each order, interleaved."""
    coords = np.arange(-radius, radius + 1, dtype=np.float64) / (radius + 0.5)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    rho, theta = np.hypot(xx, yy), np.arctan2(yy, xx)
    disc = rho <= 1.0
    kernels = []
    for n, m in zernike_orders(max_order):
        radial = _radial(n, m, rho) * disc
        kernels += [radial * np.cos(m * theta), radial * np.sin(m * theta)]
    size = 2 * radius + 1
    return torch.tensor(np.stack(kernels), dtype=torch.float32).reshape(-1, 1, size, size)


def patch_features(gray: torch.Tensor, radius: int, max_order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (K x h x w) and local contrast (h x w, the patch's standard deviation) of every patch that lies
    wholly inside the H x W grey image (h = H - 2r, w = W - 2r). Features are divided by the contrast and
    log-scaled, so a copy whose brightness was scaled still matches and no order dominates the distance."""
    kernels = zernike_kernels(radius, max_order)
    x = gray[None, None]
    response = F.conv2d(x, kernels)[0]
    real, imaginary = response[0::2], response[1::2]
    magnitude = torch.sqrt(real * real + imaginary * imaginary)
    size = 2 * radius + 1
    from .loops import window_means  # numba and LLVM load on first use (~150 MB, mostly shared pages)

    grey = gray.numpy()
    mean = torch.from_numpy(window_means(grey, size))
    square = torch.from_numpy(window_means(grey * grey, size))
    contrast = torch.sqrt((square - mean * mean).clamp_min(0))
    features = torch.log1p(magnitude / contrast.clamp_min(1.0)[None])
    return features, contrast
