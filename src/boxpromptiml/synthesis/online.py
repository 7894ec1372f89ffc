"""Forgeries made on the fly, a fresh one for every training sample, that teach traces, not objects.

The offline synthesizer pastes whole segmented objects, which teaches a student to mark salient
objects. Here regions are random shapes as often as object shapes (polygons, smooth blobs, brush
strokes), and the pasted content gets a processing history of its own (JPEG at another quality,
resampling, noise, blur) before the whole image is saved once more as JPEG: the region differs
from its surroundings in its traces (double compression, noise level, interpolation), which is
what generalises to real forgeries. Everything is seeded by the caller's generator: the same
seed gives the same image and the exact mask of the pixels that were changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..data.degrade import gaussian_blur, gaussian_noise, jpeg_recompress
from .clones import clone
from .forgeries import Forgery, PasteParams, forge

SHAPES = ("polygon", "blob", "stroke")  # drawn at random; "object" regions follow a segment of the source photo


@dataclass(frozen=True)
class OnlineSynthesisConfig:
    """How each fresh forgery is drawn."""

    kind_weights: dict[str, float] = field(default_factory=lambda: {"splice": 0.5, "copy_move": 0.3, "removal": 0.2})
    shape_weights: dict[str, float] = field(default_factory=lambda: {"polygon": 0.4, "blob": 0.4, "stroke": 0.2})
    region_fraction: tuple[float, float] = (0.005, 0.12)  # region area as a fraction of the image
    trace_jpeg: float = 0.6  # the pasted content is JPEG-compressed at its own quality first
    trace_resample: float = 0.4  # ... resampled (down and up again)
    trace_noise: float = 0.3  # ... given noise of another level
    trace_blur: float = 0.2  # ... slightly blurred
    final_jpeg: float = 0.7  # the forged image is saved as JPEG once more (double compression inside)
    quality: tuple[int, int] = (60, 98)
    # Share of splices and copy-moves whose region is an object-like segment of the source photo (Felzenszwalb),
    # as in CASIA, where whole objects are pasted; the rest are random shapes. 0 = random shapes only.
    object_share: float = 0.0
    object_fraction: tuple[float, float] = (0.01, 0.25)  # area of object regions as a fraction of the image
    # Share of the forgeries that are plain copy-moves of non-object regions with no processing of their own
    # (synthesis/clones.py): only the match with their source gives them away. 0 = none.
    clone_share: float = 0.0
    paste: PasteParams = field(default_factory=lambda: PasteParams(scale_range=(0.8, 1.2), max_rotation=15.0))


def _weighted_choice(weights: dict[str, float], rng: np.random.Generator) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def random_region(shape: tuple[int, int], rng: np.random.Generator, kind: str,
                  fraction: tuple[float, float] = (0.005, 0.12)) -> np.ndarray:
    """A boolean region of ``kind`` (polygon, blob or stroke) covering roughly ``fraction`` of the image."""
    height, width = shape
    target_area = rng.uniform(*fraction) * height * width
    radius = np.sqrt(target_area / np.pi)
    cy = rng.uniform(radius, max(radius + 1, height - radius))
    cx = rng.uniform(radius, max(radius + 1, width - radius))
    canvas = np.zeros(shape, np.uint8)
    if kind == "polygon":
        n = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = radius * rng.uniform(0.6, 1.5, n)
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 1)
    elif kind == "blob":
        angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        wobble = np.convolve(np.tile(rng.normal(0, 0.35, 32), 3), np.ones(5) / 5, mode="same")[32:64]
        radii = radius * np.clip(1 + wobble, 0.4, 1.8)
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 1)
    elif kind == "stroke":
        thickness = max(3, int(radius * rng.uniform(0.3, 0.6)))
        length = target_area / thickness
        steps = int(rng.integers(3, 7))
        angle = rng.uniform(0, 2 * np.pi)
        points = [(cx, cy)]
        for _ in range(steps):
            angle += rng.normal(0, 0.6)
            step = length / steps
            points.append((points[-1][0] + np.cos(angle) * step, points[-1][1] + np.sin(angle) * step))
        cv2.polylines(canvas, [np.round(np.array(points)).astype(np.int32)], False, 1, thickness)
    else:
        raise ValueError(f"unknown region shape {kind!r}; known: {', '.join(SHAPES)}")
    if canvas.sum() < 16:  # degenerate draw: fall back to a disc
        cv2.circle(canvas, (int(cx), int(cy)), max(3, int(radius)), 1, -1)
    return canvas.astype(bool)


def object_region(source: np.ndarray, rng: np.random.Generator, fraction: tuple[float, float] = (0.01, 0.25),
                  work_side: int = 256) -> np.ndarray | None:
    """A boolean region that follows one segment (an object or part of one) of ``source``, covering a share of
    the image within ``fraction``; None when no segment has such a size. Segmented at ``work_side`` px."""
    from skimage.segmentation import felzenszwalb

    height, width = source.shape[:2]
    scale = min(1.0, work_side / max(height, width))
    small = cv2.resize(source, (max(8, round(width * scale)), max(8, round(height * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else source
    labels = felzenszwalb(small, scale=float(rng.uniform(150, 400)), sigma=0.8, min_size=40)
    areas = np.bincount(labels.ravel()) / labels.size
    candidates = np.flatnonzero((areas >= fraction[0]) & (areas <= fraction[1]))
    if candidates.size == 0:
        return None
    chosen = (labels == int(rng.choice(candidates))).astype(np.uint8)
    if chosen.shape != (height, width):
        chosen = cv2.resize(chosen, (width, height), interpolation=cv2.INTER_NEAREST)
    return chosen.astype(bool) if chosen.sum() >= 16 else None


def trace_history(image: np.ndarray, config: OnlineSynthesisConfig, rng: np.random.Generator) -> np.ndarray:
    """The image with a processing history of its own (what the pasted content carries)."""
    out = image
    if rng.random() < config.trace_resample:
        height, width = out.shape[:2]
        factor = rng.uniform(0.5, 0.9)
        small = cv2.resize(out, (max(8, int(width * factor)), max(8, int(height * factor))),
                           interpolation=cv2.INTER_AREA)
        upscale = cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC
        out = cv2.resize(small, (width, height), interpolation=upscale)
    if rng.random() < config.trace_blur:
        out = gaussian_blur(out, 3)
    if rng.random() < config.trace_noise:
        out = gaussian_noise(out, float(rng.uniform(2.0, 8.0)), rng)
    if rng.random() < config.trace_jpeg:
        out = jpeg_recompress(out, int(rng.integers(config.quality[0], config.quality[1] + 1)))
    return out


def forge_online(host: np.ndarray, donor: np.ndarray, rng: np.random.Generator,
                 config: OnlineSynthesisConfig | None = None) -> Forgery:
    """One fresh forgery of ``host`` (``donor`` supplies spliced content); retries until one succeeds."""
    config = config or OnlineSynthesisConfig()
    def region_of(source: np.ndarray, shape: str, fraction: tuple[float, float]) -> tuple[np.ndarray, str]:
        if shape == "object":
            region = object_region(source, rng, config.object_fraction)
            if region is not None:
                return region, shape
            shape = "blob"  # no segment of a usable size in this photo
        return random_region(host.shape[:2], rng, shape, fraction), shape

    for _ in range(10):
        if config.clone_share > 0 and rng.random() < config.clone_share:
            forgery = clone(host, rng)
            if forgery is not None:
                forgery.record.update(kind="clone")
                break
            continue
        kind = _weighted_choice(config.kind_weights, rng)
        shape = _weighted_choice(config.shape_weights, rng)
        if kind != "removal" and config.object_share > 0 and rng.random() < config.object_share:
            shape = "object"
        fraction = config.region_fraction if kind != "removal" else (config.region_fraction[0], 0.05)
        if kind == "splice":
            source = cv2.resize(donor, host.shape[1::-1]) if donor.shape != host.shape else donor
            region, shape = region_of(source, shape, fraction)
            forgery = forge(kind, host, region, rng, config.paste, donor=trace_history(source, config, rng))
        elif kind == "copy_move":
            region, shape = region_of(host, shape, fraction)
            forgery = forge(kind, trace_history(host, config, rng), region, rng, config.paste)
            if forgery is not None:  # only the copy carries the other history; the rest stays the host's pixels
                forgery.image = np.where(forgery.mask[..., None], forgery.image, host)
        else:
            region = random_region(host.shape[:2], rng, shape, fraction)
            forgery = forge(kind, host, region, rng, config.paste)
        if forgery is not None and forgery.mask.any():
            forgery.record.update(kind=kind, shape=shape)
            break
    else:  # pragma: no cover - ten failed draws in a row
        raise RuntimeError("could not place a forgery in the host image")
    if rng.random() < config.final_jpeg:
        quality = int(rng.integers(config.quality[0], config.quality[1] + 1))
        forgery.image = jpeg_recompress(forgery.image, quality)
        forgery.record["final_jpeg"] = quality
    return forgery
