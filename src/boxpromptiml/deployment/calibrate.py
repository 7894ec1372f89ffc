"""`bpiml calibrate`: fix a model's pixel threshold and its image-level threshold on validation images.

The model is run on a validation dataset (never a test set). First the pixel threshold with the
best mean pixel F1 on its tampered images is written into the model's ``student.json`` (the model
then shifts its logits so that it comes out as 0.5; evaluation/calibration.py). Then the
image-level threshold is chosen on its authentic images for a stated false-alarm rate and saved
as ``decision.json`` next to the weights, where `bpiml predict` and `bpiml evaluate` find it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data.images import PathLike, read_image
from ..data.samples import Dataset
from ..errors import ConfigError, DataError
from ..evaluation import metrics as M
from ..evaluation.calibration import (
    DECISION_FILE,
    PIXEL_CALIBRATION_FILE,
    PIXEL_THRESHOLDS,
    ImageDecision,
    PixelCalibration,
    calibrate,
    choose_pixel_threshold,
)
from ..evaluation.evaluate import evaluate_predictor, load_ground_truth
from ..fileio import read_json, write_json_atomic
from ..runner import run_per_sample
from ..training.checkpoint import STUDENT_CONFIG, checkpoint_folder, load_student
from .predictor import Predictor


def load_decision(model_dir: PathLike) -> ImageDecision | None:
    """The calibrated decision saved with a model, if any."""
    path = checkpoint_folder(model_dir) / DECISION_FILE
    if not path.is_file():
        return None
    values = read_json(path, ConfigError)
    try:
        return ImageDecision.from_dict(values)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def calibrate_model(predictor: Predictor, model_dir: PathLike, dataset: Dataset, rate: float,
                    source: str | None = None, resave_jpeg: int | None = None) -> ImageDecision:
    """Score ``dataset`` with the model, choose the threshold on its authentic images, save it.
    ``resave_jpeg``: every image re-saved at this JPEG quality first (see evaluate_predictor)."""
    if not dataset.authentic:
        raise DataError(f"{dataset.source}: calibration needs authentic images (add the authentic list)")
    report, run = evaluate_predictor(dataset, predictor.predict, desc="calibrate", resave_jpeg=resave_jpeg)
    if resave_jpeg is not None:
        source = f"{source or dataset.source} (re-saved as JPEG {resave_jpeg})"
    labels = {r.name: r.label for r in report.per_image}
    scores = {r.name: r.score for r in report.per_image}
    authentic = np.array([s for n, s in scores.items() if not labels[n]])
    tampered = np.array([s for n, s in scores.items() if labels[n]])
    decision = calibrate(authentic, tampered, rate, source or dataset.source)
    write_json_atomic(Path(checkpoint_folder(model_dir)) / DECISION_FILE, decision.to_dict())
    return decision


def calibrate_pixel_threshold(model_dir: PathLike, dataset: Dataset, source: str | None = None,
                              thresholds: tuple[float, ...] = PIXEL_THRESHOLDS,
                              device: str = "cpu", max_authentic_marked: float | None = None) -> PixelCalibration:
    """Score the model's uncalibrated maps on ``dataset``'s tampered images at each candidate threshold, write
    the best into the checkpoint's ``student.json`` and the scores into ``pixel_calibration.json``. The share
    of ``dataset``'s authentic images with any pixel above each candidate is recorded too, and with
    ``max_authentic_marked`` only candidates within it compete."""
    from ..devices import resolve_device

    folder = checkpoint_folder(model_dir)
    tampered = dataset.replace_samples(dataset.tampered)
    if not tampered.samples:
        raise DataError(f"{dataset.source}: pixel calibration needs tampered images with masks")
    model, _ = load_student(folder)
    model.config = replace(model.config, pixel_threshold=0.5)  # candidates refer to the map as trained
    predictor = Predictor.from_student(model.to(resolve_device(device)))

    def scores(sample):
        mask = load_ground_truth(sample)
        probability = predictor.predict(read_image(sample.image)).probability
        return [M.f1(M.confusion(probability, mask, t)) for t in thresholds]

    run = run_per_sample(tampered, scores, desc="calibrate pixels", total=len(tampered))
    if not run.results:
        raise DataError(f"{dataset.source}: no tampered image could be scored")
    per_threshold = np.mean(np.array(list(run.results.values())), axis=0)
    mean_f1 = {t: float(f) for t, f in zip(thresholds, per_threshold, strict=True)}

    def peak(sample):
        return float(predictor.predict(read_image(sample.image)).probability.max())

    authentic = run_per_sample(dataset.authentic, peak, desc="calibrate pixels (authentic)",
                               total=len(dataset.authentic)) if dataset.authentic else None
    peaks = np.array(list(authentic.results.values())) if authentic is not None else np.array([])
    marked = {t: float(np.mean(peaks > t)) for t in thresholds} if peaks.size else None
    if max_authentic_marked is not None and marked is None:
        raise DataError(f"{dataset.source}: a cap on marked authentic images needs authentic images")
    chosen = choose_pixel_threshold(mean_f1, marked, max_authentic_marked)
    calibration = PixelCalibration(chosen, {f"{t:g}": round(f, 6) for t, f in mean_f1.items()}, len(run.results),
                                   source or str(dataset.source),
                                   {f"{t:g}": round(m, 4) for t, m in marked.items()} if marked else None,
                                   max_authentic_marked, int(peaks.size))
    write_json_atomic(folder / PIXEL_CALIBRATION_FILE, calibration.to_dict())
    write_json_atomic(folder / STUDENT_CONFIG, replace(model.config, pixel_threshold=chosen).to_dict())
    return calibration


def calibrate_folder(model_dir: PathLike, dataset: Dataset, false_alarm_rate: float = 0.05, *,
                     keep_pixel_threshold: bool = False, device: str = "cpu",
                     max_authentic_marked: float | None = None, resave_jpeg: int | None = None,
                     require_authentic: bool = True, map_gate_max_marked: float | None = None) -> list[str]:
    """`bpiml calibrate`: the pixel threshold on ``dataset``'s tampered images (unless kept), then the image
    threshold at ``false_alarm_rate`` on its authentic ones; returns the lines that say what was set, and why
    something was not. Without authentic images the image threshold is an error, or (``require_authentic``
    False, after fine-tuning) a line saying the model has none. ``map_gate_max_marked``: then the map gate for that
    share of marked authentic images (map_gate.py), on the same images."""
    lines = []
    if keep_pixel_threshold:
        pass
    elif dataset.tampered:
        lines.append(calibrate_pixel_threshold(model_dir, dataset, device=device,
                                               max_authentic_marked=max_authentic_marked).describe())
    else:
        lines.append("no tampered image in the dataset: the pixel threshold is left as it is")
    if not dataset.authentic and not require_authentic:
        return [*lines, "no authentic image in the validation data: the model has no image threshold (no verdict); "
                        "bpiml calibrate --model RUN -d VAL -d AUTHENTIC sets one"]
    from .predictor import load_predictor

    decision = calibrate_model(load_predictor(model_dir, device=device), model_dir, dataset, false_alarm_rate,
                               resave_jpeg=resave_jpeg)
    detection = "n/a" if decision.detection_rate is None else f"{decision.detection_rate:.1%}"
    lines.append(f"threshold {decision.threshold:.4f}: {decision.false_alarm_rate:.1%} of {decision.n_authentic} "
                 f"authentic images flagged, {detection} of {decision.n_tampered} tampered; saved with the model in "
                 f"{model_dir}" + (f"; {decision.warning}" if decision.warning else ""))
    if map_gate_max_marked is not None:
        from .map_gate import calibrate_map_gate

        gate = calibrate_map_gate(load_predictor(model_dir, device=device, map_gate=False),
                                  checkpoint_folder(model_dir), dataset, map_gate_max_marked, resave_jpeg=resave_jpeg)
        lines.append(f"map gate: {gate.describe()}")
    return lines
