"""Scores by group: per manipulation type (a regex on the image name) and per tampered-area bin.

Analysts ask "how good is it on copy-moves, on small regions, and how often does it mark something in an
authentic photo". These are pure reductions of the per-image records an :class:`Evaluator` keeps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..data.samples import Label
from ..errors import ConfigError
from . import metrics as M

if TYPE_CHECKING:  # evaluate.py imports this module
    from .evaluate import ImageRecord

# Tampered-area bins (share of the image's pixels): the small-region failure mode is below 2%.
AREA_BINS: tuple[float, ...] = (0.0, 0.02, 0.05, 0.15, 1.0)
MISS_F1 = 0.1  # a tampered image whose F1 is below this counts as missed

# CASIA-style file names: Sp_D_* spliced from another photo, Sp_S_* copied within the same photo.
CASIA_GROUPS = ("spliced=^Sp_D_", "copy-moved=^Sp_S_")


@dataclass(frozen=True)
class GroupSpec:
    """A named group: images whose name matches ``pattern`` (``re.search``)."""

    name: str
    pattern: str

    @classmethod
    def parse(cls, text: str) -> GroupSpec:
        """``NAME=REGEX``, as given on the command line."""
        name, sep, pattern = text.partition("=")
        if not sep or not name.strip() or not pattern:
            raise ConfigError(f"a group must look like NAME=REGEX (e.g. copy-moved=^Sp_S_), got {text!r}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"group {name!r}: bad regular expression {pattern!r} ({exc})") from exc
        return cls(name.strip(), pattern)

    def matches(self, image_name: str) -> bool:
        return re.search(self.pattern, image_name) is not None


@dataclass(frozen=True)
class GroupScores:
    """Numbers of one group of images (None where undefined)."""

    group: str
    n_tampered: int
    n_authentic: int
    pixel_f1: float | None  # mean over the group's tampered images
    pixel_iou: float | None
    missed_rate: float | None  # share of its tampered images with F1 < MISS_F1
    image_auc: float | None  # its tampered images against every authentic image evaluated
    authentic_marked_rate: float | None  # share of its authentic images with any pixel above the threshold

    def to_dict(self) -> dict:
        return asdict(self)


def area_bin_name(low: float, high: float) -> str:
    return f"area {100 * low:g}-{100 * high:g}%"


def _scores(name: str, members: Sequence[ImageRecord], authentic_scores: np.ndarray) -> GroupScores:
    tampered = [r for r in members if r.label is Label.TAMPERED and r.confusion is not None]
    authentic = [r for r in members if r.label is Label.AUTHENTIC]
    f1s = np.array([M.f1(r.confusion) for r in tampered])
    scores = np.concatenate([[r.score for r in tampered], authentic_scores])
    labels = np.concatenate([np.ones(len(tampered), bool), np.zeros(len(authentic_scores), bool)])
    marked = [r.marked_fraction for r in authentic if r.marked_fraction is not None]
    return GroupScores(
        group=name,
        n_tampered=len(tampered),
        n_authentic=len(authentic),
        pixel_f1=M.reduce([r.confusion for r in tampered], M.f1, M.Reduction.PER_IMAGE),
        pixel_iou=M.reduce([r.confusion for r in tampered], M.iou, M.Reduction.PER_IMAGE),
        missed_rate=float(np.mean(f1s < MISS_F1)) if len(f1s) else None,
        image_auc=M.binary_auc(scores, labels) if len(tampered) else None,
        authentic_marked_rate=float(np.mean(np.array(marked) > 0)) if marked else None,
    )


def tampered_area(record: ImageRecord) -> float | None:
    """Share of the image's pixels that the ground truth marks."""
    c = record.confusion
    if c is None:
        return None
    total = c.tp + c.fp + c.fn + c.tn
    return (c.tp + c.fn) / total if total else None


def _in_bin(area: float | None, low: float, high: float, last: bool) -> bool:
    return area is not None and (low <= area < high or (last and area == high))


def group_scores(records: Sequence[ImageRecord], specs: Sequence[GroupSpec] = (),
                 area_bins: Sequence[float] = AREA_BINS) -> list[GroupScores]:
    """One row per named group (by image name), then one per tampered-area bin; groups with no image are left
    out. Image AUC of a group compares its tampered images with every authentic image of ``records``."""
    authentic_scores = np.array([r.score for r in records if r.label is Label.AUTHENTIC], dtype=np.float64)
    rows = []
    for spec in specs:
        members = [r for r in records if spec.matches(r.name)]
        if members:
            rows.append(_scores(spec.name, members, authentic_scores))
    for low, high in zip(area_bins[:-1], area_bins[1:], strict=True):
        members = [r for r in records if _in_bin(tampered_area(r), low, high, last=high == area_bins[-1])]
        if members:
            rows.append(_scores(area_bin_name(low, high), members, authentic_scores))
    return rows


def format_groups(rows: Sequence[GroupScores]) -> str:
    """A plain-text table of group rows."""
    if not rows:
        return ""
    head = ["group", "tampered", "authentic", "pixel F1", "pixel IoU", "missed (F1<0.1)", "image AUC",
            "authentic marked"]

    def cell(v: float | int | None) -> str:
        return "n/a" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))

    body = [[r.group, *(cell(v) for v in (r.n_tampered, r.n_authentic, r.pixel_f1, r.pixel_iou, r.missed_rate,
                                          r.image_auc, r.authentic_marked_rate))] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)
