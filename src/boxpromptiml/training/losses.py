"""The distillation objective, owned by the training task (never by the model).

loss = bce * BCE(logits, soft target)                 (the paper's distillation loss)
     + dice * (1 - soft Dice) over tampered images    (keeps small regions from vanishing)
     + outside_box * mean(p outside every box)        (the box says where tampering can be)
     + false_alarm * mean over authentic images of the mean of their top 1% of p
                                                        (hard negatives: the few pixels a salient-object
                                                         detector would mark; plain BCE averages them away),
                                                        ramped in linearly over the first false_alarm_ramp
                                                        of the budget: from the start it pushed every peak
                                                        down before the student knew where to mark, and no
                                                        pixel passed 0.5 after 2,000 samples
     + image * BCE(image score, tampered or not)        (students with an image-level score head)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import LossConfig

FALSE_ALARM_TOP = 0.01  # the share of an authentic image's pixels the false-alarm term looks at


class DistillationLoss:
    """Weighted sum of the terms above; returns the total and each term for logging."""

    def __init__(self, config: LossConfig) -> None:
        self.config = config

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, region: torch.Tensor, label: torch.Tensor,
                 tampered_per_process: float | None = None, score_logits: torch.Tensor | None = None,
                 progress: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
        """``score_logits``: the image-level logits (B,) of a student with a score head, else None.
        ``tampered_per_process``: under data parallelism, the global batch's tampered images divided by the
        number of processes, so that the Dice mean (and its gradient, averaged over processes) is the global
        batch's; None: this batch's own count. ``progress``: the share of the training budget done (0 to 1)."""
        terms: dict[str, torch.Tensor] = {}
        if self.config.bce:
            terms["bce"] = F.binary_cross_entropy_with_logits(logits, target)
        prob = torch.sigmoid(logits)
        tampered = label > 0.5
        count = float(tampered.sum()) if tampered_per_process is None else tampered_per_process
        if self.config.dice and tampered.any() and count > 0:
            p, t = prob[tampered].flatten(1), target[tampered].flatten(1)
            dice = (2 * (p * t).sum(1) + 1.0) / (p.sum(1) + t.sum(1) + 1.0)
            terms["dice"] = (1 - dice).sum() / count
        if self.config.outside_box:
            outside = 1.0 - region
            terms["outside_box"] = (prob * outside).sum() / outside.sum().clamp(min=1.0)
        authentic = ~tampered.flatten()
        if self.config.false_alarm and authentic.any():
            flat = prob[authentic].flatten(1).float()
            top = max(1, int(flat.shape[1] * FALSE_ALARM_TOP))
            terms["false_alarm"] = flat.topk(top, dim=1).values.mean()
        if self.config.image and score_logits is not None:
            terms["image"] = F.binary_cross_entropy_with_logits(score_logits.float(), label.float().flatten())
        ramp = self.config.false_alarm_ramp
        weights = {"bce": self.config.bce, "dice": self.config.dice, "outside_box": self.config.outside_box,
                   "false_alarm": self.config.false_alarm * (min(1.0, progress / ramp) if ramp > 0 else 1.0),
                   "image": self.config.image}
        total = sum(weights[k] * v for k, v in terms.items())
        return total, {k: float(v.detach()) for k, v in terms.items()}
