"""An onnxruntime session of a graph written by :func:`export_onnx`."""

from __future__ import annotations

import json

import numpy as np

from ..data.images import PathLike
from ..errors import ConfigError
from ..student.config import StudentConfig

STUDENT_METADATA = "boxpromptiml.student"  # written by export.export_onnx


class OnnxSession:
    def __init__(self, path: PathLike, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ConfigError("the onnx backend needs the [onnx] extra: pip install 'boxpromptiml[onnx]'") from exc
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"cannot load ONNX model {path}: {exc}") from exc
        self.has_score = len(self.session.get_outputs()) > 1
        stored = self.session.get_modelmeta().custom_metadata_map.get(STUDENT_METADATA)
        if stored is not None:
            self.student_config = StudentConfig.from_dict(json.loads(stored))
        else:  # exported before the config was stored: a square resize model
            self.student_config = StudentConfig(input_size=int(self.session.get_inputs()[0].shape[-1]))

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (and scores) for B x 3 x H x W float images in [0, 1]."""
        outputs = self.session.run(None, {"image": images.astype(np.float32)})
        return outputs[0], (outputs[1] if self.has_score else None)
