"""Decoders that fuse the encoder's four taps into one tampering probability map.

``MGFM`` (Memory-Guided Gated Fusion Module, after Guo et al. 2026):
1. each tap is projected to a common width C and brought to the stride-4 grid;
2. per-scale gates G_i = sigmoid(Conv(F_i)) weigh the taps, which are summed into F_fused;
3. a learnable memory bank of K prototype vectors is read by attention of every position of
   F_fused over the K slots, giving the recalled features and the map A_mem;
4. A = a * (A_base * G_avg) + (1 - a) * A_mem, with A_base read from F_fused, G_avg the mean
   gate and a = sigmoid(alpha) learnable in (0, 1).
Switches turn the gates (G_i = 1) and the memory (A = A_base * G_avg) off for the ablation.
``FPNFusion`` is the plain top-down feature pyramid baseline.
Both return probability maps at stride 4 (B x 1 x H/4 x W/4) in (0, 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import FeatureInfo


def conv_bn_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class MGFM(nn.Module):
    """Memory-Guided Gated Fusion Module (see module docstring)."""

    def __init__(self, feature_info: list[FeatureInfo], width: int = 64, memory_slots: int = 16,
                 use_gates: bool = True, use_memory: bool = True, alpha_init: float = 0.5) -> None:
        super().__init__()
        self.use_gates, self.use_memory = use_gates, use_memory
        self.project = nn.ModuleList(conv_bn_relu(f.channels, width, 1) for f in feature_info)
        self.gates = nn.ModuleList(nn.Conv2d(width, 1, 3, padding=1) for _ in feature_info) if use_gates else None
        self.refine = conv_bn_relu(width, width)
        self.base_head = nn.Conv2d(width, 1, 1)
        if use_memory:
            self.memory = nn.Parameter(torch.randn(memory_slots, width) / math.sqrt(width))
            self.query = nn.Conv2d(width, width, 1)
            self.key = nn.Linear(width, width)
            self.value = nn.Linear(width, width)
            self.memory_head = nn.Sequential(conv_bn_relu(2 * width, width, 1), nn.Conv2d(width, 1, 1))
            self.alpha = nn.Parameter(torch.tensor(math.log(alpha_init / (1 - alpha_init))))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[-2:]
        projected = [F.interpolate(p(f), size=size, mode="bilinear", align_corners=False) if i else p(f)
                     for i, (p, f) in enumerate(zip(self.project, features, strict=True))]
        if self.gates is not None:
            gates = [torch.sigmoid(g(f)) for g, f in zip(self.gates, projected, strict=True)]
            fused = sum(g * f for g, f in zip(gates, projected, strict=True))
            gate_avg = torch.stack(gates).mean(0)
        else:
            fused, gate_avg = sum(projected), None
        fused = self.refine(fused)
        a_base = torch.sigmoid(self.base_head(fused))
        gated = a_base * gate_avg if gate_avg is not None else a_base
        if not self.use_memory:
            return gated
        recalled = self.recall(fused)
        a_mem = torch.sigmoid(self.memory_head(torch.cat([fused, recalled], dim=1)))
        a = torch.sigmoid(self.alpha)
        return a * gated + (1 - a) * a_mem

    def recall(self, fused: torch.Tensor) -> torch.Tensor:
        """Memory read-out: each position attends over the K prototypes (B x C x h x w)."""
        b, c, h, w = fused.shape
        q = self.query(fused).flatten(2).transpose(1, 2)  # B x hw x C
        k, v = self.key(self.memory), self.value(self.memory)  # K x C
        attention = torch.softmax(q @ k.t() / math.sqrt(c), dim=-1)  # B x hw x K
        return (attention @ v).transpose(1, 2).reshape(b, c, h, w)


class FPNFusion(nn.Module):
    """Plain feature pyramid: lateral 1x1, top-down sum, 3x3 smoothing, head on the finest level."""

    def __init__(self, feature_info: list[FeatureInfo], width: int = 64) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(conv_bn_relu(f.channels, width, 1) for f in feature_info)
        self.smooth = conv_bn_relu(width, width)
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](features[-1])
        for lateral, f in zip(reversed(self.lateral[:-1]), reversed(features[:-1]), strict=True):
            x = lateral(f) + F.interpolate(x, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(self.head(self.smooth(x)))
