"""The student model shipped inside the package, and how a benchmark's best run becomes it.

The shipped folder holds an fp16 ``model.safetensors``, its ``student.json``, ``state.json`` and
``training.json`` (how and on what data it was trained, and its test numbers), and the same network as an
OpenVINO model (``student.xml`` + ``student.bin``) for the default backend. `bpiml predict`,
`bpiml evaluate --model` and `bpiml demo` use it when no model is given.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Any

from ..data.images import PathLike
from ..errors import ConfigError
from ..fileio import write_json_atomic

SHIPPED_PACKAGE = "boxpromptiml.deployment"
SHIPPED_FOLDER = "shipped_model"
TRAINING_NOTE = "training.json"
MAX_SHIPPED_MB = 15.0


def shipped_model_path() -> Path:
    """Where the shipped model lives inside the installed package (it may not exist yet)."""
    return Path(str(importlib.resources.files(SHIPPED_PACKAGE).joinpath(SHIPPED_FOLDER)))


SHIPPED = "shipped"  # the name that stands for the shipped model wherever a model folder is asked for


def model_dir(model: PathLike | None) -> Path:
    """The model folder ``model`` names: the shipped model for None or ``"shipped"`` (unless a folder of that
    name exists here), else the path as given."""
    if model is None or (str(model) == SHIPPED and not Path(SHIPPED).exists()):
        return shipped_model_dir()
    return Path(model)


def shipped_model_dir() -> Path:
    """Folder of the shipped checkpoint; a clear error when this installation has none."""
    folder = shipped_model_path()
    if not (folder / "model.safetensors").is_file():
        raise ConfigError("no shipped model in this installation of boxpromptiml: pass --model RUN_DIR "
                          "(a folder written by bpiml train)")
    return folder


def ship_model(checkpoint: PathLike, note: dict[str, Any], out_dir: PathLike | None = None) -> Path:
    """Write ``checkpoint`` (a run or checkpoint folder) as the fp16 shipped model with its training note."""
    from ..evaluation.calibration import DECISION_FILE, PIXEL_CALIBRATION_FILE
    from ..fileio import write_bytes_atomic
    from ..training.checkpoint import checkpoint_folder, load_student, save_checkpoint
    from .map_gate import MAP_GATE_FILE
    from .predictor import COPY_MOVE_FILE
    from .verdict import VERDICT_FILE

    model, state = load_student(checkpoint)
    out = Path(out_dir) if out_dir is not None else shipped_model_path()
    source = Path(checkpoint).resolve()  # recorded relative to where it was shipped from: no machine's own paths
    shipped_from = source.relative_to(Path.cwd()) if source.is_relative_to(Path.cwd()) else Path(source.name)
    save_checkpoint(out, model, {**state, "shipped_from": shipped_from.as_posix()}, half=True)
    # the records (and the copy-move settings and the map gate) travel with the weights
    for name in (DECISION_FILE, PIXEL_CALIBRATION_FILE, VERDICT_FILE, COPY_MOVE_FILE, MAP_GATE_FILE):
        record = checkpoint_folder(checkpoint) / name
        if record.is_file():
            write_bytes_atomic(out / name, record.read_bytes())
        elif (out / name).is_file():
            (out / name).unlink()  # it belonged to the model being replaced
    size_mb = (out / "model.safetensors").stat().st_size / 2**20
    if size_mb > MAX_SHIPPED_MB:
        raise ConfigError(f"shipped weights are {size_mb:.1f} MB, over the {MAX_SHIPPED_MB} MB limit")
    write_json_atomic(out / TRAINING_NOTE, {**note, "weights_mb": round(size_mb, 2)})
    write_shipped_graph(out)
    return out


def write_shipped_graph(out: Path | None = None) -> Path:
    """(Re)make the shipped folder's OpenVINO model from its current weights and config: call it after
    anything that changes them (calibration, a verdict head), or the default backend exports its own once."""
    from .graph import write_folder_openvino_model

    return write_folder_openvino_model(out or shipped_model_path())


def shipped_note() -> dict[str, Any]:
    """The shipped model's training note (empty when there is no shipped model)."""
    path = shipped_model_path() / TRAINING_NOTE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
