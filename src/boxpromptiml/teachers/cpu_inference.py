"""Making a frozen teacher cheaper on the CPU without changing what it computes.

- Convolution + BatchNorm pairs are folded into one convolution (exact up to float rounding).
- Weights and inputs use the channels-last layout, which oneDNN convolutions run faster.
- On the CPU the image encoder (the expensive half) runs in OpenVINO (:class:`OpenVinoEncoder`), in bf16 where
  the CPU has it.
Measured effect on LiteMedSAM's encoder: see docs/results.md (teacher speed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norms(module: nn.Module) -> int:
    """Replace every ``Sequential(Conv2d, BatchNorm2d)`` (in eval mode) by one conv; returns how many."""
    folded = 0
    for name, child in list(module.named_children()):
        parts = list(child.children()) if isinstance(child, nn.Sequential) else []
        if len(parts) == 2 and isinstance(parts[0], nn.Conv2d) and isinstance(parts[1], nn.BatchNorm2d):
            setattr(module, name, fuse_conv_bn_eval(parts[0].eval(), parts[1].eval()))
            folded += 1
        else:
            folded += fold_batch_norms(child)
    return folded


def prepare_for_cpu_inference(model: nn.Module) -> nn.Module:
    """Eval mode, no gradients, folded batch norms, channels-last weights (in place)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    fold_batch_norms(model)
    return model.to(memory_format=torch.channels_last)


class OpenVinoEncoder:
    """A frozen image encoder compiled by OpenVINO (``precision`` "auto": bf16 where the CPU has it, as the student's
    default backend; "f32": the same embeddings as PyTorch to ~1e-5). Measured on LiteMedSAM (docs/results.md,
    teacher encoder backends): 0.29 s (bf16) and 0.58 s (f32) per canvas against 1.01 s in PyTorch, at the same
    pseudo-mask F1. Its ONNX graph is exported once per teacher checkpoint and canvas size into the graph cache
    (deployment/graph.py's ``$BPIML_CACHE``)."""

    def __init__(self, encoder: nn.Module, canvas_side: int, checkpoint_sha256: str, threads: int,
                 precision: str = "auto") -> None:
        import openvino as ov

        from ..deployment.graph import cache_dir
        from ..deployment.openvino_backend import cpu_properties

        graph = cache_dir() / "teachers" / f"{checkpoint_sha256[:32]}-encoder-{canvas_side}.onnx"
        if not graph.is_file():
            export_encoder(encoder, canvas_side, graph)
        self.compiled = ov.Core().compile_model(str(graph), "CPU", cpu_properties(threads, precision))
        self._request = self.compiled.create_infer_request()

    def __call__(self, canvas: torch.Tensor) -> torch.Tensor:
        self._request.infer({0: np.ascontiguousarray(canvas.numpy(), dtype=np.float32)})
        return torch.from_numpy(self._request.get_output_tensor(0).data.copy())


def export_encoder(encoder: nn.Module, canvas_side: int, out: Path) -> Path:
    """The encoder as an ONNX graph of one 1 x 3 x S x S canvas, written atomically."""
    import logging

    logging.getLogger(__name__).warning("making the teacher encoder's ONNX graph once (about 30 s), kept in %s", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # shards may export at once: each its own file
    program = torch.onnx.export(encoder.eval(), (torch.zeros(1, 3, canvas_side, canvas_side),), dynamo=True,
                                opset_version=18, verbose=False)
    program.save(str(tmp))
    tmp.replace(out)
    return out
