"""`bpiml fit-verdict`: an image-level verdict fitted on top of a frozen localizer.

Training a score head together with the maps costs the maps (the protocol's ``method-synth-head`` row: -0.05
validation pixel F1). Here the localizer stays frozen: for every training image its mean-pooled deepest
features and its map's maximum (what the student's linear score head reads, ``Student.score_inputs``) are
computed once, and a logistic regression is fitted on them (scikit-learn; its regularisation chosen by
cross-validation over the training images, the copies of one image kept in one fold). Its weights become the
student's score head, so `predict`, `evaluate`, `serve` and the ONNX export use the verdict unchanged.

Every training image is re-saved as JPEG at a random quality first (``copies`` times, each at its own
quality), so that the head cannot learn how each class was stored: CASIA v1 saved its tampered and its
authentic photos with different quantisation tables, and the table alone tells the classes apart (image AUC
0.99). Validate the same way: ``bpiml evaluate --resave-jpeg 90``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data.degrade import jpeg_recompress
from ..data.images import PathLike, read_image
from ..data.samples import Dataset, Sample
from ..errors import ConfigError, DataError
from ..evaluation.calibration import PIXEL_CALIBRATION_FILE
from ..fileio import write_json_atomic, write_text_atomic
from ..runner import run_per_sample
from ..student.inference import pad_to_multiple, to_tensor
from ..student.model import Student, build_student
from ..training.checkpoint import checkpoint_folder, load_student, save_checkpoint

VERDICT_FILE = "verdict.json"  # how the head was fitted, next to the weights


@dataclass(frozen=True)
class VerdictFit:
    """How a verdict head was fitted, and how well it separated the training images under cross-validation."""

    localizer: str
    n_tampered: int
    n_authentic: int
    copies: int
    quality: tuple[int, int]
    regularisation: float  # scikit-learn's C (inverse strength) chosen by cross-validation
    cv_auc: float  # image AUC of the held-out folds at that C
    skipped: dict[str, str]

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"verdict head fitted on {self.n_tampered} tampered and {self.n_authentic} authentic images, each "
                f"re-saved {self.copies}x as JPEG at quality {self.quality[0]}-{self.quality[1]}; cross-validated "
                f"image AUC {self.cv_auc:.3f} (C = {self.regularisation:g})")


def head_inputs(model: Student, image: np.ndarray) -> np.ndarray:
    """What the score head reads for one image, computed as prediction computes it (padded to a multiple of 32).
    Images larger than the model's tile size are first shrunk to it (a verdict needs the whole photo)."""
    import cv2

    height, width = image.shape[:2]
    side = model.config.max_side
    if max(height, width) > side:
        scale = side / max(height, width)
        image = cv2.resize(image, (max(32, round(width * scale)), max(32, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    with torch.inference_mode():
        _, pooled = model.score_inputs(to_tensor(pad_to_multiple(image))[None])
    return pooled[0].float().numpy()


def fit_verdict(model_dir: PathLike, train: Dataset, out_dir: PathLike, quality: tuple[int, int] = (70, 100),
                copies: int = 2, seed: int = 0, folds: int = 5, half: bool = False) -> VerdictFit:
    """Fit the score head of the model in ``model_dir`` (frozen) on ``train``; write the model with its head to
    ``out_dir`` (a new folder: the localizer's own folder is left as it was; ``half``: fp16 weights)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.preprocessing import StandardScaler

    if not 1 <= quality[0] <= quality[1] <= 100:
        raise DataError(f"JPEG qualities must satisfy 1 <= low <= high <= 100, got {quality}")
    if not train.tampered or not train.authentic:
        raise DataError(f"{train.source}: a verdict needs tampered and authentic training images")
    source, out_dir = checkpoint_folder(model_dir), Path(out_dir)
    if out_dir.resolve() == source.resolve():
        raise ConfigError(f"--out {out_dir} is the localizer's own folder: write the model with its verdict elsewhere")
    model, _ = load_student(source)
    index = {s.name: i for i, s in enumerate(train.samples)}

    def rows(sample: Sample) -> list[np.ndarray]:
        image = read_image(sample.image)
        rng = np.random.default_rng([seed, index[sample.name]])
        return [head_inputs(model, jpeg_recompress(image, int(rng.integers(quality[0], quality[1] + 1))))
                for _ in range(copies)]

    run = run_per_sample(train, rows, desc="verdict features", total=len(train))
    names = [s.name for s in train.samples if s.name in run.results]
    labels_of = {s.name: int(s.is_tampered) for s in train.samples}
    features = np.stack([row for name in names for row in run.results[name]])
    labels = np.array([labels_of[name] for name in names for _ in range(copies)])
    groups = np.repeat(np.arange(len(names)), copies)  # the copies of one image stay in one fold
    per_class = np.bincount(labels, minlength=2) // copies
    if per_class.min() < 2:
        raise DataError(f"too few readable images to fit a verdict: {per_class[1]} tampered, {per_class[0]} authentic")
    folds = int(min(folds, per_class.min()))
    scaler = StandardScaler().fit(features)
    splits = list(StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(features, labels,
                                                                                              groups))
    search = GridSearchCV(LogisticRegression(max_iter=5000), {"C": list(np.logspace(-4, 1, 11))}, cv=splits,
                          scoring="roc_auc").fit(scaler.transform(features), labels)
    classifier = search.best_estimator_  # refitted on every training image
    weight = classifier.coef_[0] / scaler.scale_  # the scaler folded into the linear head
    bias = classifier.intercept_[0] - float(np.sum(classifier.coef_[0] * scaler.mean_ / scaler.scale_))
    best, cv_auc = float(search.best_params_["C"]), float(search.best_score_)

    headed = build_student(replace(model.config, image_head=True))
    missing, unexpected = headed.load_state_dict(model.state_dict(), strict=False)
    if unexpected or not all(k.startswith("score_head.") for k in missing):
        raise ConfigError(f"{source}: its weights do not fit a student with a score head ({missing}, {unexpected})")
    with torch.no_grad():
        headed.score_head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32)[None])
        headed.score_head.bias.fill_(float(bias))
    fit = VerdictFit(str(source), int(labels.sum() // copies), int((1 - labels).sum() // copies), copies,
                     tuple(quality), float(best), cv_auc, dict(run.failures))
    save_checkpoint(out_dir, headed.eval(), {"verdict": fit.to_dict()}, half=half)
    write_json_atomic(out_dir / VERDICT_FILE, fit.to_dict())
    if (source / PIXEL_CALIBRATION_FILE).is_file():  # the pixel threshold's record travels with the maps
        write_text_atomic(out_dir / PIXEL_CALIBRATION_FILE, (source / PIXEL_CALIBRATION_FILE).read_text())
    return fit
