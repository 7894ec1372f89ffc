"""Evaluating probability maps against a dataset: an accumulator with update / report phases.

``Evaluator`` takes one image at a time (any source: a folder of PNGs, a model, a teacher) and
reduces at the end; ``evaluate_prediction_dir`` feeds it from a folder of 8-bit PNG maps named
like the images. Pixel metrics use tampered images only; image metrics use all images.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..data.degrade import jpeg_recompress
from ..data.images import PathLike, image_size, read_image, read_mask, read_probability_map
from ..data.samples import Dataset, Label, Sample
from ..errors import DataError
from ..fileio import read_json
from ..runner import SampleRun, run_per_sample
from . import metrics as M
from .calibration import rate_above
from .groups import GroupScores, GroupSpec, format_groups, group_scores

log = logging.getLogger(__name__)

SCORES_FILE = "scores.json"  # optional {image name: image-level score} next to the maps


@dataclass(frozen=True)
class ImageRecord:
    """What one image contributes to the reductions."""

    name: str
    label: Label
    score: float
    confusion: M.Confusion | None = None
    f1_best: float | None = None
    pixel_auc: float | None = None
    marked_fraction: float | None = None  # share of the image's pixels above the threshold

    def to_dict(self) -> dict:
        out = {"name": self.name, "label": int(self.label), "score": self.score,
               "f1_best": self.f1_best, "pixel_auc": self.pixel_auc, "marked_fraction": self.marked_fraction}
        if self.confusion is not None:
            out.update(asdict(self.confusion), f1=M.f1(self.confusion), iou=M.iou(self.confusion))
        return out


@dataclass
class EvaluationReport:
    """Dataset-level numbers (None where undefined, e.g. image AUC without authentic images)."""

    pixel_f1: float | None
    pixel_iou: float | None
    pixel_precision: float | None
    pixel_recall: float | None
    pixel_auc: float | None
    pixel_f1_best: float | None
    pixel_f1_pooled: float | None
    pixel_iou_pooled: float | None
    image_auc: float | None
    image_bacc: float | None
    n_tampered: int
    n_authentic: int
    threshold: float
    image_threshold: float = M.DEFAULT_THRESHOLD  # image score above which an image is called tampered
    image_false_alarm_rate: float | None = None  # authentic images called tampered at image_threshold
    image_detection_rate: float | None = None  # tampered images called tampered at image_threshold
    # False alarms of the map: authentic images with any pixel above the threshold, and the median share of
    # their pixels that is (a salient-object detector marks most authentic photos, ~5% of each).
    authentic_marked_rate: float | None = None
    authentic_marked_area_median: float | None = None
    resave_jpeg: int | None = None  # every image was re-saved as JPEG at this quality before prediction
    groups: list[GroupScores] = field(default_factory=list)  # per named group and per tampered-area bin
    per_image: list[ImageRecord] = field(default_factory=list, repr=False)

    def to_dict(self, per_image: bool = False) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("per_image", "groups")}
        out["groups"] = [g.to_dict() for g in self.groups]
        if per_image:
            out["per_image"] = [r.to_dict() for r in self.per_image]
        return out

    def format_table(self) -> str:
        rows = [
            ("pixel F1 (mean over tampered images)", self.pixel_f1),
            ("pixel IoU (mean over tampered images)", self.pixel_iou),
            ("pixel precision (mean)", self.pixel_precision),
            ("pixel recall (mean)", self.pixel_recall),
            ("pixel AUC (mean over tampered images)", self.pixel_auc),
            ("pixel F1 pooled over the dataset", self.pixel_f1_pooled),
            ("pixel IoU pooled over the dataset", self.pixel_iou_pooled),
            ("pixel F1 at best per-image threshold (optimistic)", self.pixel_f1_best),
            ("image AUC (tampered vs authentic)", self.image_auc),
            ("image balanced accuracy", self.image_bacc),
            (f"false alarms on authentic images (score > {self.image_threshold:.3f})", self.image_false_alarm_rate),
            (f"tampered images detected (score > {self.image_threshold:.3f})", self.image_detection_rate),
            ("authentic images with any pixel marked", self.authentic_marked_rate),
            ("median share of an authentic image marked", self.authentic_marked_area_median),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ------"]
        lines += [f"{name:<{width}}  {'n/a' if v is None else f'{v:.4f}'}" for name, v in rows]
        resaved = f"; every image re-saved as JPEG quality {self.resave_jpeg}" if self.resave_jpeg else ""
        lines.append(f"images: {self.n_tampered} tampered, {self.n_authentic} authentic; "
                     f"threshold {self.threshold}{resaved}")
        if self.groups:
            lines += ["", "by group (image AUC: the group's tampered images against every authentic image)",
                      format_groups(self.groups)]
        return "\n".join(lines)


class Evaluator:
    """Accumulates per-image records; ``report()`` reduces them."""

    def __init__(self, threshold: float = M.DEFAULT_THRESHOLD, image_threshold: float | None = None,
                 groups: tuple[GroupSpec, ...] = (), resave_jpeg: int | None = None) -> None:
        self.threshold = threshold
        self.image_threshold = threshold if image_threshold is None else image_threshold
        self.groups, self.resave_jpeg = tuple(groups), resave_jpeg
        self.records: list[ImageRecord] = []

    def add(self, name: str, label: Label, prob: np.ndarray, mask: np.ndarray | None = None,
            score: float | None = None) -> ImageRecord:
        """Record one image. Tampered images need their bool ``mask`` (same shape as ``prob``)."""
        score = M.image_score_from_map(prob) if score is None else float(score)
        marked = float(np.count_nonzero(prob > self.threshold)) / max(1, prob.size)
        if label is Label.TAMPERED:
            if mask is None:
                raise ValueError(f"{name}: a tampered image needs its mask")
            record = ImageRecord(name, label, score, M.confusion(prob, mask, self.threshold),
                                 M.best_threshold_f1(prob, mask), M.binary_auc(prob, mask), marked)
        else:
            record = ImageRecord(name, label, score, marked_fraction=marked)
        self.records.append(record)
        return record

    def report(self) -> EvaluationReport:
        tampered = [r for r in self.records if r.label is Label.TAMPERED]
        counts = [r.confusion for r in tampered if r.confusion is not None]
        aucs = [r.pixel_auc for r in tampered if r.pixel_auc is not None]
        labels = np.array([r.label is Label.TAMPERED for r in self.records], dtype=bool)
        scores = np.array([r.score for r in self.records], dtype=np.float64)
        marked = np.array([r.marked_fraction for r in self.records
                           if r.label is Label.AUTHENTIC and r.marked_fraction is not None])
        return EvaluationReport(
            pixel_f1=M.reduce(counts, M.f1, M.Reduction.PER_IMAGE),
            pixel_iou=M.reduce(counts, M.iou, M.Reduction.PER_IMAGE),
            pixel_precision=M.reduce(counts, M.precision, M.Reduction.PER_IMAGE),
            pixel_recall=M.reduce(counts, M.recall, M.Reduction.PER_IMAGE),
            pixel_auc=float(np.mean(aucs)) if aucs else None,
            pixel_f1_best=float(np.mean([r.f1_best for r in tampered])) if tampered else None,
            pixel_f1_pooled=M.reduce(counts, M.f1, M.Reduction.POOLED),
            pixel_iou_pooled=M.reduce(counts, M.iou, M.Reduction.POOLED),
            image_auc=M.binary_auc(scores, labels) if len(labels) else None,
            image_bacc=M.balanced_accuracy(scores > self.image_threshold, labels) if len(labels) else None,
            n_tampered=len(tampered),
            n_authentic=len(self.records) - len(tampered),
            threshold=self.threshold,
            image_threshold=self.image_threshold,
            image_false_alarm_rate=rate_above(scores[~labels], self.image_threshold),
            image_detection_rate=rate_above(scores[labels], self.image_threshold),
            authentic_marked_rate=float(np.mean(marked > 0)) if marked.size else None,
            authentic_marked_area_median=float(np.median(marked)) if marked.size else None,
            resave_jpeg=self.resave_jpeg,
            groups=group_scores(self.records, self.groups),
            per_image=list(self.records),
        )


def load_ground_truth(sample: Sample, resize_masks: bool = False) -> np.ndarray | None:
    """The sample's bool mask checked against its image size; None for authentic images.

    A tampered image needs a non-empty mask to be scored at pixel level.
    """
    if not sample.is_tampered:
        return None
    if sample.mask is None:
        raise DataError(f"tampered image {sample.image} has no mask to evaluate against")
    mask = read_mask(sample.mask, image_size(sample.image), sample.image, resize=resize_masks)
    if not mask.any():
        raise DataError(f"mask {sample.mask} of tampered image {sample.image} is empty")
    return mask


def prediction_path(pred_dir: Path, sample: Sample) -> Path:
    return pred_dir / f"{sample.name}.png"


def read_scores(pred_dir: Path) -> dict[str, float]:
    """Image-level scores a model wrote next to its maps (``scores.json``), if any."""
    path = pred_dir / SCORES_FILE
    if not path.is_file():
        return {}
    scores = read_json(path, DataError)
    if not isinstance(scores, dict) or not all(isinstance(v, int | float) for v in scores.values()):
        raise DataError(f"{path}: expected an object mapping image name to a number")
    return {str(k): float(v) for k, v in scores.items()}


def evaluate_predictor(
    dataset: Dataset, predict: Callable[[np.ndarray], Any], threshold: float = M.DEFAULT_THRESHOLD,
    resize_masks: bool = False, desc: str = "evaluate", image_threshold: float | None = None,
    groups: tuple[GroupSpec, ...] = (), resave_jpeg: int | None = None,
) -> tuple[EvaluationReport, SampleRun[ImageRecord]]:
    """Run ``predict(image) -> object with .probability (H x W) and .score`` on every image and evaluate.

    ``resave_jpeg``: re-save every image (tampered and authentic alike) as JPEG at this quality in memory first,
    so that image-level numbers cannot come from the classes' different stored compression (CASIA v1 saved
    its tampered and authentic photos with different quantisation tables)."""
    if resave_jpeg is not None and not 1 <= resave_jpeg <= 100:
        raise DataError(f"JPEG quality must be from 1 to 100, got {resave_jpeg}")
    evaluator = Evaluator(threshold, image_threshold, groups, resave_jpeg)

    def step(sample: Sample) -> ImageRecord:
        mask = load_ground_truth(sample, resize_masks)
        image = read_image(sample.image)
        if resave_jpeg is not None:
            image = jpeg_recompress(image, resave_jpeg)
        prediction = predict(image)
        return evaluator.add(sample.name, sample.label, prediction.probability, mask, prediction.score)

    run = run_per_sample(dataset, step, desc=desc, total=len(dataset))
    return evaluator.report(), run


def evaluate_prediction_dir(
    dataset: Dataset,
    pred_dir: PathLike,
    threshold: float = M.DEFAULT_THRESHOLD,
    resize_masks: bool = False,
    resize_predictions: bool = False,
    groups: tuple[GroupSpec, ...] = (),
) -> tuple[EvaluationReport, SampleRun[ImageRecord]]:
    """Evaluate ``<pred_dir>/<image stem>.png`` maps; every image of the dataset needs one."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"prediction folder not found: {pred_dir}")
    missing = [prediction_path(pred_dir, s) for s in dataset if not prediction_path(pred_dir, s).is_file()]
    if missing:
        listed = "\n  ".join(str(p) for p in missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise DataError(f"{len(missing)} of {len(dataset)} prediction(s) missing in {pred_dir}:\n  {listed}{more}")
    scores = read_scores(pred_dir)
    evaluator = Evaluator(threshold, groups=groups)

    def step(sample: Sample) -> ImageRecord:
        mask = load_ground_truth(sample, resize_masks)
        path = prediction_path(pred_dir, sample)
        prob = read_probability_map(path)
        if mask is not None and prob.shape != mask.shape:
            if not resize_predictions:
                raise DataError(
                    f"prediction {path} is {prob.shape[1]}x{prob.shape[0]} but mask {sample.mask} is "
                    f"{mask.shape[1]}x{mask.shape[0]}; pass --resize-predictions to resize maps (bilinear)"
                )
            prob = cv2.resize(prob, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_LINEAR)
        return evaluator.add(sample.name, sample.label, prob, mask, scores.get(sample.name))

    run = run_per_sample(dataset, step, desc="evaluate", total=len(dataset))
    return evaluator.report(), run
