"""`bpiml boxes`: simulate annotators' coarse boxes from masks, written as COCO JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..boxes.from_masks import make_boxes
from ..boxes.simulate import BoxSimulationConfig
from ..outputs import check_not_an_input, claim_output_dir, claim_output_file
from .common import (
    add_dataset_option,
    add_overwrite_option,
    add_resize_masks_option,
    dataset_from_args,
    input_files,
    report_failures,
)

DEFAULTS = BoxSimulationConfig()


def _gap(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "boxes", help="simulate coarse boxes from ground-truth masks (COCO JSON)",
        description="One box per tampered region, as an annotator draws it in a few seconds: small "
                    "regions dropped, touching boxes merged, loosened by a margin, jittered, clipped. "
                    "Seeded per image.",
    )
    add_dataset_option(p)
    p.add_argument("--out", "-o", required=True, help="COCO JSON file to write")
    p.add_argument("--margin", type=float, default=DEFAULTS.margin,
                   help="each side pushed out by this fraction of the box size (default: %(default)s)")
    p.add_argument("--jitter", type=float, default=DEFAULTS.jitter,
                   help="each side then moved by up to +/- this fraction of the box size (default: %(default)s)")
    p.add_argument("--min-area", type=float, default=DEFAULTS.min_area,
                   help="regions smaller than this fraction of the image are dropped; the largest is "
                        "always kept (default: %(default)s)")
    p.add_argument("--merge-gap", type=_gap, default=DEFAULTS.merge_gap,
                   help="merge boxes closer than this fraction of the image's long side; 'none' never "
                        "merges (default: %(default)s = merge touching or overlapping boxes)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="random seed (default: %(default)s)")
    p.add_argument("--filled-masks", metavar="DIR",
                   help="also write each image's filled boxes as an 8-bit map (the 'box' baseline; "
                        "all zero for authentic images)")
    add_resize_masks_option(p)
    add_overwrite_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = BoxSimulationConfig(margin=args.margin, jitter=args.jitter, min_area=args.min_area,
                                 merge_gap=args.merge_gap, seed=args.seed)
    dataset = dataset_from_args(args)
    check_not_an_input(Path(args.out), input_files(args, dataset), "box file")
    claim_output_file(Path(args.out), args.overwrite)
    if args.filled_masks:
        check_not_an_input(Path(args.filled_masks), input_files(args, dataset), "--filled-masks folder")
        claim_output_dir(Path(args.filled_masks), "boxes", args.overwrite)
    run_ = make_boxes(dataset, args.out, config, args.resize_masks, args.filled_masks)
    n_boxes = sum(len(boxes) for _, boxes in run_.results.values())
    print(f"wrote {n_boxes} boxes for {len(run_.results)} images to {args.out}")
    return report_failures(run_, "boxes")
