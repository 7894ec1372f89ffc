"""Running a trained student on images of any size: the two-tier predictor.

``Predictor.predict(image)`` (numpy, for people) fits an RGB uint8 image to the model as its
config says (squeezed to the square input, or at its own resolution, tiled when large; see
``student/inference.py``) and returns the probability map at the image's size;
``predict_batch`` (tensors, for programs) takes B x 3 x H x W in [0, 1]. The same predictor runs a
PyTorch student or its ONNX export. The image score is the model's own (score head) or else the map's maximum, as
`bpiml evaluate` defines it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.images import PathLike
from ..devices import resolve_device
from ..errors import ConfigError
from ..evaluation.calibration import ImageDecision
from ..evaluation.metrics import image_score_from_map
from ..student.inference import BatchRunner, Prediction, predict_image, torch_runner
from ..student.model import Student, StudentConfig


class Predictor:
    """Wraps (never subclasses) a model for inference."""

    def __init__(self, runner: BatchRunner, config: StudentConfig, description: str = "",
                 decision: ImageDecision | None = None, source: Path | None = None) -> None:
        self.predict_batch = runner
        self.config = config
        self.description = description
        self.decision = decision  # calibrated image-level threshold (bpiml calibrate), if the model has one
        self.source = source  # the model folder or .onnx file it was loaded from (None: built in memory)
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
        from .onnx_backend import OnnxSession

        session = OnnxSession(path)

        def run(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            prob, score = session.run(images.numpy())
            return torch.from_numpy(prob), torch.from_numpy(score) if score is not None else None

        return cls(run, session.student_config, f"onnx:{path}", source=Path(path))

    def describe(self) -> dict[str, object]:
        """What made the maps: the model's source, its student settings and its image-level decision."""
        about: dict[str, object] = {"model": self.description or "(in memory)"}
        about.update({f"student.{k}": v for k, v in self.config.to_dict().items()})
        if self.decision is not None:
            about["decision"] = self.decision.describe()
        return about

    def predict(self, image: np.ndarray) -> Prediction:
        """Probability map at the image's size and its image score (the model's own, else the map's maximum)."""
        prediction = predict_image(self.predict_batch, self.config, image)
        if prediction.score is not None:
            return prediction
        return Prediction(prediction.probability, image_score_from_map(prediction.probability))


def load_predictor(model: PathLike | None, backend: str = "torch", device: str = "cpu") -> Predictor:
    """A predictor for a run / checkpoint folder (torch, on ``device``), or an .onnx file or its folder (onnx)."""
    if model is None:
        from .shipped import shipped_model_dir

        model = shipped_model_dir()
    path = Path(model)
    if backend == "onnx":
        from ..training.checkpoint import checkpoint_folder

        # the file itself, or one in the folder or in a run's checkpoint folder (where bpiml export writes it)
        candidates = [path] if path.suffix == ".onnx" else sorted(path.glob("*.onnx")) + sorted(
            checkpoint_folder(path).glob("*.onnx"))
        onnx_file = next(iter(candidates), None)
        if onnx_file is None or not onnx_file.is_file():
            raise ConfigError(f"no .onnx file at {path}; make one with bpiml export --model {path}")
        from .calibrate import load_decision

        predictor = Predictor.from_onnx(onnx_file)
        predictor.decision = load_decision(onnx_file.parent)
        return predictor
    if backend != "torch":
        raise ConfigError(f"unknown backend {backend!r}; known: torch, onnx")
    from ..training.checkpoint import load_student
    from .calibrate import load_decision

    student, _ = load_student(path)
    predictor = Predictor.from_student(student.to(resolve_device(device)), f"torch:{path}")
    predictor.source = path
    predictor.decision = load_decision(path)
    return predictor
