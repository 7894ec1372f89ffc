"""Training configuration: dataclasses, loadable from YAML, overridable with ``key=value``.

The full :class:`TrainConfig` is saved as ``config.json`` in the run folder and the student's
architecture as ``student.json`` next to every checkpoint (nanoGPT-style), so a run can be
resumed and a model rebuilt from its folder alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from ..errors import ConfigError
from ..student.config import StudentConfig


class Supervision(StrEnum):
    PSEUDO = "pseudo"  # the teacher's soft pseudo masks (the method)
    FULL = "full"  # ground-truth masks (the fully-supervised upper bound)
    BOX = "box"  # filled boxes (no teacher)


@dataclass(frozen=True)
class TrainSource:
    """One training dataset and where its targets come from."""

    dataset: str
    boxes: str | None = None  # COCO boxes: needed for box supervision and the outside-box penalty
    pseudo_labels: str | None = None  # folder written by `bpiml pseudo-label`


@dataclass(frozen=True)
class DataConfig:
    train: tuple[TrainSource, ...] = ()
    val: tuple[str, ...] = ()  # validation datasets (never a test set)
    supervision: Supervision = Supervision.PSEUDO
    val_limit: int | None = None  # validate on the first N images only (None = all)
    fit_limit: int = 48  # training-set fit after each epoch: F1 against the targets on this many tampered images
    # Fresh forgeries made on the fly (synthesis/online.py) from the authentic images of these datasets, as this
    # share of every epoch's samples; their targets are the exact masks of what was changed.
    synthetic: tuple[str, ...] = ()
    synthetic_fraction: float = 0.0
    synthetic_objects: float = 0.0  # share of those splices / copy-moves whose region is an object-like segment
    synthetic_clones: float = 0.0  # share of the forgeries that are plain copy-moves of non-object regions
    resize_masks: bool = False  # full supervision: resize masks whose size differs from their image (nearest)
    max_bad_fraction: float = 0.05  # unreadable samples are skipped; more than this share of an epoch stops the run


@dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms (see training/losses.py)."""

    bce: float = 1.0  # BCE on the soft targets: the paper's distillation loss
    dice: float = 0.5  # soft Dice on tampered images: counters the small-region imbalance
    outside_box: float = 0.0  # extra penalty on probability outside every box (needs boxes)
    false_alarm: float = 0.0  # mean of the top 1% probabilities of authentic images (hard negatives)
    false_alarm_ramp: float = 0.3  # share of the budget over which the false-alarm weight grows from 0
    image: float = 0.5  # BCE of the image-level score against tampered / authentic (students with image_head)


@dataclass(frozen=True)
class AugmentConfig:
    hflip: float = 0.5  # probability of a horizontal flip
    scale_min: float = 0.7  # random resized crop: fraction of the image side kept
    colour: float = 0.2  # brightness / contrast / saturation jitter amplitude
    jpeg: float = 0.5  # probability of JPEG re-compression
    jpeg_quality_min: int = 60
    jpeg_quality_max: int = 100
    # Native crops start at multiples of this many pixels. 8 keeps a crop on its JPEG block grid, which the
    # student's compression-trace branch reads (student.compression_traces needs it); 1 = any offset.
    crop_grid: int = 1

    def __post_init__(self) -> None:
        if self.jpeg_quality_min > self.jpeg_quality_max:
            raise ConfigError(f"augment.jpeg_quality_min ({self.jpeg_quality_min}) must not exceed "
                              f"augment.jpeg_quality_max ({self.jpeg_quality_max})")


@dataclass(frozen=True)
class OptimConfig:
    """The budget is ``epochs`` x ``samples_per_epoch`` samples seen; the learning rate follows one
    warm-up + cosine schedule over the whole budget. ``max_minutes`` stops a run cleanly after the
    epoch that reaches the time limit; the same command continues it later."""

    epochs: int = 12
    samples_per_epoch: int | None = None  # None: one pass over the training images per epoch
    max_minutes: float | None = None  # stop (resumably) once this much wall time has passed in this invocation
    batch_size: int = 8  # the global batch: under torchrun each of N processes takes batch_size / N
    lr: float = 4e-4
    encoder_lr_scale: float = 0.5  # pretrained encoders learn slower than the new decoder
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    seed: int = 0
    workers: int = 2
    threads: int = 2
    device: str = "auto"  # auto (CUDA when available), cpu, cuda, cuda:N, mps
    # fp32 | bf16 | fp16 (autocast; fp16 adds loss scaling) | auto (bf16 on a CPU with native bf16, else fp32)
    precision: str = "fp32"
    freeze_batchnorm: bool = False  # keep batch-norm statistics as loaded (small or per-process batches)
    # Exponential moving average of the weights (and batch-norm statistics), updated after every step; 0 = off.
    # When on, validation, the checkpoints' model.safetensors and so the shipped model are the averaged weights.
    ema_decay: float = 0.0
    # Fine-tuning: start from this model's weights and architecture instead of the encoder's pretrained ones:
    # "shipped", a run folder or a model folder (training/init_from.py). None = train from the encoder's weights.
    init: str | None = None

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16", "fp16", "auto"):
            raise ConfigError(f"optim.precision must be fp32, bf16, fp16 or auto, got {self.precision!r}")


@dataclass(frozen=True)
class TrainConfig:
    student: StudentConfig = field(default_factory=StudentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        if self.student.compression_traces:
            # the branch reads the JPEG block lattice: colour jitter rescales every DCT coefficient off it, and a
            # crop off the 8-pixel grid moves the blocks (resampling is refused by the student config)
            if self.augment.crop_grid % 8:
                raise ConfigError("student.compression_traces needs augment.crop_grid=8 (or a multiple of 8), "
                                  f"got {self.augment.crop_grid}")
            if self.augment.colour > 0:
                raise ConfigError("student.compression_traces needs augment.colour=0: colour jitter moves every "
                                  f"DCT coefficient off the JPEG lattice the branch reads (got {self.augment.colour})")

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _build(cls, data, "config")

    def override(self, assignments: list[str]) -> TrainConfig:
        """Apply ``section.key=value`` strings (values parsed as YAML: 1e-3, true, [a, b])."""
        data = self.to_dict()
        for item in assignments:
            if "=" not in item:
                raise ConfigError(f"override {item!r} must look like section.key=value")
            path, raw = item.split("=", 1)
            *parents, leaf = path.strip().split(".")
            node = data
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"unknown setting {path!r}")
                node = node[part]
            if leaf not in node:
                raise ConfigError(f"unknown setting {path!r}; known here: {', '.join(node)}")
            try:
                node[leaf] = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: cannot read the value {raw!r} ({str(exc).splitlines()[0]})") from exc
        return TrainConfig.from_dict(data)


def _plain(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    """Recursively build dataclass ``cls`` from plain data, with errors naming the bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if is_dataclass(hint):
            kwargs[name] = hint.from_dict(value) if hasattr(hint, "from_dict") and hint is not TrainConfig \
                else _build(hint, value, f"{where}.{name}")
        elif name == "train":
            kwargs[name] = tuple(_build(TrainSource, v, f"{where}.train[{i}]") for i, v in enumerate(value or []))
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = _coerce(value, hint, f"{where}.{name}")
    for name, value in kwargs.items():
        _check_value(f"{where}.{name}".removeprefix("config."), value, hints[name])
    try:
        built = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if cls is DataConfig:
        built = replace(built, supervision=Supervision(built.supervision))
    return built


# Allowed ranges (inclusive; None = unbounded) of the numeric settings, checked when a config is built.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "optim.epochs": (0, None), "optim.samples_per_epoch": (1, None), "optim.max_minutes": (0, None),
    "optim.batch_size": (1, None), "optim.lr": (0, None), "optim.encoder_lr_scale": (0, None),
    "optim.weight_decay": (0, None), "optim.warmup_epochs": (0, None), "optim.workers": (0, 64),
    "optim.threads": (1, 1024), "optim.ema_decay": (0, 0.99999), "loss.bce": (0, None), "loss.dice": (0, None),
    "loss.outside_box": (0, None), "loss.false_alarm": (0, None), "loss.false_alarm_ramp": (0, 1),
    "augment.hflip": (0, 1), "augment.scale_min": (0.05, 1), "augment.colour": (0, 1), "augment.jpeg": (0, 1),
    "augment.jpeg_quality_min": (1, 100), "augment.jpeg_quality_max": (1, 100), "augment.crop_grid": (1, 64),
    "data.val_limit": (1, None),
    "data.fit_limit": (0, None), "data.synthetic_fraction": (0, 1), "data.synthetic_objects": (0, 1),
    "data.synthetic_clones": (0, 1), "data.max_bad_fraction": (0, 1),
}
POSITIVE = {"optim.lr", "optim.max_minutes"}  # their lower bound is excluded


def _check_value(path: str, value: Any, hint: Any) -> None:
    """A clear error naming the setting when a value has the wrong type or lies outside its range."""
    numeric = {int: "a whole number", float: "a number"}
    base = next((t for t in (int, float) if hint in (t, t | None)), None)
    if base is None or (value is None and hint == base | None):
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or (base is int and not float(value).is_integer()):
        raise ConfigError(f"{path} must be {'a finite number' if base is float else numeric[base]}, got {value!r}")
    low, high = RANGES.get(path, (None, None))
    strict = path in POSITIVE
    if (low is not None and (value < low or (strict and value == low))) or (high is not None and value > high):
        allowed = f"{'>' if strict else '>='} {low}" if high is None else f"from {low} to {high}"
        raise ConfigError(f"{path} must be {allowed}, got {value!r}")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Numbers written in forms YAML reads as strings (``1e-3``) become the field's type."""
    if hint in (float, int) and isinstance(value, str):
        try:
            return hint(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from exc
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, updated from a YAML file, then from ``key=value`` overrides."""
    config = TrainConfig()
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"cannot read config {path}: it is not a text (YAML) file ({exc.reason} at byte "
                              f"{exc.start})") from exc
        config = TrainConfig.from_dict(_merge(config.to_dict(), data))
    return config.override(overrides or [])


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def config_json(config: TrainConfig) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)
