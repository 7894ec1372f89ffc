"""The map gate: a photo's map marks nothing unless its image score says it may be tampered.

The student marks salient objects in authentic photos as readily as pasted ones (docs/results.md: no pixel
threshold and no false-alarm term removed those marks without removing the true ones). The image score (the
verdict head, raised by a found copy-move) separates the two classes better than the map's peaks do. A model folder
with a ``map_gate.json`` therefore damps the map of every photo scored below the gate: the map is scaled so that
its peak sits at ``damped_peak``, under the pixel threshold (0.5). Where the student looked stays visible, faintly;
nothing is marked. The cost is the tampered photos scored below the gate: they lose their marks.

The gate is chosen on validation images (``calibrate_map_gate``; never a test set): the lowest gate at which at most
``max_authentic_marked`` of the authentic images keep a marked pixel, i.e. the best mean pixel F1 within that cap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import PathLike
from ..data.samples import Dataset, Label
from ..errors import ConfigError, DataError
from ..evaluation import metrics as M
from ..evaluation.evaluate import ImageRecord, evaluate_predictor
from ..fileio import write_json_atomic
from .model_files import read_model_settings

MAP_GATE_FILE = "map_gate.json"  # saved with a model; absent: every map is kept as the student made it
DAMPED_PEAK = 0.4  # a damped map's maximum: under the threshold, still visible on a heat map


@dataclass(frozen=True)
class MapGate:
    """Below ``threshold`` (image score) a photo's map is scaled down to a peak of ``damped_peak``."""

    threshold: float
    damped_peak: float = DAMPED_PEAK
    max_authentic_marked: float | None = None  # the cap the gate was chosen for
    calibrated_on: str = ""
    n_tampered: int = 0
    n_authentic: int = 0
    # on the calibration images, with the gate and without it
    mean_f1: float | None = None
    mean_f1_ungated: float | None = None
    authentic_marked: float | None = None
    authentic_marked_ungated: float | None = None
    tampered_damped: float | None = None  # share of the tampered images the gate damps

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"map gate threshold must be from 0 to 1, got {self.threshold}")
        if not 0.0 <= self.damped_peak < M.DEFAULT_THRESHOLD:
            raise ConfigError(f"damped_peak must be from 0 to under {M.DEFAULT_THRESHOLD}, got {self.damped_peak}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MapGate:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown map gate fields: {', '.join(unknown)}")
        if "threshold" not in values:
            raise ConfigError("a map gate needs a threshold")
        return cls(**values)

    def describe(self) -> str:
        text = f"maps of photos scored under {self.threshold:.4f} are damped to a peak of {self.damped_peak:g}"
        if self.mean_f1 is not None and self.authentic_marked is not None:
            text += (f" (on {self.calibrated_on}: mean pixel F1 {self.mean_f1:.3f} against {self.mean_f1_ungated:.3f} "
                     f"ungated, authentic images marked {self.authentic_marked:.0%} against "
                     f"{self.authentic_marked_ungated:.0%}; {self.tampered_damped:.0%} of the tampered damped)")
        return text


def gate_map(probability: np.ndarray, score: float, gate: MapGate) -> np.ndarray:
    """``probability`` scaled in place to a peak of ``gate.damped_peak`` when ``score`` is under the gate (float16
    maps of huge photos are never copied to float32)."""
    if score >= gate.threshold or probability.size == 0:
        return probability
    peak = float(probability.max())
    if peak > gate.damped_peak:
        probability *= probability.dtype.type(gate.damped_peak / peak)
    return probability


@dataclass(frozen=True)
class GateCandidate:
    threshold: float
    mean_f1: float  # over the tampered images; a damped one scores 0
    authentic_marked: float
    tampered_damped: float


def gate_candidates(tampered_scores: np.ndarray, tampered_f1: np.ndarray, authentic_scores: np.ndarray,
                    authentic_marked: np.ndarray) -> list[GateCandidate]:
    """Every distinct gate on these images: 0 (none) and the midpoints between consecutive distinct scores (a gate
    half-way between two images, not at the edge of one)."""
    tampered_scores, tampered_f1 = np.asarray(tampered_scores, float), np.asarray(tampered_f1, float)
    authentic_scores, authentic_marked = np.asarray(authentic_scores, float), np.asarray(authentic_marked, bool)
    if not tampered_scores.size or not authentic_scores.size:
        raise DataError("a map gate needs tampered and authentic images")
    distinct = np.unique(np.concatenate([tampered_scores, authentic_scores]))
    gates = np.concatenate([[0.0], (distinct[:-1] + distinct[1:]) / 2, [np.nextafter(distinct[-1], np.inf)]])
    return [GateCandidate(float(g), float(np.mean(tampered_f1 * (tampered_scores >= g))),
                          float(np.mean(authentic_marked & (authentic_scores >= g))),
                          float(np.mean(tampered_scores < g))) for g in gates]


def gate_candidates_of(records: list[ImageRecord]) -> tuple[list[GateCandidate], list[ImageRecord],
                                                             list[ImageRecord]]:
    """:func:`gate_candidates` of an evaluation's per-image records (maps judged at its threshold), with the tampered
    records (those with a mask) and the authentic ones it weighed."""
    tampered = [r for r in records if r.label is Label.TAMPERED and r.confusion is not None]
    authentic = [r for r in records if r.label is Label.AUTHENTIC]
    candidates = gate_candidates(np.array([r.score for r in tampered]), np.array([M.f1(r.confusion) for r in tampered]),
                                 np.array([r.score for r in authentic]),
                                 np.array([bool(r.marked_fraction) for r in authentic]))
    return candidates, tampered, authentic


def choose_map_gate(candidates: list[GateCandidate], max_authentic_marked: float) -> GateCandidate:
    """The best mean F1 among the gates that leave at most ``max_authentic_marked`` of the authentic images marked;
    ties go to the lower gate (fewer maps damped)."""
    if not 0.0 <= max_authentic_marked <= 1.0:
        raise ConfigError(f"max_authentic_marked must be from 0 to 1, got {max_authentic_marked}")
    allowed = [c for c in candidates if c.authentic_marked <= max_authentic_marked + 1e-12]
    if not allowed:  # cannot happen: the highest gate damps every map
        raise DataError("no gate meets the cap")
    return max(allowed, key=lambda c: (round(c.mean_f1, 6), -c.threshold))


def calibrate_map_gate(predictor, model_dir: PathLike, dataset: Dataset, max_authentic_marked: float = 0.4,
                       source: str | None = None, resave_jpeg: int | None = None) -> MapGate:
    """Run ``predictor`` (its gate off) on ``dataset``'s validation images, choose the gate and save it as
    ``map_gate.json`` in ``model_dir``. Maps are judged at 0.5, the model's calibrated pixel threshold."""
    if not dataset.tampered or not dataset.authentic:
        raise DataError(f"{dataset.source}: a map gate needs tampered images with masks and authentic images")
    if getattr(predictor, "map_gate", None) is not None:
        raise ConfigError("calibrate the map gate with the gate off (load_predictor(..., map_gate=False))")
    report, _ = evaluate_predictor(dataset, predictor.predict, desc="calibrate map gate", resave_jpeg=resave_jpeg)
    candidates, tampered, authentic = gate_candidates_of(report.per_image)
    chosen = choose_map_gate(candidates, max_authentic_marked)
    ungated = candidates[0]
    if resave_jpeg is not None:
        source = f"{source or dataset.source} (re-saved as JPEG {resave_jpeg})"
    gate = MapGate(chosen.threshold, DAMPED_PEAK, max_authentic_marked, source or str(dataset.source),
                   len(tampered), len(authentic), round(chosen.mean_f1, 6), round(ungated.mean_f1, 6),
                   round(chosen.authentic_marked, 4), round(ungated.authentic_marked, 4),
                   round(chosen.tampered_damped, 4))
    write_json_atomic(Path(model_dir) / MAP_GATE_FILE, gate.to_dict())
    return gate


def load_map_gate(model_dir: PathLike) -> MapGate | None:
    """The gate saved with a model, if any."""
    return read_model_settings(Path(model_dir) / MAP_GATE_FILE, MapGate.from_dict, "the map gate")
