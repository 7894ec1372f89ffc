"""Checkpoints as safetensors + JSON (never pickle), and rebuilding a student from its folder.

A checkpoint folder holds ``model.safetensors`` (weights), ``student.json`` (the architecture,
enough to rebuild it) and ``state.json`` (epoch, metrics). The ``last`` checkpoint also keeps
``optimizer.safetensors`` + ``optimizer.json`` so a run resumes exactly. Every file is written
atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..data.images import PathLike
from ..errors import ConfigError
from ..fileio import write_atomic, write_json_atomic
from ..student.model import Student, StudentConfig, build_student

WEIGHTS = "model.safetensors"
STUDENT_CONFIG = "student.json"
STATE = "state.json"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def save_checkpoint(folder: PathLike, model: Student, state: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None, half: bool = False) -> Path:
    """Write a checkpoint folder (fp16 weights with ``half``, e.g. for shipping)."""
    folder = Path(folder)
    weights = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    _save_tensors(folder / WEIGHTS, weights, {"format": "pt"})
    write_json_atomic(folder / STUDENT_CONFIG, model.config.to_dict())
    if optimizer is not None:
        opt = optimizer.state_dict()
        tensors = {f"{index}.{name}": value for index, slots in opt["state"].items()
                   for name, value in slots.items() if isinstance(value, torch.Tensor)}
        _save_tensors(folder / OPTIMIZER_TENSORS, tensors)
        write_json_atomic(folder / OPTIMIZER_META, {"param_groups": opt["param_groups"]})
    write_json_atomic(folder / STATE, state)  # written last: its presence marks a complete checkpoint
    return folder


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def checkpoint_folder(folder: PathLike) -> Path:
    """The checkpoint a folder names: itself, or a run folder's ``best`` checkpoint."""
    folder = Path(folder)
    if not (folder / WEIGHTS).is_file() and (folder / "best" / WEIGHTS).is_file():
        return folder / "best"
    return folder


def load_student(folder: PathLike) -> tuple[Student, dict[str, Any]]:
    """Rebuild a student from a checkpoint folder (or a run folder: its ``best`` checkpoint)."""
    folder = checkpoint_folder(folder)
    for name in (WEIGHTS, STUDENT_CONFIG):
        if not (folder / name).is_file():
            raise ConfigError(f"{folder} is not a student checkpoint: {name} is missing")
    config = StudentConfig.from_dict(read_json(folder / STUDENT_CONFIG))
    model = build_student(config)
    try:
        weights = load_file(str(folder / WEIGHTS))
    except Exception as exc:  # noqa: BLE001 - truncated or foreign files
        raise ConfigError(f"cannot read weights {folder / WEIGHTS}: {exc}") from exc
    expected = model.state_dict()
    missing, unexpected = set(expected) - set(weights), set(weights) - set(expected)
    if missing or unexpected:
        raise ConfigError(f"{folder / WEIGHTS} does not fit its student.json: {len(missing)} missing, "
                          f"{len(unexpected)} unexpected tensors (e.g. {sorted(missing | unexpected)[:3]})")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in weights.items()})
    state = read_json(folder / STATE) if (folder / STATE).is_file() else {}
    return model.eval(), state


def load_optimizer_state(folder: Path, optimizer: torch.optim.Optimizer) -> None:
    """Restore an optimizer saved by :func:`save_checkpoint`."""
    meta = read_json(folder / OPTIMIZER_META)
    tensors = load_file(str(folder / OPTIMIZER_TENSORS))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
