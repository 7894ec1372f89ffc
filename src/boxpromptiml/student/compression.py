"""A view of the image's JPEG compression history: where one region was compressed differently.

Almost every photo a newsroom checks is a JPEG, and a region pasted into it (or copied within it
at an offset that is not a multiple of 8 pixels) carries another compression history than the
rest: its 8x8 DCT coefficients lie off the lattice of the photo's earlier quantisation. This is
the "JPEG ghost" (Farid 2009) computed inside the network, so it exports to ONNX with the rest:
- the luma of each 8x8 block of the image's own grid goes through the orthonormal 2-D DCT (a
  fixed stride-8 convolution, the transform JPEG applies);
- each block is re-quantised with the standard luminance table at several qualities, and the
  mean squared re-quantisation error is taken (equal to the pixel-domain error, by Parseval);
- log errors are centred on the image's own mean per quality, so the branch sees how a block's
  history differs from the photo's, not which table the photo was saved with. A dataset whose
  classes were saved with different tables (CASIA v1) gives no image-wide shortcut this way.
A light CNN then brings these maps to strides 8 and 16, where the student concatenates them with
the encoder's taps. The block grid must be the photo's: native resolution, crops and tiles
starting at multiples of 8, and no colour jitter in training (training/config.py checks this).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# The IJG / JPEG Annex K luminance table, rows = vertical frequency.
LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
QUALITIES = (50, 60, 70, 75, 80, 85, 90, 95)
BLOCK = 8


def dct_basis() -> torch.Tensor:
    """The 64 orthonormal 8x8 DCT-II basis images as convolution weights (64 x 1 x 8 x 8), channel u * 8 + v."""
    position = torch.arange(BLOCK, dtype=torch.float64)
    frequency = torch.arange(BLOCK, dtype=torch.float64)
    scale = torch.full((BLOCK,), math.sqrt(2.0 / BLOCK), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / BLOCK)
    cosines = scale[:, None] * torch.cos((2 * position[None, :] + 1) * frequency[:, None] * math.pi / (2 * BLOCK))
    basis = cosines[:, None, :, None] * cosines[None, :, None, :]  # u, v, y, x
    return basis.reshape(BLOCK * BLOCK, 1, BLOCK, BLOCK).float()


def quantisation_table(quality: int) -> torch.Tensor:
    """The luminance table libjpeg uses at ``quality`` (1-100), as 64 steps in the order of :func:`dct_basis`."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be from 1 to 100, got {quality}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    steps = [min(255, max(1, (entry * scale + 50) // 100)) for row in LUMA_TABLE for entry in row]
    return torch.tensor(steps, dtype=torch.float32)


class JPEGGhost(nn.Module):
    """Per 8x8 block: log mean-squared error of re-quantising its DCT at each quality (B x Q x H/8 x W/8),
    centred per image and quality."""

    def __init__(self, qualities: tuple[int, ...] = QUALITIES) -> None:
        super().__init__()
        self.out_channels = len(qualities)
        self.register_buffer("basis", dct_basis(), persistent=False)
        steps = torch.stack([quantisation_table(q) for q in qualities])  # Q x 64
        self.register_buffer("steps", steps[:, None, :, None, None], persistent=False)  # Q x 1 x 64 x 1 x 1
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)

    def errors(self, image: torch.Tensor) -> torch.Tensor:
        """Mean squared re-quantisation error per block and quality (B x Q x H/8 x W/8), before the log.
        Always in float32: bf16 keeps 8 bits of a coefficient, coarser than the lattice it is compared with."""
        with torch.autocast(device_type=image.device.type, enabled=False):
            luma = (image.float() * 255.0 * self.luma).sum(dim=1, keepdim=True) - 128.0
            coefficients = nn.functional.conv2d(luma, self.basis, stride=BLOCK)  # B x 64 x h x w
            # One quality at a time, as a mean over channels: the same float32 sums as a mean over the middle axis of
            # B x Q x 64 x h x w, which OpenVINO ran 5x slower (36 against 7 ms at 1024 x 768; torch 33 against 9)
            per_quality = []
            for steps in self.steps:  # 1 x 64 x 1 x 1
                residual = coefficients - torch.round(coefficients / steps) * steps
                per_quality.append(residual.square().mean(dim=1, keepdim=True))
            return torch.cat(per_quality, dim=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image``: B x 3 x H x W RGB in [0, 1], H and W multiples of 8."""
        logs = torch.log1p(self.errors(image))
        return (logs - logs.mean(dim=(2, 3), keepdim=True)).to(image.dtype)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class CompressionBranch(nn.Module):
    """JPEG-ghost maps + a light CNN; returns maps at strides 8 and 16 (``channels`` wide)."""

    channels = (32, 48)
    strides = (8, 16)

    def __init__(self) -> None:
        super().__init__()
        self.ghost = JPEGGhost()
        c8, c16 = self.channels
        self.at8 = nn.Sequential(_conv(self.ghost.out_channels, c8), _conv(c8, c8))
        self.at16 = _conv(c8, c16, stride=2)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x8 = self.at8(self.ghost(image))
        return [x8, self.at16(x8)]
