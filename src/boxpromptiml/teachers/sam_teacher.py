"""Box-prompted SAM-family teacher: preprocessing, box transform, decoding, postprocessing.

Two tiers, as segment-anything's predictor: ``segment(image, boxes)`` takes numpy for people;
``predict_logits(canvas, boxes)`` takes tensors for programs. The image and its boxes always go
through the same :class:`CanvasTransform`, so they can never disagree.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.samples import Box
from ..errors import ConfigError
from .base import Teacher, TeacherOptions
from .classical import GrabCutTeacher
from .cpu_inference import prepare_for_cpu_inference
from .sam_model import SamPromptModel
from .settings import ENCODER_BACKENDS, OPENVINO_PRECISIONS, Normalize, Resize, SamSettings

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CanvasTransform:
    """Maps an H x W image (and its boxes) onto the model's S x S canvas and back."""

    height: int
    width: int
    size: int
    resize: Resize

    @property
    def scaled_hw(self) -> tuple[int, int]:
        """Size of the image on the canvas (the rest is padding)."""
        if self.resize is Resize.STRETCH:
            return self.size, self.size
        scale = self.size / max(self.height, self.width)
        # at least one pixel: a 10000 x 10 strip would otherwise become 0 px high on a 256 canvas
        return max(1, int(self.height * scale + 0.5)), max(1, int(self.width * scale + 0.5))

    def boxes(self, boxes: list[Box]) -> torch.Tensor:
        sh, sw = self.scaled_hw
        sx, sy = sw / self.width, sh / self.height
        return torch.tensor([[b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy] for b in boxes], dtype=torch.float32)

    def image(self, image: np.ndarray, normalize: Normalize, antialias: bool) -> torch.Tensor:
        """1 x 3 x S x S float canvas."""
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        if normalize is Normalize.UNIT:
            x = x / 255.0
        elif normalize is Normalize.MINMAX:
            x = (x - x.min()) / (x.max() - x.min()).clamp(min=1e-8)
        else:
            x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        sh, sw = self.scaled_hw
        if (sh, sw) != (self.height, self.width):
            x = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False,
                              antialias=antialias and (sh < self.height or sw < self.width))
        return F.pad(x, (0, self.size - sw, 0, self.size - sh))

    def logits_to_image(self, logits: torch.Tensor) -> torch.Tensor:
        """N x 1 x m x m low-resolution logits to N x H x W logits at the image's size."""
        canvas = F.interpolate(logits, size=(self.size, self.size), mode="bilinear", align_corners=False)
        sh, sw = self.scaled_hw
        canvas = canvas[..., :sh, :sw]
        return F.interpolate(canvas, size=(self.height, self.width), mode="bilinear", align_corners=False)[:, 0]


class LazyNetwork:
    """A teacher's network, built and prepared for the CPU on first use. Where OpenVINO runs both halves from graphs
    cached for the checkpoint (made once, when its weights were first loaded), PyTorch never needs the network: a
    start then skips importing its code and loading its weights (about 3.5 s of each pseudo-labelling process's
    start for LiteMedSAM, whose TinyViT imports timm and torchvision)."""

    def __init__(self, build: Callable[[], SamPromptModel], input_size: int) -> None:
        self._build, self.input_size = build, input_size
        self._model: SamPromptModel | None = None
        self._lock = threading.Lock()

    @classmethod
    def built(cls, model: SamPromptModel) -> LazyNetwork:
        network = cls(lambda: model, model.input_size)
        network.get()
        return network

    @property
    def is_built(self) -> bool:
        return self._model is not None

    def get(self) -> SamPromptModel:
        with self._lock:
            if self._model is None:
                model = self._build()
                if model.input_size != self.input_size:
                    raise ConfigError(f"the teacher's network works at {model.input_size} px, not the "
                                      f"{self.input_size} px its graphs were named for")
                self._model = prepare_for_cpu_inference(model)
            return self._model


class SamTeacher(Teacher):
    """A frozen SAM-family model prompted with boxes (``model``: the network, or a :class:`LazyNetwork` that builds
    it when PyTorch first needs it)."""

    def __init__(self, model: SamPromptModel | LazyNetwork, name: str, settings: SamSettings,
                 options: TeacherOptions | None = None, weights: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self._network = model if isinstance(model, LazyNetwork) else LazyNetwork.built(model)
        self.name = name
        self.settings = settings
        self.weights = weights or {}
        self._grabcut = self._grabcut_for(settings)
        self.device = torch.device("cpu")
        # settings.ENCODER_BACKENDS; OpenVINO needs the checkpoint's hash to name its cached graph
        self.encoder_backend = "openvino" if weights and weights.get("checkpoint_sha256") else "torch"
        self._openvino_encoder: Any = None
        self._encoder_lock = threading.Lock()
        # compiled box decoders by (backend, embedding shape), shared with the copies with_settings makes
        self._openvino_decoders: dict[tuple[str, tuple[int, ...]], Any] = {}
        self._decoder_lock = threading.Lock()
        self._embeddings: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._embeddings_capacity = 0
        self._embeddings_lock = threading.Lock()

    @property
    def model(self) -> SamPromptModel:
        """The PyTorch network (built now if it was not yet: see :class:`LazyNetwork`)."""
        return self._network.get()

    @property
    def input_size(self) -> int:
        """The side of the square canvas the network takes."""
        return self._network.input_size

    def cache_embeddings(self, capacity: int) -> SamTeacher:
        """Keep the image embeddings of the last ``capacity`` images (0 = none, the default), so that
        prompting the same image again with other boxes runs only the decoder (interactive annotation)."""
        with self._embeddings_lock:
            self._embeddings_capacity = max(0, capacity)
            while len(self._embeddings) > self._embeddings_capacity:
                self._embeddings.popitem(last=False)
        return self

    def with_settings(self, settings: SamSettings) -> SamTeacher:
        """A teacher fed and read out by ``settings`` that shares this one's network, encoder backend and embedding
        cache (comparing settings, or an annotator's per-image choice, without encoding an image twice). Settings
        that change the canvas (resize, normalize, antialias, crop_context) must match: cached embeddings would
        otherwise belong to another canvas."""
        canvas_fields = ("resize", "normalize", "antialias", "crop_context")
        changed = [f for f in canvas_fields if getattr(settings, f) != getattr(self.settings, f)]
        if changed:
            raise ConfigError(f"with_settings keeps the canvas: {', '.join(changed)} differ; make another teacher")
        other = copy.copy(self)
        other.settings = settings
        other._grabcut = self._grabcut_for(settings)
        return other

    def _grabcut_for(self, settings: SamSettings) -> GrabCutTeacher:
        """The GrabCut teacher whose masks ``settings`` blend in."""
        return GrabCutTeacher(self.options, settings.grabcut_iterations, settings.grabcut_context)

    def to(self, device: torch.device | str) -> SamTeacher:
        """Run the network on ``device`` (images are prepared on the CPU and sent there)."""
        self.device = torch.device(device)
        if self.device.type != "cpu" or self._network.is_built:  # a network built later is built on the CPU
            self.model.to(self.device)
        with self._embeddings_lock:
            self._embeddings.clear()
        return self

    # -- tensor tier ------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_logits(self, canvas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Low-resolution logits (N x 1 x m x m) for N canvas boxes on one 1 x 3 x S x S canvas."""
        return self.decode_logits(self.encode(canvas), boxes)

    @torch.inference_mode()
    def encode(self, canvas: torch.Tensor) -> torch.Tensor:
        """The image embedding of one 1 x 3 x S x S canvas (the expensive half)."""
        encoder = self._cpu_encoder() if self.device.type == "cpu" else None
        if encoder is not None:
            with self._encoder_lock:  # one OpenVINO request, one caller at a time
                return encoder(canvas)
        return self.model.encode(canvas.to(self.device).contiguous(memory_format=torch.channels_last))

    def use_encoder_backend(self, backend: str) -> SamTeacher:
        """Run the image encoder with ``backend`` (settings.ENCODER_BACKENDS) from the next image on."""
        if backend not in ENCODER_BACKENDS:
            raise ConfigError(f"unknown encoder backend {backend!r}; known: {', '.join(ENCODER_BACKENDS)}")
        if backend != "torch" and not self.weights.get("checkpoint_sha256"):
            raise ConfigError(f"the {backend} encoder needs a teacher loaded from a checkpoint file")
        with self._encoder_lock:
            self.encoder_backend, self._openvino_encoder = backend, None
        return self

    def _cpu_encoder(self):
        """The OpenVINO encoder, compiled on first use (None: ``encoder_backend`` is torch, or no OpenVINO)."""
        if self.encoder_backend == "torch":
            return None
        with self._encoder_lock:
            if self._openvino_encoder is None:
                try:
                    from .cpu_inference import OpenVinoEncoder

                    self._openvino_encoder = OpenVinoEncoder(lambda: self.model.image_encoder, self.input_size,
                                                             self.weights["checkpoint_sha256"],
                                                             torch.get_num_threads(),
                                                             OPENVINO_PRECISIONS[self.encoder_backend])
                except ImportError:
                    self.encoder_backend = "torch"
                    return None
                except Exception as exc:  # noqa: BLE001 - an encoder the exporter cannot take still runs in torch
                    log.warning("the %s encoder could not be made for %s (%s); it runs in PyTorch",
                                self.encoder_backend, self.name, exc)
                    self.encoder_backend = "torch"
                    return None
            return self._openvino_encoder

    def _cpu_decoder(self, embedding_shape: tuple[int, ...]):
        """The OpenVINO box decoder (compiled on first use), where the encoder runs in OpenVINO too and the settings
        decode one mask per box with no refinement (the default); None: PyTorch decodes."""
        if (self.encoder_backend == "torch" or self.device.type != "cpu" or self.settings.multimask
                or self.settings.refine_steps):
            return None
        key = (self.encoder_backend, embedding_shape)
        with self._decoder_lock:
            if key not in self._openvino_decoders:
                try:
                    from .cpu_inference import OpenVinoDecoder

                    self._openvino_decoders[key] = OpenVinoDecoder(lambda: self.model, embedding_shape,
                                                                   self.weights["checkpoint_sha256"],
                                                                   torch.get_num_threads(),
                                                                   OPENVINO_PRECISIONS[self.encoder_backend])
                except Exception as exc:  # noqa: BLE001 - a decoder the exporter cannot take still runs in torch
                    log.warning("the %s box decoder could not be made for %s (%s); it runs in PyTorch",
                                self.encoder_backend, self.name, exc)
                    self._openvino_decoders[key] = None
            return self._openvino_decoders[key]

    @torch.inference_mode()
    def decode_logits(self, embedding: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Low-resolution logits (N x 1 x m x m) for N canvas boxes on an image embedding (the cheap half)."""
        decoder = self._cpu_decoder(tuple(embedding.shape))
        if decoder is not None:
            with self._decoder_lock:  # one OpenVINO request, one caller at a time
                return decoder(embedding, boxes)
        boxes = boxes.to(self.device)
        logits, iou = self.model.decode(embedding, boxes, multimask=self.settings.multimask)
        if self.settings.multimask:
            best = iou.argmax(dim=1)
            logits = logits[torch.arange(len(best)), best][:, None]
        for _ in range(self.settings.refine_steps):
            logits, _ = self.model.decode(embedding, boxes, mask_input=logits, multimask=False)
        return logits.cpu()

    # -- numpy tier -------------------------------------------------------------------------
    def segment_boxes(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        sam = self._segment_sam(image, boxes)
        weight = self.settings.grabcut_weight
        if weight == 0.0:
            return sam
        grabcut = self._grabcut.segment_boxes(image, boxes)
        blend = (1.0 - weight) * sam + weight * grabcut
        if self.settings.grabcut_fallback:  # GrabCut found nothing: that is a failure, not a "background" vote
            failed = ~grabcut.reshape(len(grabcut), -1).any(axis=1)
            blend[failed] = sam[failed]
        return blend

    def _segment_sam(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        if self.settings.crop_context is None:
            return self._segment_region(image, boxes)
        height, width = image.shape[:2]
        out = np.zeros((len(boxes), height, width), np.float32)
        for i, box in enumerate(boxes):
            grow = self.settings.crop_context * max(box.width, box.height)
            crop = Box(box.x1 - grow, box.y1 - grow, box.x2 + grow, box.y2 + grow).clip(width, height)
            x1, y1, x2, y2 = int(crop.x1), int(crop.y1), int(np.ceil(crop.x2)), int(np.ceil(crop.y2))
            local = Box(box.x1 - x1, box.y1 - y1, box.x2 - x1, box.y2 - y1)
            out[i, y1:y2, x1:x2] = self._segment_region(image[y1:y2, x1:x2], [local])[0]
        return out

    def _segment_region(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        transform = CanvasTransform(image.shape[0], image.shape[1], self.input_size, self.settings.resize)
        logits = self.decode_logits(self._embedding(image, transform), transform.boxes(boxes))
        with torch.inference_mode():
            return torch.sigmoid(transform.logits_to_image(logits)).numpy()

    def warm(self, image: np.ndarray) -> None:
        """Compute and cache the image's embedding now (with a cache; whole-image encoding only), so that the first
        box drawn on it later only runs the decoder."""
        if self._embeddings_capacity and self.settings.crop_context is None:
            self._embedding(image, CanvasTransform(image.shape[0], image.shape[1], self.input_size,
                                                   self.settings.resize))

    def _embedding(self, image: np.ndarray, transform: CanvasTransform) -> torch.Tensor:
        """The image's embedding, from the cache when it holds this image (same pixels, same shape)."""
        if self._embeddings_capacity == 0:
            return self.encode(transform.image(image, self.settings.normalize, self.settings.antialias))
        digest = hashlib.blake2b(str(image.shape).encode(), digest_size=16)
        digest.update(np.ascontiguousarray(image).data)
        key = digest.digest()
        with self._embeddings_lock:
            if key in self._embeddings:
                self._embeddings.move_to_end(key)
                return self._embeddings[key]
        embedding = self.encode(transform.image(image, self.settings.normalize, self.settings.antialias))
        with self._embeddings_lock:
            self._embeddings[key] = embedding
            while len(self._embeddings) > self._embeddings_capacity:
                self._embeddings.popitem(last=False)
        return embedding

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "settings": self.settings.to_dict(), **self.weights,
                "encoder_backend": self.encoder_backend}
