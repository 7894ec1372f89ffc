"""Running a trained student on images of any size: the two-tier predictor.

``Predictor.predict(image)`` (numpy, for people) resizes an RGB uint8 image to the model's
square input, runs it and resizes the probability map back; ``predict_batch`` (tensors, for
programs) takes B x 3 x S x S in [0, 1]. The same predictor runs a PyTorch student or its
ONNX export. The image score is the model's own (score head) or else the map's maximum, as
`bpiml evaluate` defines it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..data.images import PathLike
from ..errors import ConfigError
from ..evaluation.metrics import image_score_from_map
from ..student.inputs import image_to_input
from ..student.model import Student

BatchRunner = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class Prediction:
    probability: np.ndarray  # float32 H x W in [0, 1], at the image's own size
    score: float  # image-level tampering score in [0, 1]


def torch_runner(model: Student) -> BatchRunner:
    model.eval()

    @torch.inference_mode()
    def run(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if model.score_head is not None:
            logits, score_logits = model.forward_with_score(images)
            return torch.sigmoid(logits), torch.sigmoid(score_logits)
        return torch.sigmoid(model(images)), None

    return run


class Predictor:
    """Wraps (never subclasses) a model for inference."""

    def __init__(self, runner: BatchRunner, input_size: int, description: str = "") -> None:
        self.predict_batch = runner
        self.size = input_size
        self.description = description

    @classmethod
    def from_student(cls, model: Student, description: str = "") -> Predictor:
        return cls(torch_runner(model), model.config.input_size, description)

    @classmethod
    def from_onnx(cls, path: PathLike) -> Predictor:
        from .onnx_backend import OnnxSession

        session = OnnxSession(path)

        def run(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            prob, score = session.run(images.numpy())
            return torch.from_numpy(prob), torch.from_numpy(score) if score is not None else None

        return cls(run, session.input_size, f"onnx:{path}")

    def predict(self, image: np.ndarray) -> Prediction:
        height, width = image.shape[:2]
        prob, scores = self.predict_batch(image_to_input(image, self.size)[None])
        full = cv2.resize(prob[0, 0].numpy(), (width, height), interpolation=cv2.INTER_LINEAR)
        full = np.clip(full, 0.0, 1.0).astype(np.float32)
        score = float(scores[0]) if scores is not None else image_score_from_map(full)
        return Prediction(full, score)


def load_predictor(model: PathLike | None, backend: str = "torch") -> Predictor:
    """A predictor for a run / checkpoint folder (torch), or an .onnx file or its folder (onnx)."""
    if model is None:
        from .shipped import shipped_model_dir

        model = shipped_model_dir()
    path = Path(model)
    if backend == "onnx":
        onnx_file = path if path.suffix == ".onnx" else next(iter(sorted(path.glob("*.onnx"))), None)
        if onnx_file is None or not onnx_file.is_file():
            raise ConfigError(f"no .onnx file at {path}; make one with bpiml export")
        return Predictor.from_onnx(onnx_file)
    if backend != "torch":
        raise ConfigError(f"unknown backend {backend!r}; known: torch, onnx")
    from ..training.checkpoint import load_student

    student, _ = load_student(path)
    return Predictor.from_student(student, f"torch:{path}")
