"""`bpiml calibrate`: fix a model's image-level threshold to a stated false-alarm rate.

The model is run on a validation dataset (never a test set); the threshold is chosen on its
authentic images and saved as ``decision.json`` next to the weights, where `bpiml predict`
and `bpiml evaluate` find it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.images import PathLike
from ..data.samples import Dataset
from ..errors import ConfigError, DataError
from ..evaluation.calibration import DECISION_FILE, ImageDecision, calibrate
from ..evaluation.evaluate import evaluate_predictor
from ..fileio import write_json_atomic
from ..training.checkpoint import checkpoint_folder
from .predictor import Predictor


def load_decision(model_dir: PathLike) -> ImageDecision | None:
    """The calibrated decision saved with a model, if any."""
    path = checkpoint_folder(model_dir) / DECISION_FILE
    if not path.is_file():
        return None
    try:
        return ImageDecision.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def calibrate_model(predictor: Predictor, model_dir: PathLike, dataset: Dataset, rate: float,
                    source: str | None = None) -> ImageDecision:
    """Score ``dataset`` with the model, choose the threshold on its authentic images, save it."""
    if not dataset.authentic:
        raise DataError(f"{dataset.source}: calibration needs authentic images (add the authentic list)")
    report, run = evaluate_predictor(dataset, predictor.predict, desc="calibrate")
    labels = {r.name: r.label for r in report.per_image}
    scores = {r.name: r.score for r in report.per_image}
    authentic = np.array([s for n, s in scores.items() if not labels[n]])
    tampered = np.array([s for n, s in scores.items() if labels[n]])
    decision = calibrate(authentic, tampered, rate, source or dataset.source)
    write_json_atomic(Path(checkpoint_folder(model_dir)) / DECISION_FILE, decision.to_dict())
    return decision
