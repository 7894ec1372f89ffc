"""An image-level verdict with a stated false-alarm rate, and the pixel threshold a model should use.

A tampering map's image score (the model's own, or the map's maximum) only becomes a decision
with a threshold. Chosen on authentic validation images so that at most a stated share of them
(e.g. 5%) would be flagged, the threshold tells a user what a "tampered" verdict costs in false
alarms on photos like those. Pure functions of score arrays, plus the small record saved next
to a model (``decision.json``).

A map's pixel threshold is 0.5 by convention, but trained students come out under-confident on
held-out images (with MGFM and with a plain FPN decoder alike; docs/results.md): the threshold that
gives the best mean pixel F1 on validation images is chosen from a fixed grid and recorded
(``pixel_calibration.json``); the model then shifts its logits so that it maps to 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DECISION_FILE = "decision.json"
PIXEL_CALIBRATION_FILE = "pixel_calibration.json"
# Below these sizes a calibrated threshold rests on too few images to mean what it says
# (ImageDecision.warning, PixelCalibration.describe).
MIN_FLAGGED_AUTHENTIC = 2  # authentic images the false-alarm rate must allow to be flagged
MIN_PIXEL_TAMPERED = 20  # tampered images to choose a pixel threshold on
PIXEL_THRESHOLDS = tuple(round(0.05 + 0.05 * i, 2) for i in range(14))  # candidates: 0.05, 0.1, ..., 0.7


@dataclass(frozen=True)
class ImageDecision:
    """The calibrated image-level threshold and what it was measured to do."""

    threshold: float  # an image is called tampered when its score is above this
    target_false_alarm_rate: float
    false_alarm_rate: float  # measured on the calibration authentic images
    detection_rate: float | None  # share of the calibration tampered images above the threshold
    n_authentic: int
    n_tampered: int
    calibrated_on: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageDecision:
        return cls(**data)

    @property
    def warning(self) -> str | None:
        """Why this threshold cannot be trusted to give its false-alarm rate, or None."""
        needed = math.ceil(MIN_FLAGGED_AUTHENTIC / self.target_false_alarm_rate) if self.target_false_alarm_rate \
            else None
        if needed is not None and self.n_authentic < needed:
            return (f"warning: only {self.n_authentic} authentic images; a {self.target_false_alarm_rate:.0%} "
                    f"false-alarm threshold needs at least {needed} (so that {MIN_FLAGGED_AUTHENTIC} of them may be "
                    f"flagged), and on new photos its false-alarm rate may be far from "
                    f"{self.target_false_alarm_rate:.0%}")
        return None

    def describe(self) -> str:
        caught = "" if self.detection_rate is None else \
            f", where it caught {self.detection_rate:.0%} of {self.n_tampered} tampered images"
        text = (f"image score > {self.threshold:.3f}, calibrated to {self.target_false_alarm_rate:.0%} false alarms "
                f"on {self.n_authentic} authentic images of {self.calibrated_on}{caught}")
        return text + (f"; {self.warning}" if self.warning else "")


def threshold_for_false_alarm_rate(authentic_scores: np.ndarray, rate: float) -> float:
    """The lowest threshold at which at most ``rate`` of the authentic scores lie strictly above it."""
    if not 0 <= rate < 1:
        raise ValueError(f"false-alarm rate must be in [0, 1), got {rate}")
    scores = np.sort(np.asarray(authentic_scores, dtype=np.float64))[::-1]
    if scores.size == 0:
        raise ValueError("calibration needs at least one authentic image score")
    allowed = int(np.floor(rate * scores.size + 1e-9))  # how many authentic images may be flagged
    return float(scores[allowed]) if allowed < scores.size else float(scores[-1])


def rate_above(scores: np.ndarray, threshold: float) -> float | None:
    """Share of ``scores`` strictly above ``threshold`` (None for no scores)."""
    scores = np.asarray(scores, dtype=np.float64)
    return float(np.mean(scores > threshold)) if scores.size else None


def calibrate(authentic_scores: np.ndarray, tampered_scores: np.ndarray, rate: float, source: str) -> ImageDecision:
    threshold = threshold_for_false_alarm_rate(authentic_scores, rate)
    return ImageDecision(threshold, rate, rate_above(authentic_scores, threshold),
                         rate_above(tampered_scores, threshold), len(authentic_scores), len(tampered_scores), source)


@dataclass(frozen=True)
class PixelCalibration:
    """The chosen pixel threshold and the validation F1 that chose it."""

    threshold: float  # probability of the uncalibrated map at which a pixel is called tampered
    mean_f1: dict[str, float]  # mean per-image pixel F1 at each candidate threshold (keys: "0.05", ...)
    n_tampered: int
    calibrated_on: str
    # share of the validation authentic images with any pixel above each candidate (when it had authentic images)
    authentic_marked: dict[str, float] | None = None
    max_authentic_marked: float | None = None  # the cap the choice respected, if one was set
    n_authentic: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        key = f"{self.threshold:g}"
        chosen, at_half = self.mean_f1[key], self.mean_f1.get("0.5")
        marked = "" if not self.authentic_marked else \
            f"; {self.authentic_marked[key]:.0%} of {self.n_authentic} authentic images marked"
        cap = "" if self.max_authentic_marked is None else f", at most {self.max_authentic_marked:.0%} allowed"
        small = "" if self.n_tampered >= MIN_PIXEL_TAMPERED else \
            (f"; warning: only {self.n_tampered} tampered images, fewer than the {MIN_PIXEL_TAMPERED} a pixel "
             f"threshold should be chosen on: it may not suit other photos")
        return (f"pixel threshold {self.threshold:g} (mean pixel F1 {chosen:.4f}"
                + (f" against {at_half:.4f} at 0.5" if at_half is not None else "")
                + f" on {self.n_tampered} tampered images of {self.calibrated_on}{marked}{cap}){small}")


def choose_pixel_threshold(mean_f1: Mapping[float, float], authentic_marked: Mapping[float, float] | None = None,
                           max_authentic_marked: float | None = None) -> float:
    """The candidate with the best mean F1; ties go to the one nearest 0.5 (the model as trained). With
    ``max_authentic_marked``, only candidates that mark at most that share of the authentic images compete (the
    highest candidate when none does)."""
    if not mean_f1:
        raise ValueError("no candidate threshold was scored")
    allowed = dict(mean_f1)
    if max_authentic_marked is not None and authentic_marked:
        allowed = {t: f for t, f in mean_f1.items() if authentic_marked[t] <= max_authentic_marked} \
            or {max(mean_f1): mean_f1[max(mean_f1)]}
    return max(allowed, key=lambda t: (round(allowed[t], 6), -abs(t - 0.5)))
