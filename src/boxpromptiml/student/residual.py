"""A noise-residual view of the image: the traces a manipulation leaves, with the content removed.

Pasted, copied or inpainted regions differ from their surroundings in sensor noise, JPEG
history and resampling, which high-pass residuals expose while RGB features mostly see
objects. Two front ends, both applied to the [0, 255] image:
- ``srm``: three fixed steganalysis-rich-model kernels (first-order edge, the 3x3 and 5x5
  "square" kernels), per colour channel, truncated to +/-3 as in steganalysis;
- ``bayar``: a constrained convolution (after Bayar & Stamm 2018) whose kernels keep -1 at the
  centre and weights summing to 1 elsewhere, so it can only learn prediction-error filters. The
  off-centre weights are a softmax of free parameters: the original divides by their sum, which
  explodes when that sum nears zero.
A light strided CNN then brings the residual to strides 4, 8 and 16, where the student
concatenates it with the encoder's taps before fusion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import Residual


def srm_kernels() -> torch.Tensor:
    """The three classic SRM kernels, 5 x 5 each (3 x 1 x 5 x 5), each scaled to unit gain."""
    edge = torch.zeros(5, 5)
    edge[2, 1:4] = torch.tensor([1.0, -2.0, 1.0])
    edge /= 2.0
    square3 = torch.zeros(5, 5)
    square3[1:4, 1:4] = torch.tensor([[-1.0, 2.0, -1.0], [2.0, -4.0, 2.0], [-1.0, 2.0, -1.0]])
    square3 /= 4.0
    square5 = torch.tensor([[-1.0, 2.0, -2.0, 2.0, -1.0],
                            [2.0, -6.0, 8.0, -6.0, 2.0],
                            [-2.0, 8.0, -12.0, 8.0, -2.0],
                            [2.0, -6.0, 8.0, -6.0, 2.0],
                            [-1.0, 2.0, -2.0, 2.0, -1.0]]) / 12.0
    return torch.stack([edge, square3, square5])[:, None]


class SRMFilter(nn.Module):
    """Fixed SRM residuals of each RGB channel (9 maps), truncated to [-3, 3] and scaled to [-1, 1]."""

    out_channels = 9

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight", srm_kernels().repeat(3, 1, 1, 1), persistent=False)

    def forward(self, image255: torch.Tensor) -> torch.Tensor:
        residual = F.conv2d(image255, self.weight, padding=2, groups=3)
        return residual.clamp(-3.0, 3.0) / 3.0


class BayarConv(nn.Module):
    """Constrained 5 x 5 convolution: centre weight -1, the other weights of a kernel sum to 1."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, size: int = 5) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, size, size) * 0.01)
        centre = torch.zeros(1, 1, size, size)
        centre[..., size // 2, size // 2] = 1.0
        self.register_buffer("centre", centre, persistent=False)

    def constrained_weight(self) -> torch.Tensor:
        out_channels, in_channels, size, _ = self.weight.shape
        logits = self.weight.masked_fill(self.centre.bool(), float("-inf")).flatten(2)
        off_centre = torch.softmax(logits, dim=-1).view(out_channels, in_channels, size, size)
        return off_centre - self.centre

    def forward(self, image255: torch.Tensor) -> torch.Tensor:
        return F.conv2d(image255, self.constrained_weight(), padding=self.weight.shape[-1] // 2) / 16.0


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class ResidualBranch(nn.Module):
    """Residual front end + strided CNN; returns maps at strides 4, 8, 16 (``channels`` wide)."""

    channels = (32, 48, 64)
    strides = (4, 8, 16)

    def __init__(self, kind: Residual) -> None:
        super().__init__()
        self.front: nn.Module = SRMFilter() if kind is Residual.SRM else BayarConv()
        c4, c8, c16 = self.channels
        self.stem = nn.Sequential(_down(self.front.out_channels, 16), _down(16, c4))  # stride 4
        self.down8, self.down16 = _down(c4, c8), _down(c8, c16)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """``image``: B x 3 x H x W RGB in [0, 1]."""
        x4 = self.stem(self.front(image * 255.0))
        x8 = self.down8(x4)
        return [x4, x8, self.down16(x8)]
