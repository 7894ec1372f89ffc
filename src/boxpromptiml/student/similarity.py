"""Copy-move evidence: how well each place of an image matches another place of the same image.

A copied region has the colours, texture and noise of its source, so no trace inside it gives it
away; what does is that two regions of one photo match. As in the similarity branch of BusterNet
(Wu et al., ECCV 2018), the stride-16 features are projected, L2-normalised and correlated with
every other position of the same image. Positions closer than ``exclude_radius`` cells are left out
(neighbours always look alike), and each position keeps its ``top_k`` best scores in descending
order: one isolated high score followed by low ones is a copy, a flat high profile is sky or a wall.
A 1x1 conv turns the sorted profile into features that the student concatenates with the stride-16
tap before fusion. Cost: an N x N product with N = (H/16)(W/16), 4,096 positions for a 1024 px tile.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def near_positions(height: int, width: int, radius: int, device: torch.device) -> torch.Tensor:
    """Bool (N x N): pairs of grid positions within ``radius`` cells of each other (self included).
    Built by broadcasting (no repeat / expand), so that it exports to ONNX with a dynamic grid."""
    ys, xs = torch.arange(height, device=device), torch.arange(width, device=device)
    near_y = (ys[:, None, None, None] - ys[None, None, :, None]).abs() <= radius  # h x 1 x h x 1
    near_x = (xs[None, :, None, None] - xs[None, None, None, :]).abs() <= radius  # 1 x w x 1 x w
    return (near_y & near_x).reshape(height * width, height * width)


class SelfSimilarity(nn.Module):
    """Features (B x C x h x w) -> sorted best-match profile features (B x out_channels x h x w)."""

    def __init__(self, in_channels: int, dim: int = 64, top_k: int = 8, exclude_radius: int = 1,
                 out_channels: int = 32) -> None:
        super().__init__()
        self.top_k, self.exclude_radius, self.out_channels = top_k, exclude_radius, out_channels
        self.project = nn.Conv2d(in_channels, dim, 1)
        self.encode = nn.Sequential(nn.Conv2d(top_k, out_channels, 1), nn.BatchNorm2d(out_channels),
                                    nn.ReLU(inplace=True))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, _, h, w = features.shape
        # the correlation in float32: under bf16 autocast cosine scores near 1 lose the digits that separate
        # a copy (0.98) from a similar neighbour (0.95)
        with torch.autocast(features.device.type, enabled=False):
            embedded = F.normalize(self.project(features.float()).flatten(2), dim=1)  # B x d x N
            scores = embedded.transpose(1, 2) @ embedded  # B x N x N, cosine similarity
            scores = scores.masked_fill(near_positions(h, w, self.exclude_radius, features.device), -1.0)
            # top_k "no match" columns, so that a grid of fewer than top_k positions still has a full profile
            scores = F.pad(scores, (0, self.top_k), value=-1.0)
            best = scores.topk(self.top_k, dim=-1).values  # B x N x top_k, descending
        profile = best.transpose(1, 2).reshape(b, self.top_k, h, w)
        return self.encode(profile.to(features.dtype))
