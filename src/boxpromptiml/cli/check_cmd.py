"""`bpiml check`: a dataset (and its boxes) checked before a long run."""

from __future__ import annotations

import argparse

from ..data.check import check_files
from .common import add_dataset_option


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check", help="check a dataset (and boxes) for what would make train or evaluate wrong",
        description="Reads every image and mask once and lists every problem in one pass: missing or unreadable "
                    "files, duplicate names, masks of the wrong size, empty or mostly-white (inverted) masks, "
                    "non-binary masks, masks without an image, images too thin for the student; with --boxes, "
                    "boxes on unknown images, boxes that had to be clipped or dropped and tampered images without "
                    "a box. Exit code 1 when an error would make train or evaluate wrong.",
    )
    add_dataset_option(p)
    p.add_argument("--boxes", metavar="COCO_JSON", help="box annotations to check against the dataset")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = check_files(args.dataset, args.boxes)
    print(report.format())
    return 0 if report.ok else 1
