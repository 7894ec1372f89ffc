"""Finding copied regions: patches whose nearest neighbour elsewhere in the photo lies where a local affine map
of their neighbours' matches says it should.

In a natural photo the nearest neighbour of a patch jumps about from pixel to pixel. Inside a region copied
from elsewhere (moved, possibly turned, flipped or slightly scaled) every patch finds its original, and the
matches of neighbouring patches agree with one affine map. The mean squared residual of an affine fit of the
match field over a small window is therefore near zero on copies and large elsewhere (the dense-field idea of
Cozzolino et al., 2015). Windows are summed with convolutions, so the fit costs a few passes over the field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np
import torch
from scipy import ndimage

from ..errors import ConfigError
from .features import patch_features
from .matching import nearest_neighbour_field

# Bumped whenever the search's arithmetic changes what it finds, so that benchmarks/copy_move.py measures its rows
# again (rows without a revision are revision 1). Speed-ups that keep every result bit for bit leave it alone.
SEARCH_REVISION = 1


@dataclass(frozen=True)
class CopyMoveSettings:
    """How copies are searched for and how they change the student's map (saved as ``copy_move.json``)."""

    work_side: int = 384  # photos with a longer side are analysed on a shrunk copy (pixels below are at that size)
    radius: int = 8  # patch radius: features describe a disc of 2r + 1 pixels
    max_order: int = 5  # highest Zernike order (12 magnitudes at 5)
    min_distance: float = 16.0  # a match must lie at least this far away
    min_contrast: float = 2.0  # patches flatter than this (grey-level standard deviation) match anything: skipped
    iterations: int = 2  # PatchMatch rounds (after the sorted seeds, more rounds found no more copies)
    random_search: bool = True  # PatchMatch's random tries around each match in every round
    longest_jump: int = 16  # farthest neighbour whose match is tried as a hint
    # PatchMatch runs on every stride-th patch along each axis (a quarter of them at 2), matched against all
    # patches; every patch then takes the best of its neighbouring searched patches' matches (issue 25: speed)
    stride: int = 1
    fit_radius: int = 2  # the affine fit covers (2 fit_radius + 1)^2 neighbouring matches
    max_residual: float = 2.0  # mean squared residual (pixels^2) under which matches count as a copy
    min_region: float = 0.002  # smallest copied region, as a share of the photo
    min_positions: int = 30  # ... and in patch positions
    outside_weight: float = 0.5  # when a copy is found, the map elsewhere is scaled by this
    copy_probability: float = 0.95  # the least probability given to the member of a pair that was pasted
    # the least image score of a photo with a found copy: above what the student's own score gives most photos, so
    # a threshold calibrated to a false-alarm rate keeps found copies flagged unless more authentic photos than that
    # rate allows have one (at 0.95 they tied with the student's highest authentic scores)
    copy_score: float = 0.99
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "work_side": self.work_side >= 64, "radius": 2 <= self.radius <= 32, "max_order": 1 <= self.max_order <= 10,
            "min_distance": self.min_distance > 0, "min_contrast": self.min_contrast >= 0,
            "iterations": 1 <= self.iterations <= 50, "longest_jump": self.longest_jump >= 1,
            "stride": 1 <= self.stride <= 4,
            "fit_radius": 1 <= self.fit_radius <= 8, "max_residual": self.max_residual > 0,
            "min_region": 0 <= self.min_region < 1, "min_positions": self.min_positions >= 1,
            "outside_weight": 0 <= self.outside_weight <= 1, "copy_probability": 0 <= self.copy_probability <= 1,
            "copy_score": 0 <= self.copy_score <= 1,
        }
        wrong = [name for name, ok in checks.items() if not ok]
        if wrong:
            raise ConfigError(f"copy_move: value out of range for {', '.join(wrong)} ({self})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CopyMoveSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"copy_move: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)


@dataclass(frozen=True)
class Copies:
    """Copied regions found in one photo, at the analysis size."""

    labels: np.ndarray  # int32 h x w at the analysis size: 0 = no copy, k = region k
    pairs: list[tuple[int, int]]  # (region, the region it matches); (k, k) when a copy overlaps its original
    image_shape: tuple[int, int]  # the photo's height and width

    @property
    def found(self) -> bool:
        return bool(self.pairs)

    def region_mask(self, regions: set[int] | None = None) -> np.ndarray:
        """Where the given regions (default: all) lie, at the analysis size."""
        if regions is None:
            return self.labels > 0
        return np.isin(self.labels, sorted(regions))


def grey_levels(image: np.ndarray) -> np.ndarray:
    """Luma of an RGB uint8 photo (grey images pass through), float32."""
    if image.ndim == 2:
        return image.astype(np.float32)
    rgb = image[..., :3].astype(np.float32)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def affine_fit_residual(targets: torch.Tensor, usable: torch.Tensor, fit_radius: int) -> torch.Tensor:
    """Mean squared residual of a least-squares affine fit of the match field (2 x h x w) over every
    (2 fit_radius + 1)^2 window; infinite where the window holds an unusable position or leaves the field.

    Window sums are separable filters in float64 (OpenCV, 8x faster than 2-D convolutions); the field holds
    whole numbers, so every sum is exact and the result does not depend on the order of the additions."""
    size = 2 * fit_radius + 1
    steps = np.arange(-fit_radius, fit_radius + 1, dtype=np.float64)  # float64: sums of squares cancel
    ones = np.ones(size)
    count, spread = float(size * size), float((steps * steps).sum()) * size
    middle = (slice(fit_radius, -fit_radius or None),) * 2

    def window_sums(values: np.ndarray, along_cols: np.ndarray, along_rows: np.ndarray) -> np.ndarray:
        """Sums of values weighted by along_cols[dx] * along_rows[dy] over every window wholly inside."""
        return cv2.sepFilter2D(values, cv2.CV_64F, along_cols, along_rows, borderType=cv2.BORDER_CONSTANT)[middle]

    usable_values = usable.numpy().astype(np.float64)
    field = targets.numpy().astype(np.float64) * usable_values  # unusable positions enter as zeros, refused below
    residual = np.zeros(targets.shape[1:], np.float64)
    for channel in range(2):
        values = np.ascontiguousarray(field[channel])
        total = window_sums(values, ones, ones)
        # the window's constant, column and row directions are orthogonal: project on each and remove it
        energy = window_sums(values * values, ones, ones) - total * total / count
        energy -= window_sums(values, steps, ones) ** 2 / spread + window_sums(values, ones, steps) ** 2 / spread
        residual[middle] += np.maximum(energy, 0)
    complete = window_sums(usable_values, ones, ones) == count
    result = np.full(targets.shape[1:], np.inf, np.float32)
    result[middle][complete] = (residual[middle] / count)[complete]
    return torch.from_numpy(result)


def working_copy(image: np.ndarray, settings: CopyMoveSettings = CopyMoveSettings()) -> np.ndarray:
    """The photo as the search sees it: shrunk (8-bit, area-averaged) when its longer side exceeds ``work_side``,
    else the photo itself. A caller that makes this first can free a huge photo before searching it."""
    height, width = image.shape[:2]
    scale = min(1.0, settings.work_side / max(height, width))
    if scale == 1.0:
        return image
    # shrunk in 8 bits: a full-size float copy of a 100 MP photo would cost 400 MB
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(np.ascontiguousarray(image[..., :3] if image.ndim == 3 else image), size,
                      interpolation=cv2.INTER_AREA)


def find_copies(image: np.ndarray, settings: CopyMoveSettings = CopyMoveSettings()) -> Copies:
    """Copied regions of an RGB (or grey) uint8 photo and which region each one matches."""
    return find_copies_in_working_copy(working_copy(image, settings), image.shape[:2], settings)


def find_copies_in_working_copy(image: np.ndarray, image_shape: tuple[int, int],
                                settings: CopyMoveSettings = CopyMoveSettings()) -> Copies:
    """``find_copies`` of a photo of ``image_shape`` (height, width) from its ``working_copy``."""
    height, width = image_shape
    grey = grey_levels(image)
    work_height, work_width = grey.shape
    radius = settings.radius
    empty = Copies(np.zeros((work_height, work_width), np.int32), [], (height, width))
    if min(work_height, work_width) < 2 * radius + 2 * settings.fit_radius + 4:
        return empty
    features, contrast = patch_features(torch.from_numpy(np.ascontiguousarray(grey)), radius, settings.max_order)
    usable = contrast > settings.min_contrast
    targets, distance = nearest_neighbour_field(features, usable, settings.min_distance, settings.iterations,
                                                settings.longest_jump, settings.seed, settings.random_search,
                                                settings.stride)
    usable &= torch.isfinite(distance)
    residual = affine_fit_residual(targets, usable, settings.fit_radius)
    matched = (residual < settings.max_residual).numpy()
    if not matched.any():
        return empty
    field_height, field_width = matched.shape
    target_index = (targets[0] * field_width + targets[1]).numpy()
    # what a copied patch matches is part of the copy's pair too
    originals = np.zeros(field_height * field_width, bool)
    originals[target_index[matched]] = True
    either = matched | originals.reshape(field_height, field_width)
    labels, count = ndimage.label(either)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    smallest = max(settings.min_positions, settings.min_region * field_height * field_width)
    kept = sizes >= smallest
    kept[0] = False
    pairs: list[tuple[int, int]] = []
    for region in np.flatnonzero(kept):
        partners = labels.ravel()[target_index[matched & (labels == region)]]
        partners = partners[kept[partners]]
        if partners.size:
            pairs.append((int(region), int(np.bincount(partners).argmax())))
    in_pair = np.zeros(count + 1, bool)
    for a, b in pairs:
        in_pair[[a, b]] = True
    labels = np.where(in_pair[labels], labels, 0).astype(np.int32)
    # a position stands for the disc around it: grow the regions by the patch radius
    labels = ndimage.grey_dilation(labels, size=(2 * radius + 1, 2 * radius + 1))
    placed = np.zeros((work_height, work_width), np.int32)
    placed[radius:radius + field_height, radius:radius + field_width] = labels
    unique_pairs = sorted({(min(a, b), max(a, b)) for a, b in pairs})
    return Copies(placed, unique_pairs, (height, width))
