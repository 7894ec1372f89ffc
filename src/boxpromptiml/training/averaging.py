"""An exponential moving average of the student's weights, updated after every step (``optim.ema_decay``)."""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..student.model import Student


def ema_decay_at(decay: float, updates: int) -> float:
    """The average's decay after ``updates`` updates: short at first (so the first epochs are not dominated
    by the initial weights), ``decay`` once (1 + n) / (10 + n) reaches it."""
    return min(decay, (1 + updates) / (10 + updates))


def weight_average(model: Student, decay: float) -> AveragedModel:
    """An exponential moving average of the weights and batch-norm statistics (torch's AveragedModel)."""

    @torch.no_grad()
    def update(average: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        get_ema_multi_avg_fn(ema_decay_at(decay, int(updates)))(average, current, updates)

    averaged = AveragedModel(model, multi_avg_fn=update, use_buffers=True)
    averaged.module.eval()
    return averaged
