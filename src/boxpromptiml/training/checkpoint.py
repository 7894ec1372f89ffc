"""Checkpoints as safetensors + JSON (never pickle), and rebuilding a student from its folder.

A checkpoint folder holds ``model.safetensors`` (weights), ``student.json`` (the architecture,
enough to rebuild it) and ``state.json`` (epoch, metrics). Every file is written atomically.

A training run keeps each epoch's checkpoint as one group (weights, optimizer, state and the
metrics so far) in ``checkpoints/epoch-NNNN/``, written under a temporary name and renamed when
complete; ``last`` and ``best`` are symbolic links switched to it atomically. A crash at any
point leaves the previous group whole and the pointers on it, so a resumed run never mixes the
weights of one epoch with the state or metrics of another.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from ..data.images import PathLike
from ..errors import ConfigError
from ..fileio import read_json as read_json_file
from ..fileio import write_bytes_atomic, write_json_atomic, write_text_atomic
from ..student.model import Student, StudentConfig, build_student

WEIGHTS = "model.safetensors"
STUDENT_CONFIG = "student.json"
STATE = "state.json"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
METRICS = "metrics.csv"
TRAINING_WEIGHTS = "training.safetensors"  # the optimised weights, when model.safetensors holds their average
CHECKPOINTS = "checkpoints"
# tests: BPIML_TEST_CRASH_AT=POINT:EPOCH kills this process (SIGKILL) at that point of that epoch's checkpoint
CRASH_HOOK = "BPIML_TEST_CRASH_AT"
log = logging.getLogger(__name__)


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    # serialised in memory and written by Python, so a full disk is an OSError naming the file, not a safetensors error
    write_bytes_atomic(path, save(tensors, metadata=metadata))


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
    """A checkpoint's JSON file; a damaged one is a ConfigError naming it."""
    return read_json_file(path, ConfigError, "the checkpoint is damaged: restore it, or train into a new folder")


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
    weights = _read_tensors(folder / WEIGHTS)
    expected = model.state_dict()
    missing, unexpected = set(expected) - set(weights), set(weights) - set(expected)
    if missing or unexpected:
        raise ConfigError(f"{folder / WEIGHTS} does not fit its student.json: {len(missing)} missing, "
                          f"{len(unexpected)} unexpected tensors (e.g. {sorted(missing | unexpected)[:3]})")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in weights.items()})
    state = read_json(folder / STATE) if (folder / STATE).is_file() else {}
    return model.eval(), state


def load_training_weights(folder: Path, model: Student) -> bool:
    """Load a group's optimised weights into ``model`` when they were kept apart from the averaged ones."""
    if not (folder / TRAINING_WEIGHTS).is_file():
        return False
    weights = _read_tensors(folder / TRAINING_WEIGHTS)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ConfigError(f"{folder / TRAINING_WEIGHTS} does not fit the run's model; {_resume_hint(folder)}") \
            from exc
    return True


def load_optimizer_state(folder: Path, optimizer: torch.optim.Optimizer) -> None:
    """Restore an optimizer saved by :func:`save_checkpoint`."""
    meta = read_json(folder / OPTIMIZER_META)
    tensors = _read_tensors(folder / OPTIMIZER_TENSORS)
    state: dict[int, dict[str, torch.Tensor]] = {}
    try:
        for key, value in tensors.items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ConfigError(f"{folder / OPTIMIZER_TENSORS} does not fit the run's optimiser ({exc}); "
                          f"{_resume_hint(folder)}") from exc


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file, or one clear error naming it (truncated, corrupt or not safetensors at all)."""
    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds for damaged files
        raise ConfigError(f"cannot read {path}: it is damaged or not a safetensors file ({exc})") from exc


def _resume_hint(folder: Path) -> str:
    return (f"this run cannot resume from {folder}. Start a new --out; its model in best/ can still be used, or "
            "passed to --init to continue from its weights")


def _crash_point(label: str, epoch: int) -> None:
    if os.environ.get(CRASH_HOOK) == f"{label}:{epoch}":
        os.kill(os.getpid(), signal.SIGKILL)


def _point(run_dir: Path, name: str, folder: Path) -> None:
    """Switch the link ``run_dir/name`` to ``folder`` in one atomic rename."""
    link, tmp = run_dir / name, run_dir / f".{name}.link-tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(folder, run_dir), tmp)
    if link.is_dir() and not link.is_symlink():  # a run written before checkpoints were grouped: keep it aside
        link.rename(run_dir / CHECKPOINTS / f"legacy-{name}")
    os.replace(tmp, link)


def save_run_checkpoint(run_dir: Path, epoch: int, model: Student, state: dict[str, Any],
                        optimizer: torch.optim.Optimizer, metrics_csv: str, best: bool,
                        training_model: Student | None = None) -> Path:
    """Write epoch ``epoch``'s group and switch ``last`` (and ``best`` when ``best``) to it. ``model`` is
    the model to use (e.g. a weight average); ``training_model``, if given, the weights the optimizer
    works on, kept for resuming."""
    folder = run_dir / CHECKPOINTS / f"epoch-{epoch:04d}"
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if training_model is not None:
            _save_tensors(tmp / TRAINING_WEIGHTS, training_model.state_dict(), {"format": "pt"})
        save_checkpoint(tmp, model, state, optimizer)
        write_text_atomic(tmp / METRICS, metrics_csv)
    except BaseException:  # e.g. a full disk: give the space back; the previous groups stay as they were
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _crash_point("group-written", epoch)
    if folder.exists():  # left by a run that crashed before switching to it: this one replaces it
        shutil.rmtree(folder)
    os.rename(tmp, folder)
    if best:
        _point(run_dir, "best", folder)
    _crash_point("before-last-pointer", epoch)
    _point(run_dir, "last", folder)
    _prune(run_dir)
    return folder


def _prune(run_dir: Path) -> None:
    """Remove groups neither ``last`` nor ``best`` points to."""
    kept = {(run_dir / name).resolve() for name in ("last", "best") if (run_dir / name).exists()}
    for folder in (run_dir / CHECKPOINTS).glob("epoch-*"):
        if folder.resolve() not in kept:
            shutil.rmtree(folder, ignore_errors=True)


def resume_point(run_dir: Path, clean: bool = False) -> Path | None:
    """The checkpoint group a run resumes from (``last``, or the newest complete group when the pointer is
    missing); None for a run with no finished epoch. ``clean`` removes half-written leftovers first."""
    for leftover in (run_dir / CHECKPOINTS).glob("*.tmp") if clean else ():
        shutil.rmtree(leftover, ignore_errors=True)
    if ((run_dir / "last") / STATE).is_file():
        return run_dir / "last"
    groups = [(read_json(g / STATE).get("epoch", -1), g) for g in (run_dir / CHECKPOINTS).glob("*")
              if (g / STATE).is_file() and (g / OPTIMIZER_META).is_file()]
    return max(groups, key=lambda pair: pair[0])[1] if groups else None
