"""Plain copy-moves ("clones") of non-object regions: what CASIA's ``Sp_S`` and COVERAGE forgers do.

A clone copies a region of a photo elsewhere in the same photo with nothing but a geometric change
(rotation, scale, mirroring, sometimes a soft edge). The copy carries no processing history of its
own and the source stays untouched, so the only evidence is that two places of the photo match:
exactly what the student's self-similarity branch looks for. Regions are shapes that are not
objects (rectangles, ellipses, triangles and other polygons, long strips, patches of texture),
so that the student learns "this matches that", not "this is an object". The copy lands within
``max_shift`` of its source (as a fraction of the image's longer side), so that a training crop
usually holds both. No I/O here.
"""

from __future__ import annotations

import cv2
import numpy as np

from .forgeries import Forgery, transform_region

CLONE_SHAPES = ("rectangle", "ellipse", "polygon", "strip", "texture")


def _rotated_rectangle(shape: tuple[int, int], centre: tuple[float, float], size: tuple[float, float],
                       angle: float) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    points = cv2.boxPoints(((centre[0], centre[1]), (size[0], size[1]), angle))
    cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 1)
    return canvas


def _textured_centre(image: np.ndarray, rng: np.random.Generator, margin: float) -> tuple[float, float]:
    """A position drawn with probability growing with local gradient energy (a patch of texture)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    energy = cv2.blur(energy, (15, 15))
    m = int(min(margin, min(image.shape[:2]) / 2 - 1))
    if m > 0:
        energy = energy[m:-m, m:-m]
    p = energy.ravel() ** 2
    if p.sum() <= 0:
        p = np.ones_like(p)
    index = int(rng.choice(p.size, p=p / p.sum()))
    y, x = divmod(index, energy.shape[1])
    return float(x + max(m, 0)), float(y + max(m, 0))


def clone_region(image: np.ndarray, rng: np.random.Generator, kind: str,
                 fraction: tuple[float, float] = (0.005, 0.08)) -> np.ndarray:
    """A boolean source region of ``kind`` (see CLONE_SHAPES) covering roughly ``fraction`` of the image."""
    height, width = image.shape[:2]
    area = rng.uniform(*fraction) * height * width
    side = np.sqrt(area)
    if kind == "texture":
        cx, cy = _textured_centre(image, rng, side / 2)
    else:
        cx, cy = rng.uniform(side / 2, max(side / 2 + 1, width - side / 2)), \
            rng.uniform(side / 2, max(side / 2 + 1, height - side / 2))
    angle = float(rng.uniform(0, 180))
    if kind in ("rectangle", "texture"):
        aspect = rng.uniform(0.5, 2.0)
        region = _rotated_rectangle((height, width), (cx, cy), (side * np.sqrt(aspect), side / np.sqrt(aspect)),
                                    angle if kind == "rectangle" and rng.random() < 0.5 else 0.0)
    elif kind == "strip":
        aspect = rng.uniform(4.0, 10.0)
        region = _rotated_rectangle((height, width), (cx, cy), (side * np.sqrt(aspect), side / np.sqrt(aspect)),
                                    angle)
    elif kind == "ellipse":
        aspect = rng.uniform(0.6, 1.6)
        axes = (max(2, int(side / 2 * np.sqrt(aspect) * 1.13)), max(2, int(side / 2 / np.sqrt(aspect) * 1.13)))
        region = np.zeros((height, width), np.uint8)
        cv2.ellipse(region, (int(cx), int(cy)), axes, angle, 0, 360, 1, -1)
    elif kind == "polygon":  # triangles to hexagons, convex
        n = int(rng.integers(3, 7))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = side * 0.75
        points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
        region = np.zeros((height, width), np.uint8)
        cv2.fillConvexPoly(region, np.round(points).astype(np.int32), 1)
    else:
        raise ValueError(f"unknown clone shape {kind!r}; known: {', '.join(CLONE_SHAPES)}")
    return region.astype(bool)


def clone(image: np.ndarray, rng: np.random.Generator, kind: str | None = None,
          fraction: tuple[float, float] = (0.005, 0.08), max_shift: float = 0.45) -> Forgery | None:
    """``image`` with one region copied elsewhere in it; the mask marks the copy only (the source is
    untouched, as in CASIA's and COVERAGE's masks). None when no placement fits."""
    height, width = image.shape[:2]
    kind = kind or CLONE_SHAPES[int(rng.integers(len(CLONE_SHAPES)))]
    region = clone_region(image, rng, kind, fraction)
    if region.sum() < 16:
        return None
    ys, xs = np.nonzero(region)
    y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    scale = 1.0 if rng.random() < 0.5 else float(rng.uniform(0.75, 1.3))
    turn = rng.random()  # half unrotated, some by right angles, the rest by up to 45 degrees
    if turn < 0.5:
        angle = 0.0
    elif turn < 0.65:
        angle = float(rng.choice([90.0, 180.0, 270.0]))
    else:
        angle = float(rng.uniform(-45, 45))
    flip = bool(rng.random() < 0.25)
    patch, alpha = transform_region(image[y1:y2, x1:x2], region[y1:y2, x1:x2].astype(np.float32), scale, angle, flip)
    ph, pw = alpha.shape
    hard = alpha > 0.5
    if ph >= height or pw >= width or hard.sum() < 16:
        return None
    source_cy, source_cx = (y1 + y2) / 2, (x1 + x2) / 2
    reach = max_shift * max(height, width)
    for _ in range(20):  # a place near the source that leaves the source (almost) uncovered
        distance = rng.uniform(0.6 * max(ph, pw), max(0.6 * max(ph, pw) + 1, reach))
        direction = rng.uniform(0, 2 * np.pi)
        y = int(round(source_cy + distance * np.sin(direction) - ph / 2))
        x = int(round(source_cx + distance * np.cos(direction) - pw / 2))
        if not (0 <= y <= height - ph and 0 <= x <= width - pw):
            continue
        if (region[y:y + ph, x:x + pw] & hard).sum() / hard.sum() < 0.05:
            break
    else:
        return None
    hard = hard & ~region[y:y + ph, x:x + pw]  # the source stays untouched where the copy would touch it
    weight = hard.astype(np.float32)
    feathered = bool(rng.random() < 0.3)
    if feathered:
        weight = cv2.GaussianBlur(weight, (0, 0), float(rng.uniform(0.7, 1.5))) * hard
    out = image.copy()
    window = out[y:y + ph, x:x + pw].astype(np.float32)
    out[y:y + ph, x:x + pw] = np.clip(np.rint(weight[..., None] * patch + (1 - weight[..., None]) * window),
                                      0, 255).astype(np.uint8)
    mask = np.zeros((height, width), bool)
    mask[y:y + ph, x:x + pw] = hard
    if mask.sum() < 16:
        return None
    record = {"shape": kind, "scale": round(scale, 3), "angle": round(angle, 1), "flip": flip,
              "feathered": feathered, "position": [x, y], "source": [int(x1), int(y1)]}
    return Forgery(out, mask, record)
