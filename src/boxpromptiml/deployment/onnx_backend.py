"""An onnxruntime session of a graph written by :func:`export_onnx`."""

from __future__ import annotations

import numpy as np

from ..data.images import PathLike
from ..errors import ConfigError
from .graph import student_config_of


class OnnxSession:
    def __init__(self, path: PathLike, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ConfigError("the onnxruntime backend needs the [onnx] extra: "
                              "pip install 'boxpromptiml[onnx]'") from exc
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"cannot load ONNX model {path}: {exc}") from exc
        self.has_score = len(self.session.get_outputs()) > 1
        self.student_config = student_config_of(self.session.get_modelmeta().custom_metadata_map,
                                                fallback_size=_static_side(self.session.get_inputs()[0].shape))

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (and scores) for B x 3 x H x W float images in [0, 1]."""
        outputs = self.session.run(None, {"image": images.astype(np.float32)})
        return outputs[0], (outputs[1] if self.has_score else None)


def _static_side(shape: list) -> int | None:
    """The fixed input side of a graph exported before its config was recorded (a square resize model)."""
    return shape[-1] if isinstance(shape[-1], int) else None
