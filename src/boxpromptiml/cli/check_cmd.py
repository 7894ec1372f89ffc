"""`bpiml check`: a dataset (and its boxes) checked before a long run."""

from __future__ import annotations

import argparse

from ..data.check import check_dataset
from ..data.coco import read_coco_boxes
from ..data.readers import load_datasets
from ..errors import DataError
from .common import add_dataset_option


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check", help="check a dataset (and boxes) for what would make train or evaluate wrong",
        description="Reads every image and mask once: unreadable files, masks of the wrong size, empty or "
                    "mostly-white (inverted) masks, non-binary masks, duplicate names; with --boxes, boxes that "
                    "had to be clipped or dropped and tampered images without a box. Exit code 1 when an error "
                    "would make train or evaluate wrong.",
    )
    add_dataset_option(p)
    p.add_argument("--boxes", metavar="COCO_JSON", help="box annotations to check against the dataset")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        dataset = load_datasets(args.dataset)
    except DataError as exc:  # e.g. duplicate names or missing files: the dataset cannot be used as it is
        print(f"error: {exc}")
        return 1
    coco = read_coco_boxes(args.boxes) if args.boxes else None
    report = check_dataset(dataset, coco, args.boxes or "boxes")
    print(report.format())
    return 0 if report.ok else 1
