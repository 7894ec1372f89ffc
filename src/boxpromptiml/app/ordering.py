"""Annotate what teaches most: an order of the dataset's images for annotation.

- ``dataset``: the dataset's own order;
- ``uncertainty``: the images whose map the student is least sure of first. A pixel at probability p
  contributes 4 p (1 - p) (1 at 0.5, 0 at 0 or 1); an image's uncertainty is the mean over its 1%
  most uncertain pixels, so that one doubtful region counts even in a large, clearly clean photo;
- ``disagreement``: once a model was adapted with "Train on my boxes", the images on which it and
  the server's model disagree most first (mean |p_adapted - p_server| over the 1% most different
  pixels): what the new boxes changed, and so where the next boxes tell most.
Each image is scored once per order and model, on a copy shrunk to ``ORDER_PIXELS`` (the order needs
the gist of a map, not its detail); scores are kept in memory while the server runs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..data.images import fit_within

ORDERS = ("dataset", "uncertainty", "disagreement")
ORDER_PIXELS = 1_000_000
TOP_SHARE = 0.01


def top_mean(values: np.ndarray, share: float = TOP_SHARE) -> float:
    """Mean of the largest ``share`` of ``values`` (at least one)."""
    flat = values.ravel()
    k = max(1, int(flat.size * share))
    return float(np.partition(flat, flat.size - k)[flat.size - k:].mean())


def uncertainty(probability: np.ndarray) -> float:
    """How unsure a map is: 4 p (1 - p), over its most uncertain pixels (1 = a coin flip, 0 = sure)."""
    p = probability.astype(np.float32)
    return top_mean(4.0 * p * (1.0 - p))


def disagreement(first: np.ndarray, second: np.ndarray) -> float:
    """How much two maps of one image differ, over their most different pixels."""
    return top_mean(np.abs(first.astype(np.float32) - second.astype(np.float32)))


def working_copy(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    if height * width <= ORDER_PIXELS:
        return image
    return fit_within(image, int(max(height, width) * (ORDER_PIXELS / (height * width)) ** 0.5))[0]


def score_image(image: np.ndarray, order: str, predict: Callable[[np.ndarray], np.ndarray],
                predict_adapted: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
    """One image's score for ``order`` (higher = annotate sooner)."""
    image = working_copy(image)
    if order == "uncertainty":
        return uncertainty(predict(image))
    if order == "disagreement":
        if predict_adapted is None:
            raise ValueError("disagreement needs an adapted model")
        return disagreement(predict(image), predict_adapted(image))
    raise ValueError(f"unknown order {order!r}; known: {', '.join(ORDERS)}")


def ranked(names: list[str], scores: dict[str, float]) -> list[str]:
    """``names`` by score, highest first; images not scored (yet, or unreadable) keep their order at the end."""
    scored = sorted((n for n in names if n in scores), key=lambda n: -scores[n])
    return scored + [n for n in names if n not in scores]
