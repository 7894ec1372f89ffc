"""Fine-tuning: a run that starts from a trained model's weights (``optim.init``) instead of ImageNet.

``optim.init`` names the model: ``shipped`` (the model inside the package), a run folder (its ``best``
checkpoint) or a checkpoint / model folder. The student's architecture is the init model's own (its
``student.json``); a ``student.*`` setting that asks for a different architecture is refused rather than
silently ignored. The init model's calibrated pixel threshold is not carried over: the run trains and validates
the raw maps (threshold 0.5), and a fine-tuned model has to be calibrated again (``bpiml calibrate``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..student.config import StudentConfig
from ..student.model import Student
from .checkpoint import STUDENT_CONFIG, WEIGHTS, checkpoint_folder, load_student, read_json
from .config import TrainConfig

log = logging.getLogger(__name__)


def init_folder(spec: str) -> Path:
    """The checkpoint folder ``optim.init`` names; a clear error when it is not a complete model."""
    from ..deployment.shipped import SHIPPED, shipped_model_path

    folder = shipped_model_path() if spec == SHIPPED else checkpoint_folder(Path(spec))
    if not folder.is_dir():
        raise ConfigError(f"optim.init: {spec} is not a folder (give 'shipped', a run folder or a model folder)")
    for name in (STUDENT_CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise ConfigError(f"optim.init: {folder} has no {name}; fine-tuning needs a model folder with its "
                              f"weights and architecture (a run folder, its checkpoints/epoch-N, or an exported "
                              f"model folder)")
    return folder


def adopt_init_architecture(config: TrainConfig) -> TrainConfig:
    """``config`` with the init model's architecture (unchanged without ``optim.init``). A ``student.*`` value
    that differs both from the default and from the init model's is an error naming the setting."""
    if not config.optim.init:
        return config
    folder = init_folder(config.optim.init)
    source = read_json(folder / STUDENT_CONFIG)
    if not isinstance(source, dict):
        raise ConfigError(f"optim.init: {folder / STUDENT_CONFIG} is not a student config")
    default, asked = StudentConfig().to_dict(), config.student.to_dict()
    merged: dict = {}
    for key, value in source.items():
        if key not in asked:
            raise ConfigError(f"optim.init: {folder / STUDENT_CONFIG} has an unknown setting {key!r}")
        if key == "pixel_threshold":  # not architecture: the maps are trained raw
            merged[key] = 0.5
        elif key == "encoder_init":  # meaningless once the whole model is loaded
            merged[key] = asked[key]
        elif asked[key] != default[key] and asked[key] != value:
            raise ConfigError(f"student.{key}={asked[key]!r} conflicts with the init model {folder}, whose "
                              f"{key} is {value!r}: a fine-tuned model keeps its architecture (drop the setting, "
                              f"or train from scratch without optim.init)")
        else:
            merged[key] = value
    student, augment = StudentConfig.from_dict(merged), config.augment
    if student.compression_traces and (augment.colour > 0 or augment.crop_grid % 8):
        # the init model reads the JPEG block lattice (student/compression.py): colour jitter and crops off the
        # 8-pixel grid would train it on images whose lattice is gone, so both are set as its training had them
        log.info("optim.init: the init model has the compression-trace branch: augment.colour=0, augment.crop_grid=8")
        augment = replace(augment, colour=0.0, crop_grid=8 if augment.crop_grid % 8 else augment.crop_grid)
    return replace(config, student=student, augment=augment)


def load_init_weights(model: Student, spec: str) -> dict[str, Any]:
    """Copy the init model's weights into ``model`` (built from :func:`adopt_init_architecture`'s config);
    returns what the init model's state.json says of it (epoch, validation F1), for the run's record."""
    source, state = load_student(init_folder(spec))
    model.load_state_dict(source.state_dict())
    return {k: state[k] for k in ("epoch", "best_val_f1") if k in state} if isinstance(state, dict) else {}
