"""Running a trained student on images of any size: the two-tier predictor.

``Predictor.predict(image)`` (numpy, for people) fits an RGB uint8 image to the model as its
config says (squeezed to the square input, or at its own resolution, tiled when large; see
``student/inference.py``) and returns the probability map at the image's size;
``predict_batch`` (tensors, for programs) takes B x 3 x H x W in [0, 1]. The same predictor runs a
PyTorch student or its ONNX export. The image score is the model's own (score head) or else the map's maximum, as
`bpiml evaluate` defines it. A model folder with a ``copy_move.json`` also searches each photo for regions copied
within it (``copy_move/``) and marks the pasted member of each pair on the map; a found copy raises the image score
to at least ``copy_score``. A model folder with a ``map_gate.json`` damps the map of a photo whose image score is under
the gate, so that nothing is marked there (``map_gate.py``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..copy_move import CopyMoveSettings, find_copies_in_working_copy, fuse_copies, working_copy
from ..data.images import PathLike
from ..devices import resolve_device
from ..errors import ConfigError
from ..evaluation.calibration import ImageDecision
from ..evaluation.metrics import image_score_from_map
from ..student.inference import LEAN_PIXELS, BatchRunner, Prediction, predict_image, torch_runner
from ..student.model import Student, StudentConfig
from .backends import AUTO, resolve_backend
from .map_gate import MapGate, gate_map, load_map_gate
from .model_files import read_model_settings

_search_threads: tuple[int, ThreadPoolExecutor] | None = None  # (process id, one thread)


def _search_thread() -> ThreadPoolExecutor:
    """The thread that runs copy-move searches beside the network; made again in a forked child, where the
    parent's thread does not exist."""
    global _search_threads
    if _search_threads is None or _search_threads[0] != os.getpid():
        _search_threads = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="bpiml-copy-move"))
    return _search_threads[1]


class Predictor:
    """Wraps (never subclasses) a model for inference."""

    def __init__(self, runner: BatchRunner, config: StudentConfig, description: str = "",
                 decision: ImageDecision | None = None, source: Path | None = None) -> None:
        self.predict_batch = runner
        self.config = config
        self.description = description
        self.decision = decision  # calibrated image-level threshold (bpiml calibrate), if the model has one
        self.source = source  # the model folder or .onnx file it was loaded from (None: built in memory)
        self.backend = "torch"  # what runs the network (BACKENDS)
        self.copy_move: CopyMoveSettings | None = None  # copy-move search fused into the map (None: the student alone)
        self.map_gate: MapGate | None = None  # damps the maps of photos scored under it (None: maps as made)
        self.threads: int | None = None  # CPU threads it was given (None: torch's count at each call)
        self._identity: dict[str, str] | None = None

    def identity(self) -> dict[str, str]:
        """The model by name and weights hash, for reports that others must be able to check (no paths)."""
        if self._identity is None:
            from .provenance import weights_identity

            self._identity = weights_identity(self.source)
        return self._identity

    @classmethod
    def from_student(cls, model: Student, description: str = "") -> Predictor:
        return cls(torch_runner(model), model.config, description)

    @classmethod
    def from_onnx(cls, path: PathLike) -> Predictor:
        """ONNX Runtime on an exported graph file."""
        return load_predictor(path, backend="onnxruntime")

    def describe(self) -> dict[str, object]:
        """What made the maps: the model's source, its student settings and its image-level decision."""
        about: dict[str, object] = {"model": self.description or "(in memory)"}
        about.update({f"student.{k}": v for k, v in self.config.to_dict().items()})
        if self.decision is not None:
            about["decision"] = self.decision.describe()
        about["copy_move"] = "off" if self.copy_move is None else self.copy_move.to_dict()
        about["map_gate"] = "off" if self.map_gate is None else self.map_gate.describe()
        return about

    def predict(self, image: np.ndarray) -> Prediction:
        """Probability map at the image's size and its image score (the model's own, else the map's maximum)."""
        return self.predict_handed([image])

    def _search_beside_network(self, image_shape: tuple[int, int]) -> bool:
        """Whether the copy-move search runs in its own thread while the network runs. It does with more than one
        thread: the search is mostly one thread's work, which the network's threads would otherwise wait for
        (1024 x 768 on two cores: 0.36 s against 0.41 s). With one thread (e.g. a process of ``--processes N``) the
        other cores are busy with the other processes. Above ``LEAN_PIXELS`` memory comes first: the search runs
        after the network, once the photo is freed (its first use loads numba, ~150 MB)."""
        threads = self.threads or torch.get_num_threads()
        return threads > 1 and image_shape[0] * image_shape[1] <= LEAN_PIXELS

    def predict_handed(self, photo: list[np.ndarray]) -> Prediction:
        """``predict`` for a caller that hands the photo over in a one-item list (emptied here) and keeps no other
        reference to it: the photo is then freed once the network has seen it (the copy-move search works on its
        shrunk copy), instead of lying beside the map while the map is finished (324 MB at 12000 x 9000)."""
        image = photo.pop()
        image_shape = image.shape[:2]
        small = None if self.copy_move is None else working_copy(image, self.copy_move)
        beside = None
        if small is not None and self._search_beside_network(image_shape):
            beside = _search_thread().submit(find_copies_in_working_copy, small, image_shape, self.copy_move)
        prediction = predict_image(self.predict_batch, self.config, image)
        del image
        copies = None
        if beside is not None:
            copies = beside.result()
        elif small is not None:
            copies = find_copies_in_working_copy(small, image_shape, self.copy_move)
        del small
        probability, score = prediction.probability, prediction.score
        if copies is not None and copies.found:
            probability = fuse_copies(probability, copies, self.copy_move)
        if score is None:
            score = image_score_from_map(probability)
        if copies is not None and copies.found:
            score = max(score, self.copy_move.copy_score)
        if self.map_gate is not None:  # the map is this call's own array (predict_image makes it fresh)
            probability = gate_map(probability, score, self.map_gate)
        return Prediction(probability, score)


def load_predictor(model: PathLike | None, backend: str = AUTO, device: str = "auto",
                   threads: int | None = None, copy_move: bool = True, map_gate: bool = True) -> Predictor:
    """A predictor for a run / checkpoint folder (any backend), or for an exported graph file (``.onnx``:
    onnxruntime or openvino; OpenVINO ``.xml``: openvino). Graph backends make their graph from the folder's
    weights once (deployment/graph.py). ``threads`` defaults to torch's thread count. ``copy_move=False`` leaves
    out the copy-move search even where the model folder sets it up, ``map_gate=False`` the map gate."""
    from ..training.checkpoint import checkpoint_folder
    from .calibrate import load_decision
    from .shipped import model_dir

    path = model_dir(model)
    if not path.exists():
        raise ConfigError(f"model not found: {path}")
    graph_file = path.is_file()
    if graph_file and backend == AUTO:
        backend = "openvino" if path.suffix == ".xml" else "onnxruntime"
    name = resolve_backend(backend, device)
    threads = threads or torch.get_num_threads()
    if name.startswith("torch"):
        if graph_file:
            raise ConfigError(f"backend {name} needs a run or checkpoint folder, not the file {path}")
        from ..training.checkpoint import load_student

        student, _ = load_student(path)
        student = student.to(resolve_device(device))
        predictor = Predictor(torch_runner(student, bf16=name == "torch-bf16"), student.config, f"{name}:{path}")
    elif name == "onnxruntime":
        from .graph import onnx_graph
        from .onnx_backend import OnnxSession

        session = OnnxSession(path if graph_file else onnx_graph(path), threads=threads)
        predictor = Predictor(numpy_runner(session.run), session.student_config, f"{name}:{path}")
    else:
        from .graph import openvino_model
        from .openvino_backend import OpenVinoSession

        session = OpenVinoSession(path if graph_file else openvino_model(path), threads=threads,
                                  precision="f32" if name == "openvino-f32" else "auto")
        predictor = Predictor(numpy_runner(session.run), session.student_config,
                              f"{name} ({session.precision}):{path}")
    predictor.backend = name
    predictor.source = path
    predictor.threads = threads
    folder = path.parent if graph_file else checkpoint_folder(path)
    predictor.decision = load_decision(folder)
    predictor.copy_move = load_copy_move_settings(folder) if copy_move else None
    predictor.map_gate = load_map_gate(folder) if map_gate else None
    return predictor


COPY_MOVE_FILE = "copy_move.json"  # copy-move search settings saved with a model; absent: the student alone


def load_copy_move_settings(model_dir: PathLike) -> CopyMoveSettings | None:
    """The copy-move settings saved with a model, if any."""
    return read_model_settings(Path(model_dir) / COPY_MOVE_FILE, CopyMoveSettings.from_dict, "copy-move settings")


def numpy_runner(run_numpy) -> BatchRunner:
    """A batch runner around a session that takes and returns numpy arrays."""

    def run(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        prob, score = run_numpy(images.numpy())
        return torch.from_numpy(prob), torch.from_numpy(score) if score is not None else None

    return run
