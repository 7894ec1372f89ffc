"""ONNX export through a small adapter (image in [0, 1] -> probabilities), checked against PyTorch.

The graph has a dynamic batch axis; its spatial size is fixed (the student's ``input_size``) for
``resize`` students and dynamic (multiples of 32) for ``native`` ones. The student's config is
stored in the graph's metadata, so the ONNX file alone says how to feed it.
It is produced with torch's ``torch.export``-based exporter, whose graph matches PyTorch to
float precision (the older tracing exporter mis-handles TinyViT's window padding).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.images import PathLike
from ..errors import ConfigError
from ..student.model import Resolution, Student
from .graph import CHECKPOINT_METADATA, GRAPH_REVISION, REVISION_METADATA, STUDENT_METADATA

INPUT_NAME, PROBABILITY_NAME, SCORE_NAME = "image", "probability", "score"


class OnnxAdapter(nn.Module):
    """What the ONNX graph computes: probabilities (and image scores with a score head)."""

    def __init__(self, model: Student) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        if self.model.score_head is not None:
            logits, score_logits = self.model.forward_with_score(image)
            return torch.sigmoid(logits), torch.sigmoid(score_logits)
        return torch.sigmoid(self.model(image))


def export_onnx(model: Student, path: PathLike, opset: int = 18, check: bool = True,
                checkpoint_sha256: str | None = None) -> float | None:
    """Write ``model`` as ONNX; with ``check``, return the max |difference| against PyTorch. ``checkpoint_sha256``
    (graph.checkpoint_sha256 of the folder it was loaded from) is recorded, so that the folder's later weights or
    calibration are not served by this graph (deployment/graph.py)."""
    try:
        import onnxscript  # noqa: F401 - the exporter needs it
    except ImportError as exc:
        raise ConfigError("ONNX export needs onnxscript (a dependency of boxpromptiml): "
                          "pip install onnx onnxscript") from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    adapter = OnnxAdapter(model.eval()).eval()
    size = model.config.input_size
    example = torch.rand(2, 3, size, size)
    outputs = [PROBABILITY_NAME, SCORE_NAME] if model.score_head is not None else [PROBABILITY_NAME]
    axes = {0: torch.export.Dim("batch", min=1, max=1024)}
    native = model.config.resolution is Resolution.NATIVE
    if native:  # any multiple of 32, from 64 to 4096
        axes.update({2: 32 * torch.export.Dim("h32", min=2, max=128), 3: 32 * torch.export.Dim("w32", min=2, max=128)})
    tmp = path.with_name(f".{path.name}.tmp")
    program = torch.onnx.export(adapter, (example,), input_names=[INPUT_NAME], output_names=outputs,
                                dynamic_shapes={"image": axes}, opset_version=opset, dynamo=True, verbose=False)
    import onnx

    proto = program.model_proto
    props = {STUDENT_METADATA: json.dumps(model.config.to_dict()), REVISION_METADATA: GRAPH_REVISION}
    if checkpoint_sha256 is not None:
        props[CHECKPOINT_METADATA] = checkpoint_sha256
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    if not check:
        return None
    from .onnx_backend import OnnxSession

    probe = torch.rand(3, 3, size, size + 32 if native else size)
    with torch.inference_mode():
        expected = adapter(probe)
    expected = expected[0] if isinstance(expected, tuple) else expected
    got, _ = OnnxSession(path).run(probe.numpy())
    return float(np.abs(got - expected.numpy()).max())
