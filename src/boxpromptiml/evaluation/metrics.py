"""IML metrics as pure functions of arrays.

Pixel level works in two stages, as segmentation_models_pytorch does: per-image confusion
counts at a threshold, then a *named* reduction over images, because in IML the two common
reductions differ a lot:
- ``Reduction.PER_IMAGE``: the score of each tampered image, averaged (the field's main number,
  used by the paper);
- ``Reduction.POOLED``: counts summed over the dataset, then one score (large masks dominate).
A pixel is predicted tampered when its probability is strictly greater than the threshold.
Ratios whose denominator is zero are 0.0 (scikit-learn's ``zero_division=0``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Confusion:
    """Pixel (or image) confusion counts."""

    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)


class Reduction(StrEnum):
    """How per-image confusion counts become one number."""

    PER_IMAGE = "per-image"
    POOLED = "pooled"


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else 0.0


def confusion(prob: np.ndarray, mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> Confusion:
    """Confusion counts of ``prob > threshold`` against the bool ``mask`` (same shape)."""
    if prob.shape != mask.shape:
        raise ValueError(f"prediction shape {prob.shape} differs from mask shape {mask.shape}")
    pred = prob > threshold
    truth = mask.astype(bool)
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    return Confusion(tp, fp, fn, truth.size - tp - fp - fn)


def f1(c: Confusion) -> float:
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn)


def iou(c: Confusion) -> float:
    return _ratio(c.tp, c.tp + c.fp + c.fn)


def precision(c: Confusion) -> float:
    return _ratio(c.tp, c.tp + c.fp)


def recall(c: Confusion) -> float:
    return _ratio(c.tp, c.tp + c.fn)


def reduce(confusions: Sequence[Confusion], metric: Callable[[Confusion], float], reduction: Reduction) -> float | None:
    """One number from per-image counts; None for an empty sequence."""
    if not confusions:
        return None
    if Reduction(reduction) is Reduction.POOLED:
        total = confusions[0]
        for c in confusions[1:]:
            total = total + c
        return metric(total)
    return float(np.mean([metric(c) for c in confusions]))


def _per_level_counts(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives at each distinct score, in ascending score order."""
    _, inverse = np.unique(scores, return_inverse=True)
    inverse = inverse.ravel()
    n_levels = int(inverse.max()) + 1 if inverse.size else 0
    positives = np.bincount(inverse[labels], minlength=n_levels).astype(np.float64)
    negatives = np.bincount(inverse[~labels], minlength=n_levels).astype(np.float64)
    return positives, negatives


def best_threshold_f1(prob: np.ndarray, mask: np.ndarray) -> float:
    """Highest F1 over every threshold (prediction = prob >= t). Optimistic: the threshold is
    chosen with the ground truth of the very image, so report it apart from F1 at 0.5."""
    labels = mask.astype(bool).ravel()
    n_pos = int(labels.sum())
    if n_pos == 0:
        return 0.0
    positives, negatives = _per_level_counts(np.asarray(prob).ravel(), labels)
    tp = np.cumsum(positives[::-1])[::-1]  # predicted-positive pixels with score >= level
    predicted = np.cumsum((positives + negatives)[::-1])[::-1]
    return float(np.max(2.0 * tp / (n_pos + predicted)))


def binary_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count one half); None when only one class is present."""
    labels = np.asarray(labels, dtype=bool).ravel()
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    positives, negatives = _per_level_counts(np.asarray(scores, dtype=np.float64).ravel(), labels)
    negatives_below = np.cumsum(negatives) - negatives
    wins = float(np.dot(positives, negatives_below)) + 0.5 * float(np.dot(positives, negatives))
    return wins / (float(n_pos) * float(n_neg))


def balanced_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean of true-positive and true-negative rates; None when only one class is present."""
    predicted = np.asarray(predicted, dtype=bool).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    if labels.all() or not labels.any():
        return None
    tpr = float(np.mean(predicted[labels]))
    tnr = float(np.mean(~predicted[~labels]))
    return 0.5 * (tpr + tnr)


def image_score_from_map(prob: np.ndarray) -> float:
    """Image-level tampering score when the model gives none: the map's maximum."""
    return float(np.max(prob)) if prob.size else 0.0
