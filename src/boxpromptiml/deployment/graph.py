"""Compiled graphs of a student for the fast CPU backends: its ONNX export and its OpenVINO model, made once.

A model folder (a run or checkpoint folder) is identified by the SHA-256 of its ``model.safetensors`` and its
``student.json`` (which holds the calibrated pixel threshold the graph applies). A graph found in the checkpoint
folder is used only when it records this same checkpoint (a run trained or calibrated further after
``bpiml export`` gets a fresh graph, never a stale one) and the current ``GRAPH_REVISION``; otherwise the graph
is made once into the cache (``$BPIML_CACHE``, default ``~/.cache/boxpromptiml``) and reused from there. Files
are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from ..data.images import PathLike
from ..errors import ConfigError
from ..student.config import StudentConfig

log = logging.getLogger(__name__)

STUDENT_METADATA = "boxpromptiml.student"  # the student's config (JSON) in the graph's metadata
CHECKPOINT_METADATA = "boxpromptiml.checkpoint_sha256"  # the checkpoint (weights + student config) it was made from
REVISION_METADATA = "boxpromptiml.graph_revision"  # which GRAPH_REVISION of the exporter made it
# Raised when the graph exported from the same checkpoint changes (same maps, other operations): graphs of older
# revisions are then made again, once. 2: the JPEG-ghost branch takes its means one quality at a time, which
# OpenVINO runs 5x faster (the network at 1024 x 768: -29 ms).
GRAPH_REVISION = "2"
ONNX_NAME, OPENVINO_NAME = "student.onnx", "student.xml"  # (an OpenVINO model is student.xml + student.bin)
RT_INFO_ROOT = "boxpromptiml"  # OpenVINO keeps our metadata under this key of its runtime info


def cache_dir() -> Path:
    """Where graphs made on demand are kept (``$BPIML_CACHE`` or ``~/.cache/boxpromptiml``)."""
    return Path(os.environ.get("BPIML_CACHE") or Path.home() / ".cache" / "boxpromptiml")


def checkpoint_sha256(checkpoint: Path) -> str:
    """SHA-256 of a checkpoint's weights and student config (what a graph is made from)."""
    from ..training.checkpoint import STUDENT_CONFIG, WEIGHTS

    digest = hashlib.sha256()
    for name in (WEIGHTS, STUDENT_CONFIG):
        with (checkpoint / name).open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def require_checkpoint(checkpoint: Path) -> None:
    from ..training.checkpoint import STUDENT_CONFIG, WEIGHTS

    for name in (WEIGHTS, STUDENT_CONFIG):
        if not (checkpoint / name).is_file():
            raise ConfigError(f"{checkpoint} is not a student checkpoint: {name} is missing")


def onnx_metadata(path: PathLike) -> dict[str, str]:
    """The metadata properties of an ONNX file (its weights are not loaded)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parser failure names the file
        raise ConfigError(f"cannot read ONNX model {path}: {exc}") from exc
    return {prop.key: prop.value for prop in proto.metadata_props}


def student_config_of(metadata: dict[str, str], fallback_size: int | None = None) -> StudentConfig:
    """The student config a graph records (graphs exported before it was recorded: a square resize model)."""
    stored = metadata.get(STUDENT_METADATA)
    if stored is not None:
        return StudentConfig.from_dict(json.loads(stored))
    if fallback_size is None:
        raise ConfigError("the graph records no student config; export it again with bpiml export")
    return StudentConfig(input_size=fallback_size)


def is_current(metadata: dict[str, str], sha: str, path: Path) -> bool:
    """Whether a graph found in a model folder was made from checkpoint ``sha`` by this revision of the exporter
    (one from another checkpoint would be stale; one of an older revision is slower)."""
    recorded = metadata.get(CHECKPOINT_METADATA)
    if recorded != sha:
        log.info("%s was exported from another checkpoint (%s); not used", path,
                 "unrecorded" if recorded is None else recorded[:12])
        return False
    if metadata.get(REVISION_METADATA) != GRAPH_REVISION:
        log.info("%s was made by an older exporter (graph revision %s, now %s); a current graph is made once", path,
                 metadata.get(REVISION_METADATA, "1"), GRAPH_REVISION)
        return False
    return True


def onnx_graph(model: PathLike) -> Path:
    """The ONNX graph of a model folder's weights: its own export if it matches them, else one made once."""
    from ..training.checkpoint import checkpoint_folder

    checkpoint = checkpoint_folder(model)
    require_checkpoint(checkpoint)
    sha = checkpoint_sha256(checkpoint)
    for candidate in sorted(checkpoint.glob("*.onnx")):
        if is_current(onnx_metadata(candidate), sha, candidate):
            return candidate
    cached = cache_dir() / "onnx" / f"{sha[:32]}-r{GRAPH_REVISION}.onnx"
    if not cached.is_file():
        from ..training.checkpoint import load_student
        from .export import export_onnx

        log.warning("making the ONNX graph of %s once (about 10-30 s), kept in %s", model, cached)
        student, _ = load_student(checkpoint)
        export_onnx(student, cached, check=False, checkpoint_sha256=sha)
    return cached


def openvino_model(model: PathLike) -> Path:
    """The OpenVINO model (``.xml`` + ``.bin``) of a model folder's weights: the folder's own if it matches
    them (the shipped model carries one), else one converted once from the ONNX graph into the cache."""
    from ..training.checkpoint import checkpoint_folder
    from .openvino_backend import openvino_core

    checkpoint = checkpoint_folder(model)
    require_checkpoint(checkpoint)
    sha = checkpoint_sha256(checkpoint)
    own = checkpoint / OPENVINO_NAME
    if own.is_file() and is_current(openvino_metadata(openvino_core().read_model(str(own))), sha, own):
        return own
    cached = cache_dir() / "openvino" / f"{sha[:32]}-r{GRAPH_REVISION}.xml"
    if not cached.is_file():
        write_openvino_model(onnx_graph(model), cached)
    return cached


def write_openvino_model(onnx_path: Path, out: Path, compress_to_fp16: bool = False) -> Path:
    """Convert an ONNX graph to an OpenVINO model at ``out`` (``.xml`` + ``.bin``), keeping its metadata.
    Atomic: the ``.bin`` is moved into place before the ``.xml`` that names it, so a half-written pair is never
    taken for a model. ``compress_to_fp16`` halves the file but is not lossless even for fp16 checkpoints (the
    exported graph folds batch norms into new weights): float32 maps moved by up to 0.01 on CASIA photos."""
    import openvino as ov

    converted = ov.convert_model(str(onnx_path))
    for key, value in onnx_metadata(onnx_path).items():
        if key.startswith(RT_INFO_ROOT + "."):
            converted.set_rt_info(value, [RT_INFO_ROOT, key.removeprefix(RT_INFO_ROOT + ".")])
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".ov-") as tmp:
        staged = Path(tmp) / out.name
        ov.save_model(converted, str(staged), compress_to_fp16=compress_to_fp16)
        staged.with_suffix(".bin").replace(out.with_suffix(".bin"))
        staged.replace(out)
    return out


def openvino_metadata(model) -> dict[str, str]:
    """Our metadata in an OpenVINO model's runtime info, under the same keys as in the ONNX graph."""
    found = {}
    for key in (STUDENT_METADATA, CHECKPOINT_METADATA, REVISION_METADATA):
        path = [RT_INFO_ROOT, key.removeprefix(RT_INFO_ROOT + ".")]
        if model.has_rt_info(path):
            found[key] = model.get_rt_info(path).astype(str)
    return found


def write_folder_openvino_model(checkpoint: Path, compress_to_fp16: bool = False) -> Path:
    """Make the OpenVINO model of a checkpoint inside its folder (the shipped model carries one, so that the
    default backend needs no export on first use)."""
    from ..training.checkpoint import load_student
    from .export import export_onnx

    require_checkpoint(checkpoint)
    student, _ = load_student(checkpoint)
    with tempfile.TemporaryDirectory(prefix="bpiml-graph-") as tmp:
        onnx_path = Path(tmp) / ONNX_NAME
        export_onnx(student, onnx_path, check=False, checkpoint_sha256=checkpoint_sha256(checkpoint))
        return write_openvino_model(onnx_path, checkpoint / OPENVINO_NAME, compress_to_fp16=compress_to_fp16)
