"""Making a frozen teacher cheaper on the CPU without changing what it computes.

- Convolution + BatchNorm pairs are folded into one convolution (exact up to float rounding).
- Weights and inputs use the channels-last layout, which oneDNN convolutions run faster.
- On the CPU the image encoder (the expensive half) runs in OpenVINO (:class:`OpenVinoEncoder`), in bf16 where
  the CPU has it, and so does the box decoder (:class:`OpenVinoDecoder`: 100 against 145 ms a box on one core).
Measured effect on LiteMedSAM's encoder: see docs/results.md (teacher speed).
"""

from __future__ import annotations

import os
from collections.abc import Callable
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


def _compiled(module: Callable[[], nn.Module], example: tuple[torch.Tensor, ...], graph: Path, what: str,
              threads: int, precision: str):
    """The module ``module()`` gives compiled by OpenVINO for the CPU, from its ONNX graph at ``graph`` (exported
    there first if missing: once per teacher checkpoint, in the graph cache, deployment/graph.py's
    ``$BPIML_CACHE``; only then is ``module`` called)."""
    from ..deployment.openvino_backend import compile_properties, openvino_core

    if not graph.is_file():
        export_graph(module(), example, graph, what)
    core = openvino_core()
    model = core.read_model(str(graph))
    tokens_transposed_as_images(model)
    windows_transposed_in_four_dimensions(model)
    return core.compile_model(model, "CPU", compile_properties(threads, precision))


def _indices(values: list[int]):
    """An OpenVINO constant of int64 values (shapes and axis orders)."""
    from openvino import opset13 as ops

    return ops.constant(np.array(values, np.int64))


def _redirect(node, replacement) -> None:
    """Every consumer of ``node``'s output reads ``replacement``'s instead."""
    for target in list(node.output(0).get_target_inputs()):
        target.replace_source_output(replacement.output(0))


def windows_transposed_in_four_dimensions(model) -> int:
    """Rewrite, in an OpenVINO model of static shapes, each 6-D transpose that swaps axes 2 and 3 (a ViT cutting its
    tokens into windows and back: B x nH x ws x nW x ws x C) into a 4-D one of the same values (axes 0-1 and 4-5
    merged). OpenVINO's CPU plugin runs 6-D transposes generically: about 1% of LiteMedSAM's encoder. Returns how
    many were rewritten."""
    from openvino import opset13 as ops

    rewritten = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Transpose" or not node.get_input_partial_shape(0).is_static:
            continue
        order = node.input_value(1).get_node()
        shape = list(node.get_input_partial_shape(0).to_shape())
        if order.get_type_name() != "Constant" or list(order.get_data()) != [0, 1, 3, 2, 4, 5]:
            continue
        batch, outer, first, second, inner, channels = shape
        merged = ops.reshape(node.input_value(0), _indices([batch * outer, first, second, inner * channels]), False)
        swapped = ops.transpose(merged, _indices([0, 2, 1, 3]))
        _redirect(node, ops.reshape(swapped, _indices([batch, outer, second, first, inner, channels]), False))
        rewritten += 1
    model.validate_nodes_and_infer_types()
    return rewritten


def tokens_transposed_as_images(model) -> int:
    """Rewrite, in an OpenVINO model of static shapes, each switch between tokens (B x L x C) and an image
    (B x C x H x W) made as a 3-D transpose next to a reshape (ViT blocks around a convolution: TinyViT's local
    convolution, SAM's mask decoder) into the same switch through B x H x W x C and a 4-D transpose. The values
    are the same, moved alike; OpenVINO's CPU plugin runs the 3-D form with a slow generic transpose and the 4-D
    one as a change of memory layout next to the convolution: LiteMedSAM's encoder took 1.20 against 1.30-1.36 s
    an image on one core of an AVX2 CPU, bit for bit the same embedding. Returns how many switches were rewritten."""
    from openvino import opset13 as ops

    def swaps_last_two(node) -> bool:
        if node.get_type_name() != "Transpose" or not node.get_input_partial_shape(0).is_static:
            return False
        order = node.input_value(1).get_node()
        return order.get_type_name() == "Constant" and list(order.get_data()) == [0, 2, 1]

    rewritten = 0
    for node in model.get_ordered_ops():
        if not swaps_last_two(node):
            continue
        batch, length, channels = list(node.get_input_partial_shape(0).to_shape())
        users = [target.get_node() for target in node.output(0).get_target_inputs()]
        if len(users) == 1 and users[0].get_type_name() == "Reshape" and users[0].get_output_partial_shape(0).is_static:
            shape = list(users[0].get_output_partial_shape(0).to_shape())  # tokens to an image
            if len(shape) == 4 and shape[:2] == [batch, channels] and shape[2] * shape[3] == length:
                image = ops.reshape(node.input_value(0), _indices([batch, *shape[2:], channels]), False)
                _redirect(users[0], ops.transpose(image, _indices([0, 3, 1, 2])))
                rewritten += 1
                continue
        producer = node.input_value(0).get_node()  # an image to tokens: here ``length`` counts channels
        source = producer.input_value(0) if producer.get_type_name() == "Reshape" else None
        if source is not None and source.get_partial_shape().is_static:
            shape = list(source.get_partial_shape().to_shape())
            if len(shape) == 4 and shape[:2] == [batch, length] and shape[2] * shape[3] == channels:
                channels_last = ops.transpose(source, _indices([0, 2, 3, 1]))
                _redirect(node, ops.reshape(channels_last, _indices([batch, channels, length]), False))
                rewritten += 1
    model.validate_nodes_and_infer_types()
    return rewritten


def _teacher_graph_path(checkpoint_sha256: str, part: str) -> Path:
    """Where a graph of a teacher checkpoint is cached (made once per checkpoint and ``part``)."""
    from ..deployment.graph import cache_dir

    return cache_dir() / "teachers" / f"{checkpoint_sha256[:32]}-{part}.onnx"


def encoder_graph_path(checkpoint_sha256: str, canvas_side: int) -> Path:
    """Where the image encoder graph of a teacher checkpoint is cached (made once per checkpoint and canvas)."""
    return _teacher_graph_path(checkpoint_sha256, f"encoder-{canvas_side}")


class OpenVinoEncoder:
    """A frozen image encoder compiled by OpenVINO (``precision`` "auto": bf16 where the CPU has it, as the student's
    default backend; "f32": the same embeddings as PyTorch to ~1e-5). Measured on LiteMedSAM (docs/results.md,
    teacher encoder backends): 0.29 s (bf16) and 0.58 s (f32) per canvas against 1.01 s in PyTorch, at the same
    pseudo-mask F1. ``encoder`` gives the PyTorch module, asked for only when the graph is not cached yet."""

    def __init__(self, encoder: Callable[[], nn.Module], canvas_side: int, checkpoint_sha256: str, threads: int,
                 precision: str = "auto") -> None:
        graph = encoder_graph_path(checkpoint_sha256, canvas_side)
        example = (torch.zeros(1, 3, canvas_side, canvas_side),)
        self.compiled = _compiled(encoder, example, graph, "encoder", threads, precision)
        self._request = self.compiled.create_infer_request()

    def __call__(self, canvas: torch.Tensor) -> torch.Tensor:
        self._request.infer({0: np.ascontiguousarray(canvas.numpy(), dtype=np.float32)})
        return torch.from_numpy(self._request.get_output_tensor(0).data.copy())


class _OneBoxDecoder(nn.Module):
    """The prompt encoder and mask decoder of a SAM-family model for one box, one mask, no mask prompt: what the
    default settings decode (one graph of fixed shapes; boxes go through it one at a time)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, embedding: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        return self.model.decode(embedding, box, multimask=False)[0]


class OpenVinoDecoder:
    """A SAM-family model's box decoder compiled by OpenVINO: low-resolution logits (N x 1 x m x m) of N boxes on one
    image embedding, a box at a time. The same logits as PyTorch to ~4e-5 in float32; 100 against 145 ms a box on
    one core of this CPU (LiteMedSAM, whose 256 x 256 masks make its decoder unusually dear)."""

    def __init__(self, model: Callable[[], nn.Module], embedding_shape: tuple[int, ...], checkpoint_sha256: str,
                 threads: int, precision: str = "auto") -> None:
        side = "x".join(str(n) for n in embedding_shape[1:])
        graph = _teacher_graph_path(checkpoint_sha256, f"decoder-{side}")
        example = (torch.zeros(embedding_shape), torch.tensor([[0.0, 0.0, 8.0, 8.0]]))
        self.compiled = _compiled(lambda: _OneBoxDecoder(model()).eval(), example, graph, "box decoder", threads,
                                  precision)
        self._request = self.compiled.create_infer_request()

    def __call__(self, embedding: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        embedding = np.ascontiguousarray(embedding.numpy(), dtype=np.float32)
        logits = []
        for box in boxes.numpy().astype(np.float32):
            self._request.infer({0: embedding, 1: box[None]})
            logits.append(self._request.get_output_tensor(0).data.copy())
        return torch.from_numpy(np.concatenate(logits))


def export_graph(module: nn.Module, example: tuple[torch.Tensor, ...], out: Path, what: str) -> Path:
    """``module`` as an ONNX graph of inputs shaped as ``example``, written atomically."""
    import logging

    logging.getLogger(__name__).warning("making the teacher %s's ONNX graph once (about 30 s), kept in %s", what, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # shards may export at once: each its own file
    program = torch.onnx.export(module.eval(), example, dynamo=True, opset_version=18, verbose=False)
    program.save(str(tmp))
    tmp.replace(out)
    return out
