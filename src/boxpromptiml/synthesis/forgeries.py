"""The three ways real forgeries are made, on arrays: splicing, copy-move and removal.

Every function takes uint8 RGB images, boolean region masks and a numpy Generator, and returns
the forged image with the exact mask of the pixels it changed. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PasteParams:
    """How a cut-out region is transformed and blended when it is pasted."""

    scale_range: tuple[float, float] = (0.6, 1.4)  # relative size change of the pasted region
    max_rotation: float = 30.0  # degrees, uniform in [-max, max]
    flip_probability: float = 0.2  # mirror the region left-right
    feather_probability: float = 0.3  # soften the paste edge (as careful forgers do)
    feather_sigma: tuple[float, float] = (0.8, 2.0)  # Gaussian sigma of the soft edge, pixels
    colour_match_probability: float = 0.3  # pull the region's colour statistics toward the target's
    max_region_fraction: float = 0.35  # a pasted region never covers more of the target than this


@dataclass
class Forgery:
    """A forged image, the mask of the pixels it changed, and what was done (for the record)."""

    image: np.ndarray
    mask: np.ndarray
    record: dict


def _crop_to_region(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(mask)
    y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return image[y1:y2, x1:x2], mask[y1:y2, x1:x2]


def transform_region(patch: np.ndarray, alpha: np.ndarray, scale: float, angle: float,
                      flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """Scale, rotate (about the centre, canvas grown to fit) and optionally mirror a cut-out."""
    if flip:
        patch, alpha = patch[:, ::-1], alpha[:, ::-1]
    h, w = alpha.shape
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    out_w, out_h = max(1, int(np.ceil(h * sin + w * cos))), max(1, int(np.ceil(h * cos + w * sin)))
    matrix[0, 2] += out_w / 2.0 - w / 2.0
    matrix[1, 2] += out_h / 2.0 - h / 2.0
    patch = cv2.warpAffine(np.ascontiguousarray(patch), matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    alpha = cv2.warpAffine(np.ascontiguousarray(alpha, dtype=np.float32), matrix, (out_w, out_h),
                           flags=cv2.INTER_LINEAR, borderValue=0.0)
    return patch, alpha


def _match_colour(patch: np.ndarray, alpha: np.ndarray, target: np.ndarray, strength: float) -> np.ndarray:
    """Move the patch's per-channel mean / std (in Lab) part of the way to the target's."""
    src = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB).astype(np.float32)
    dst = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    inside = alpha > 0.5
    if inside.sum() < 4:
        return patch
    src_mean, src_std = src[inside].mean(0), src[inside].std(0) + 1e-3
    dst_mean, dst_std = dst.reshape(-1, 3).mean(0), dst.reshape(-1, 3).std(0) + 1e-3
    mean = src_mean + strength * (dst_mean - src_mean)
    std = src_std + strength * (dst_std - src_std)
    matched = (src - src_mean) / src_std * std + mean
    return cv2.cvtColor(np.clip(matched, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def paste_region(target: np.ndarray, source: np.ndarray, region: np.ndarray, rng: np.random.Generator,
                 params: PasteParams, avoid: np.ndarray | None = None) -> Forgery | None:
    """Cut ``region`` out of ``source``, transform it and paste it somewhere in ``target``.

    ``avoid``: pixels the paste should not cover much of (the copy-move source). Returns None when
    the region cannot be placed (e.g. it ends up smaller than a few pixels).
    """
    height, width = target.shape[:2]
    patch, alpha = _crop_to_region(source, region)
    scale = float(rng.uniform(*params.scale_range))
    # Keep the pasted region within max_region_fraction of the target.
    area = alpha.sum() * scale**2
    limit = params.max_region_fraction * height * width
    if area > limit:
        scale *= float(np.sqrt(limit / area))
    angle = float(rng.uniform(-params.max_rotation, params.max_rotation))
    flip = bool(rng.random() < params.flip_probability)
    patch, alpha = transform_region(patch, alpha.astype(np.float32), scale, angle, flip)
    ph, pw = alpha.shape
    if ph > height or pw > width:  # larger than the target: shrink to fit
        shrink = min(height / ph, width / pw) * 0.95
        patch = cv2.resize(patch, (max(1, int(pw * shrink)), max(1, int(ph * shrink))), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (patch.shape[1], patch.shape[0]), interpolation=cv2.INTER_LINEAR)
        ph, pw = alpha.shape
    if (alpha > 0.5).sum() < 16:
        return None
    best = None
    for _ in range(10):  # a few tries to keep off the region being copied
        y, x = int(rng.integers(0, height - ph + 1)), int(rng.integers(0, width - pw + 1))
        inside = alpha > 0.5
        overlap = 0.0 if avoid is None else float((avoid[y:y + ph, x:x + pw] & inside).sum() / inside.sum())
        if best is None or overlap < best[2]:
            best = (y, x, overlap)
        if overlap < 0.1:
            break
    y, x, overlap = best
    if overlap > 0.5:
        return None
    window = target[y:y + ph, x:x + pw]
    colour_matched = bool(rng.random() < params.colour_match_probability)
    if colour_matched:
        patch = _match_colour(patch, alpha, window, strength=float(rng.uniform(0.3, 0.8)))
    hard = alpha > 0.5
    feathered = bool(rng.random() < params.feather_probability)
    weight = hard.astype(np.float32)
    if feathered:
        weight = cv2.GaussianBlur(weight, (0, 0), float(rng.uniform(*params.feather_sigma))) * hard
    out = target.copy()
    blended = weight[..., None] * patch.astype(np.float32) + (1 - weight[..., None]) * window.astype(np.float32)
    out[y:y + ph, x:x + pw] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    mask = np.zeros((height, width), bool)
    mask[y:y + ph, x:x + pw] = hard
    record = {"scale": round(scale, 3), "angle": round(angle, 1), "flip": flip, "feathered": feathered,
              "colour_matched": colour_matched, "position": [x, y]}
    return Forgery(out, mask, record)


def splice(target: np.ndarray, donor: np.ndarray, region: np.ndarray, rng: np.random.Generator,
           params: PasteParams) -> Forgery | None:
    """A region of another image pasted in."""
    return paste_region(target, donor, region, rng, params)


def copy_move(image: np.ndarray, region: np.ndarray, rng: np.random.Generator, params: PasteParams) -> Forgery | None:
    """A region of the same image moved (transformed) elsewhere; the mask marks the copy."""
    return paste_region(image, image, region, rng, params, avoid=region)


def forge(kind: str, target: np.ndarray, region: np.ndarray, rng: np.random.Generator, params: PasteParams,
          donor: np.ndarray | None = None) -> Forgery | None:
    """One forgery of ``kind`` ("splice" needs the ``donor`` the region is cut from; "copy_move" and
    "removal" take the region from ``target`` itself)."""
    if kind == "splice":
        if donor is None:
            raise ValueError("splicing needs a donor image")
        return splice(target, donor, region, rng, params)
    if kind == "copy_move":
        return copy_move(target, region, rng, params)
    if kind == "removal":
        return remove(target, region, rng)
    raise ValueError(f"unknown forgery kind {kind!r}; known: splice, copy_move, removal")


def remove(image: np.ndarray, region: np.ndarray, rng: np.random.Generator, dilate: int = 3) -> Forgery:
    """The region erased by OpenCV inpainting (Telea or Navier-Stokes, drawn at random)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
    hole = cv2.dilate(region.astype(np.uint8), kernel)
    method = cv2.INPAINT_TELEA if rng.random() < 0.5 else cv2.INPAINT_NS
    radius = int(rng.integers(3, 8))
    bgr = np.ascontiguousarray(image[..., ::-1])
    out = cv2.inpaint(bgr, hole, radius, method)[..., ::-1].copy()
    mask = hole.astype(bool)
    return Forgery(out, mask, {"inpaint": "telea" if method == cv2.INPAINT_TELEA else "ns", "radius": radius,
                               "dilate": dilate})
