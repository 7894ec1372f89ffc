"""Making a frozen teacher cheaper on the CPU without changing what it computes.

- Convolution + BatchNorm pairs are folded into one convolution (exact up to float rounding).
- Weights and inputs use the channels-last layout, which oneDNN convolutions run faster.
Measured effect on LiteMedSAM's encoder: see docs/results.md (teacher speed).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norms(module: nn.Module) -> int:
    """Replace every ``Sequential(Conv2d, BatchNorm2d)`` (in eval mode) by one conv; returns how many."""
    folded = 0
    for name, child in list(module.named_children()):
        parts = list(child.children()) if isinstance(child, nn.Sequential) else []
        if len(parts) == 2 and isinstance(parts[0], nn.Conv2d) and isinstance(parts[1], nn.BatchNorm2d):
            setattr(module, name, fuse_conv_bn_eval(parts[0].eval(), parts[1].eval()))
            folded += 1
        else:
            folded += fold_batch_norms(child)
    return folded


def prepare_for_cpu_inference(model: nn.Module) -> nn.Module:
    """Eval mode, no gradients, folded batch norms, channels-last weights (in place)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    fold_batch_norms(model)
    return model.to(memory_format=torch.channels_last)
