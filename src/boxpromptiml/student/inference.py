"""From an RGB image of any size to a probability map of that size, given a batch runner.

Shared by validation during training and by the deployment predictor, so both see an image
the same way. Two ways to fit an image to the network (``Resolution`` in the student config):
- ``resize``: squeeze the whole image to ``input_size`` x ``input_size`` and stretch the map back
  (cheap, but resampling erases the pixel-level traces manipulations leave);
- ``native``: run the fully convolutional student on the image's own pixels, zero-padded to a
  multiple of 32; images whose longer side exceeds ``max_side`` are cut into overlapping tiles
  whose maps are blended with a window that fades towards the tile edges (very large photos, over
  ``LEAN_PIXELS``, in smaller tiles into a float16 map, to bound memory).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .inputs import image_to_input

if TYPE_CHECKING:
    from .model import Student, StudentConfig

# images (B x 3 x H x W in [0, 1]) -> (probabilities B x 1 x H x W, image scores (B,) or None)
BatchRunner = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
STRIDE = 32  # the encoders' coarsest stride: native inputs are padded to a multiple of it
BLOCK = 8  # the JPEG block: tiles start on its grid (student/compression.py reads the photo's blocks)
# Photos above LEAN_PIXELS (40 MP, e.g. 8000 x 5000) are predicted in tiles of at most LEAN_TILE px and their map is
# held in float16 (an 8-bit PNG needs no more): a 12000 x 9000 photo then fits in 1.5 GB with torch loaded.
LEAN_PIXELS = 40_000_000
LEAN_TILE = 512
TILE_BATCH = 4  # tiles of one shape per network call, at most ...
BATCH_PIXELS = 4 * 1024 * 1024  # ... and at most this many pixels in all (larger tiles go one at a time)


@dataclass(frozen=True)
class Prediction:
    probability: np.ndarray  # float32 H x W in [0, 1], at the image's own size (float16 above LEAN_PIXELS)
    score: float | None  # image-level tampering score in [0, 1] (None: the caller derives it from the map)


def pad_to_multiple(image: np.ndarray, multiple: int = STRIDE) -> np.ndarray:
    """Zero-pad an H x W (x C) array at the bottom and right to multiples of ``multiple``."""
    height, width = image.shape[:2]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return image
    padding = ((0, pad_h), (0, pad_w)) + ((0, 0),) * (image.ndim - 2)
    return np.pad(image, padding)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 H x W x 3 -> 3 x H x W float in [0, 1], no resampling."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def _tile_count(length: int, tile: int, overlap: int) -> int:
    """How many tiles of ``tile`` pixels, overlapping by ``overlap``, it takes to cover ``length``."""
    return -(-(length - overlap) // max(BLOCK, tile - overlap))


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the fewest tiles of at most ``tile`` pixels that cover ``length`` with about ``overlap``
    between neighbours, spread evenly. Every start is a multiple of ``BLOCK`` so that each tile keeps the photo's
    JPEG block grid; the last one is rounded up to it, so the last tile ends at the edge and is up to
    ``BLOCK - 1`` pixels shorter than the others (``tile_end``)."""
    if length <= tile:
        return [0]
    count = _tile_count(length, tile, overlap)
    last = -(-(length - tile) // BLOCK) * BLOCK
    if count < 2:
        return [0, last]
    return sorted({min(last, round(i * last / (count - 1)) // BLOCK * BLOCK) for i in range(count)} | {last})


def tile_side(length: int, largest: int, overlap: int) -> int:
    """The side of the tiles along one axis: the whole length when it fits in ``largest``, else the smallest
    multiple of ``STRIDE`` that covers it with as few tiles of at most ``largest`` (so no tile is padded up
    and no pixel is computed more often than the overlap asks)."""
    if length <= largest:
        return length
    count = _tile_count(length, largest, overlap)
    needed = -(-(length + (count - 1) * overlap) // count)
    return min(largest, -(-needed // STRIDE) * STRIDE)


def tile_end(start: int, starts: list[int], length: int, tile: int) -> int:
    """Where the tile at ``start`` ends: ``tile`` later, or at the end for the last tile."""
    return length if start == starts[-1] else min(length, start + tile)


def _ramp(n: int) -> np.ndarray:
    """1-D blending weights of a tile side: 1 in the middle, falling linearly to a small value at the edges."""
    position = (np.arange(n) + 0.5) / n
    return np.clip(np.minimum(position, 1 - position) * 4, 0.05, 1.0).astype(np.float32)


def predict_resized(run: BatchRunner, image: np.ndarray, size: int) -> tuple[np.ndarray, float | None]:
    """Probability map at the image's size by squeezing it to ``size`` x ``size``."""
    import cv2

    height, width = image.shape[:2]
    prob, score = run(image_to_input(image, size)[None])
    full = cv2.resize(prob[0, 0].numpy(), (width, height), interpolation=cv2.INTER_LINEAR)
    return full, (float(score[0]) if score is not None else None)


def tile_windows(height: int, width: int, largest: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) of the tiles covering an image, row by row: along each axis the fewest tiles of
    at most ``largest`` pixels, of one size (``tile_side``), spread evenly."""
    tile_h, tile_w = tile_side(height, largest, overlap), tile_side(width, largest, overlap)
    ys, xs = tile_starts(height, tile_h, overlap), tile_starts(width, tile_w, overlap)
    return [(y, tile_end(y, ys, height, tile_h), x, tile_end(x, xs, width, tile_w)) for y in ys for x in xs]


def predict_native(run: BatchRunner, image: np.ndarray, max_side: int, overlap: int = 64,
                   batch: int = TILE_BATCH) -> tuple[np.ndarray, float | None]:
    """Probability map on the image's own pixel grid (tiled when larger than ``max_side``; tiles of one shape
    go through the network up to ``batch`` and ``BATCH_PIXELS`` at a time)."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return _predict_whole(run, image)
    largest = max_side - max_side % STRIDE
    lean = height * width > LEAN_PIXELS
    if lean:  # a very large photo: smaller tiles (a quarter of the activations), one at a time, a half-precision map
        largest, batch = min(largest, LEAN_TILE), 1
    windows = tile_windows(height, width, largest, overlap)
    # The tiles form a grid and each tile's window is an outer product, so the summed weights are the outer
    # product of two 1-D sums: no second full-size array is needed (a 12000 x 9000 photo saves 432 MB).
    weight_y, weight_x = np.zeros(height, np.float32), np.zeros(width, np.float32)
    for top, bottom, left, right in windows:
        if left == 0:
            weight_y[top:bottom] += _ramp(bottom - top)
        if top == 0:
            weight_x[left:right] += _ramp(right - left)
    total = np.zeros((height, width), np.float16 if lean else np.float32)
    scores = []
    by_shape: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}  # tiles by their padded input shape
    for window in windows:
        padded = (-(-(window[1] - window[0]) // STRIDE) * STRIDE, -(-(window[3] - window[2]) // STRIDE) * STRIDE)
        by_shape.setdefault(padded, []).append(window)
    blends: dict[tuple[int, int], np.ndarray] = {}
    for (padded_h, padded_w), members in by_shape.items():
        step = max(1, min(batch, BATCH_PIXELS // (padded_h * padded_w)))
        for start in range(0, len(members), step):
            chunk = members[start:start + step]
            tiles = torch.stack([to_tensor(pad_to_multiple(image[t:b, lft:r])) for t, b, lft, r in chunk])
            prob, score = run(tiles)
            for i, (top, bottom, left, right) in enumerate(chunk):
                shape = (bottom - top, right - left)
                if shape not in blends:
                    blends[shape] = np.outer(_ramp(shape[0]), _ramp(shape[1]))
                total[top:bottom, left:right] += prob[i, 0, :shape[0], :shape[1]].numpy() * blends[shape]
            if score is not None:
                scores += [float(v) for v in score.reshape(-1)]
    for row in range(0, height, 1024):  # in place, a band at a time
        total[row:row + 1024] /= np.outer(weight_y[row:row + 1024], weight_x)
    return total, (max(scores) if scores else None)


def _predict_whole(run: BatchRunner, image: np.ndarray) -> tuple[np.ndarray, float | None]:
    """Probability map of one image (or tile) in one pass, zero-padded to a multiple of ``STRIDE``."""
    height, width = image.shape[:2]
    prob, score = run(to_tensor(pad_to_multiple(image))[None])
    return prob[0, 0, :height, :width].numpy(), (float(score[0]) if score is not None else None)


def torch_runner(model: Student, bf16: bool = False) -> BatchRunner:
    """A batch runner for a PyTorch student (eval mode, no autograd) on whatever device the model is:
    batches go there and results come back to the CPU as float32. ``bf16``: under bfloat16 autocast."""
    from contextlib import nullcontext

    model.eval()
    device = next(model.parameters()).device

    @torch.inference_mode()
    def run(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        images = images.to(device)
        with torch.autocast(device.type, torch.bfloat16) if bf16 else nullcontext():
            if model.score_head is not None:
                logits, score_logits = model.forward_with_score(images)
                return torch.sigmoid(logits).float().cpu(), torch.sigmoid(score_logits).float().cpu()
            return torch.sigmoid(model(images)).float().cpu(), None

    return run


def predict_image(run: BatchRunner, config: StudentConfig, image: np.ndarray) -> Prediction:
    """Probability map at the image's size, and the model's own image score (None without a score head)."""
    from .model import Resolution

    if config.resolution is Resolution.NATIVE:
        prob, score = predict_native(run, image, config.max_side)
    else:
        prob, score = predict_resized(run, image, config.input_size)
    if prob.dtype not in (np.float16, np.float32):
        prob = prob.astype(np.float32)
    return Prediction(np.clip(prob, 0.0, 1.0, out=prob), score)  # in place: large photos hold one map, not three
