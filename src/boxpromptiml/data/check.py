"""`bpiml check`: find what would make training or evaluation wrong before a long run does.

Reads every image and mask once and reports, all in one pass: missing and unreadable files,
duplicate image names, masks whose size differs from their image, tampered images whose mask is
empty, masks that are mostly white (usually inverted: the tampered region is meant to be the white
part), masks that are not binary, masks with no image, images too thin for the student, and, with
boxes, boxes on unknown COCO images, boxes that had to be clipped or dropped and tampered images
without any box. Problems are errors (they make results wrong) or warnings (worth a look).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BPIMLError, DataError
from ..runner import run_per_sample
from .coco import CocoBoxes, attach_boxes, read_coco_boxes
from .images import _read_native, binarise_mask, read_image
from .problems import collecting_problems
from .readers import load_dataset
from .samples import Dataset, Sample

INVERTED_FRACTION = 0.5  # a tampered mask whiter than this is probably inverted
MAX_LISTED = 8
THIN_SIDE = 32  # a shorter side than one cell of the student's coarsest stride: its map there is guesswork
# problems the lenient readers record that make train / evaluate fail or wrong (the others are warnings)
READING_WARNINGS = ("mask without a tampered image", "two masks share a stem")


@dataclass
class CheckReport:
    """Counts and the problems found, each a list of 'file: why' lines, by kind."""

    n_tampered: int = 0
    n_authentic: int = 0
    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)

    def add(self, severity: str, kind: str, line: str) -> None:
        (self.errors if severity == "error" else self.warnings).setdefault(kind, []).append(line)

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        lines = [f"{self.n_tampered} tampered + {self.n_authentic} authentic images"]
        for title, problems in (("error", self.errors), ("warning", self.warnings)):
            for kind, items in problems.items():
                lines.append(f"{title}: {kind}: {len(items)}")
                lines += [f"  {item}" for item in items[:MAX_LISTED]]
                if len(items) > MAX_LISTED:
                    lines.append(f"  ... and {len(items) - MAX_LISTED} more")
        lines.append("no problem found" if not self.errors and not self.warnings else
                     "would make train / evaluate wrong: fix the errors above" if self.errors else
                     "no error; the warnings may still matter")
        return "\n".join(lines)


def _check_sample(sample: Sample, report: CheckReport) -> None:
    height, width = read_image(sample.image).shape[:2]  # decoded in full: a truncated file fails here
    if min(height, width) < THIN_SIDE:
        report.add("warning", f"image thinner than {THIN_SIDE} px (its map is unreliable)",
                   f"{sample.image}: {width}x{height}")
    if sample.mask is None:
        if sample.is_tampered:
            report.add("warning", "tampered image without a mask (fine for box training, not for evaluation)",
                       str(sample.image))
        return
    raw = _read_native(sample.mask, "mask")
    if raw.shape[:2] != (height, width):
        report.add("error", "mask size differs from its image (train/evaluate --resize-masks can resize)",
                   f"{sample.mask}: {raw.shape[1]}x{raw.shape[0]}, image {width}x{height}")
    values = np.unique(raw if raw.ndim == 2 else raw.max(axis=2))
    if len(values) > 2:
        report.add("warning", "mask is not binary (read as value > 127)", f"{sample.mask}: {len(values)} levels")
    mask = binarise_mask(raw)
    white = float(mask.mean()) if mask.size else 0.0
    if sample.is_tampered and not mask.any():
        report.add("error", "tampered image with an empty mask", str(sample.mask))
    elif white > INVERTED_FRACTION:
        report.add("error", "mask mostly white: probably inverted (tampered pixels must be white)",
                   f"{sample.mask}: {white:.0%} white")


def check_dataset(dataset: Dataset, coco: CocoBoxes | None = None, boxes_source: str = "boxes") -> CheckReport:
    """Everything :mod:`check` looks for, over the whole dataset."""
    report = CheckReport(len(dataset.tampered), len(dataset.authentic))
    run = run_per_sample(dataset, lambda s: _check_sample(s, report), desc="check", total=len(dataset))
    for name, why in run.failures.items():
        report.add("error", "unreadable file", f"{name}: {why}")
    if coco is not None:
        for note in coco.fixups:
            report.add("warning", f"box fixed up in {boxes_source}", note)
        try:
            boxed = attach_boxes(dataset, coco, source=boxes_source)
        except BPIMLError as exc:
            report.add("error", "boxes do not match the dataset", str(exc))
        else:
            for sample in boxed.tampered:
                if not sample.boxes:
                    report.add("warning", "tampered image without a box (pseudo-label skips it)", str(sample.image))
    return report


def check_files(specs: list[str], boxes: str | None = None) -> CheckReport:
    """:func:`check_dataset` from dataset files and a box file, reporting every dataset-level problem (missing
    files, clashing names, unreadable lists, boxes on unknown images) instead of stopping at the first."""
    with collecting_problems() as problems:
        parts = []
        for spec in specs:
            try:
                parts.append(load_dataset(spec))
            except DataError as exc:
                problems.append(("dataset cannot be read", str(exc)))
        coco = None
        if boxes:
            try:
                coco = read_coco_boxes(boxes)
            except DataError as exc:
                problems.append(("box file cannot be read", str(exc)))
    samples, seen = [], {}
    for part in parts:  # names must be unique across the lists too
        for sample in part:
            if sample.name in seen:
                problems.append(("image name occurs more than once (outputs are stored per file stem)",
                                 f"{sample.name}: {seen[sample.name]} and {sample.image}"))
            else:
                seen[sample.name] = sample.image
                samples.append(sample)
    if samples:
        root = Path(os.path.commonpath([str(part.root) for part in parts]))
        dataset = Dataset(samples, root, " + ".join(part.source for part in parts))
        report = check_dataset(dataset, coco, boxes or "boxes")
    else:
        report = CheckReport()
    for kind, line in problems:
        report.add("warning" if kind.startswith(READING_WARNINGS) else "error", kind, line)
    return report
