"""The student: encoder -> fusion decoder -> tampering logits at the input size. No loss, no I/O.

Built from a :class:`StudentConfig` (saved next to every checkpoint, so a model can be rebuilt
from its folder). ``forward(image) -> logits`` (B x 1 x H x W); with ``image_head`` the model
also scores whole images (``forward_with_score``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .compression import CompressionBranch
from .config import Fusion, Residual, Resolution, StudentConfig
from .decoders import MGFM, FPNFusion
from .encoders import FeatureInfo, create_encoder
from .residual import ResidualBranch
from .similarity import SelfSimilarity

__all__ = ["Fusion", "Residual", "Resolution", "Student", "StudentConfig", "build_student"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROB_EPS = 1e-6


class Student(nn.Module):
    """Image -> tampering logits; normalisation with ImageNet statistics happens inside."""

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = create_encoder(config.encoder, config.drop_path)
        self.residual = ResidualBranch(config.residual) if config.residual is not Residual.NONE else None
        self.compression = CompressionBranch() if config.compression_traces else None
        info = self.encoder.feature_info
        for branch in self.trace_branches:  # their maps are concatenated with the taps of the same stride
            extra = dict(zip(branch.strides, branch.channels, strict=True))
            info = [FeatureInfo(f.channels + extra.get(f.stride, 0), f.stride) for f in info]
        # copy-move evidence, computed from the encoder's stride-16 tap and concatenated with it
        self.similarity_tap = next((i for i, f in enumerate(self.encoder.feature_info) if f.stride == 16), None)
        self.similarity = None
        if config.self_similarity:
            if self.similarity_tap is None:
                raise ConfigError(f"student.self_similarity needs a stride-16 tap; {config.encoder} has none")
            tap = self.encoder.feature_info[self.similarity_tap]
            self.similarity = SelfSimilarity(tap.channels)
            info = [FeatureInfo(f.channels + (self.similarity.out_channels if i == self.similarity_tap else 0),
                                f.stride) for i, f in enumerate(info)]
        if config.fusion is Fusion.MGFM:
            self.decoder: nn.Module = MGFM(info, config.width, config.memory_slots, config.use_gates,
                                           config.use_memory)
        else:
            self.decoder = FPNFusion(info, config.width)
        self.score_head = nn.Linear(info[-1].channels + 1, 1) if config.image_head else None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _probabilities(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = self.encoder((image - self.mean) / self.std)
        if self.similarity is not None:
            i = self.similarity_tap
            features = [*features[:i], torch.cat([features[i], self.similarity(features[i])], dim=1), *features[i + 1:]]
        strides = [f.stride for f in self.encoder.feature_info]
        for branch in self.trace_branches:
            extra = dict(zip(branch.strides, branch(image), strict=True))
            features = [torch.cat([f, extra[s]], dim=1) if s in extra else f
                        for f, s in zip(features, strides, strict=True)]
        return self.decoder(features), features

    @property
    def trace_branches(self) -> list[nn.Module]:
        """The branches that read traces off the pixels (noise residual, compression history), in concatenation
        order; each has ``strides``, ``channels`` and returns one map per stride."""
        return [b for b in (self.residual, self.compression) if b is not None]

    def forward(self, image: torch.Tensor,
                with_score: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (B x 1 x H x W) for images (B x 3 x H x W, RGB in [0, 1]); with ``with_score``, also the
        image-level logits (``forward_with_score``; through ``forward`` so that wrappers such as DDP see it)."""
        if with_score:
            return self.forward_with_score(image)
        prob, _ = self._probabilities(image)
        return self._to_logits(prob, image.shape[-2:])

    def forward_with_score(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel logits and image-level logits (B,), the latter from the score head."""
        if self.score_head is None:
            raise ConfigError("this student has no image-level score head (image_head=False)")
        prob, pooled = self.score_inputs(image)
        return self._to_logits(prob, image.shape[-2:]), self.score_head(pooled)[:, 0]

    def score_inputs(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stride-4 probability map and what the score head reads (B x (C + 1)): the deepest features,
        mean-pooled, and the map's maximum. Also used to fit the head with the localizer frozen."""
        prob, features = self._probabilities(image)
        return prob, torch.cat([features[-1].mean(dim=(2, 3)), prob.amax(dim=(2, 3))], dim=1)

    def _to_logits(self, prob: torch.Tensor, size: torch.Size) -> torch.Tensor:
        # in float32 even under autocast: bf16 / fp16 round 1 - 1e-6 to 1, whose logit is infinite
        logits = torch.logit(prob.float().clamp(PROB_EPS, 1 - PROB_EPS))
        if self.config.pixel_threshold != 0.5:  # the calibrated threshold comes out as probability 0.5
            logits = logits - math.log(self.config.pixel_threshold / (1 - self.config.pixel_threshold))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def build_student(config: StudentConfig) -> Student:
    """The architecture with random weights (initial encoder weights: see ``pretrained``)."""
    return Student(config)
