"""A student's architecture as plain data (saved as ``student.json`` next to every checkpoint).

Kept apart from the model code so that configs can be read, validated and written (and the CLI
can describe them) without importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from ..errors import ConfigError


class Residual(StrEnum):
    """The noise-residual branch (see student/residual.py)."""

    NONE = "none"
    SRM = "srm"
    BAYAR = "bayar"


class Fusion(StrEnum):
    MGFM = "mgfm"
    FPN = "fpn"


class Resolution(StrEnum):
    """How an image is fitted to the network (see student/inference.py)."""

    RESIZE = "resize"  # squeezed to input_size x input_size
    NATIVE = "native"  # its own pixels (training: input_size crops; inference: whole image or tiles)


# Beyond these, one training crop or one tile no longer fits a laptop's memory (a 100,000 px crop asks for 30 GB).
MAX_INPUT_SIZE = 2048
MAX_TILE_SIDE = 4096


@dataclass(frozen=True)
class StudentConfig:
    """Everything needed to rebuild a student's architecture."""

    # efficientnet_lite0 by default: in the v2 protocol (benchmarks/protocol) it beats the paper's tinyvit5m on
    # validation (0.378 vs 0.262) and on the test sets with calibrated thresholds (mean F1 0.396 vs 0.358; at 0.5
    # tinyvit5m is ahead on COVERAGE), and costs 2.7x fewer GMACs (docs/results.md).
    encoder: str = "efficientnet_lite0"
    # Initial weights before training: "pretrained" = the encoder's own offline weights (LiteMedSAM's
    # encoder for tinyvit5m, ImageNet for efficientnet_lite0), or litemedsam | imagenet | random.
    encoder_init: str = "pretrained"
    fusion: Fusion = Fusion.MGFM
    width: int = 64  # common width of the fused features (decoder cost grows with its square)
    memory_slots: int = 16  # K prototype vectors in the MGFM memory bank
    use_gates: bool = True
    use_memory: bool = True
    image_head: bool = False
    input_size: int = 256  # resize: images are resized to this square; native: training crop side
    resolution: Resolution = Resolution.RESIZE
    # native: images with a longer side are predicted in overlapping tiles of at most this size. 0 = the default:
    # 2048 (fewer tiles, so less overlap and more context per pass; benchmarks/tiling.py and predict_speed.py), or
    # 1024 with the self-similarity branch, whose cost grows with the square of a tile's positions (3 GB at 2048)
    max_side: int = 0
    residual: Residual = Residual.NONE  # noise-residual branch fused with the encoder's taps (srm | bayar)
    # Copy-move branch: each stride-16 position's best matches elsewhere in the same image (student/similarity.py)
    self_similarity: bool = False
    # JPEG compression-history branch: per 8x8 block, how re-quantising it at several qualities differs from the
    # rest of the photo (student/compression.py); needs native resolution
    compression_traces: bool = False
    drop_path: float | None = None  # stochastic depth of the encoder while training (None: the encoder's default)
    # The decoder's probability at which a pixel is called tampered. The model shifts its logits so that this
    # probability comes out as 0.5, the threshold every tool applies. 0.5 = as trained; `bpiml calibrate` sets it
    # on validation images (deployment/calibrate.py).
    pixel_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.max_side == 0:
            object.__setattr__(self, "max_side", 1024 if self.self_similarity else 2048)
        for name, kind in (("fusion", Fusion), ("resolution", Resolution), ("residual", Residual)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError as exc:
                raise ConfigError(f"student.{name} must be one of {', '.join(kind)}, got {getattr(self, name)!r}") \
                    from exc
        from .encoders import ENCODERS  # here, not at the top: building a config must not need torch

        if self.encoder not in ENCODERS.names():
            ENCODERS.get(self.encoder)  # raises with the known names
        if self.compression_traces and self.resolution is not Resolution.NATIVE:
            raise ConfigError("student.compression_traces needs student.resolution=native: resampling an image "
                              "erases the JPEG block grid the branch reads")
        if not 0.01 <= self.pixel_threshold <= 0.99:
            raise ConfigError(f"student.pixel_threshold must be from 0.01 to 0.99, got {self.pixel_threshold}")
        for name, largest in (("input_size", MAX_INPUT_SIZE), ("max_side", MAX_TILE_SIDE)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value % 32 or not 0 < value <= largest:
                raise ConfigError(f"student.{name} must be a multiple of 32 from 32 to {largest}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, StrEnum) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown student settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)
