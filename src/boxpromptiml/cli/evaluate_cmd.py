"""`bpiml evaluate`: score a folder of probability maps against a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..evaluation.evaluate import SCORES_FILE, evaluate_prediction_dir, evaluate_predictor
from ..evaluation.groups import CASIA_GROUPS, GroupSpec
from ..evaluation.metrics import DEFAULT_THRESHOLD
from ..fileio import write_json_atomic
from ..outputs import check_not_an_input, claim_output_file
from .common import (
    add_dataset_option,
    add_overwrite_option,
    add_resize_masks_option,
    dataset_from_args,
    input_files,
    report_failures,
)
from .deploy_cmds import add_model_option


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="pixel F1 / IoU / AUC and image AUC of probability maps",
        description="Pixel metrics at a threshold, averaged over tampered images (the field's main "
                    "number), pooled over the dataset, and at each image's best threshold (optimistic); "
                    "pixel AUC per image; image-level AUC and balanced accuracy (score = max of the map, "
                    f"or the value in DIR/{SCORES_FILE} when present).",
    )
    add_dataset_option(p)
    source = p.add_argument_group("what to evaluate (default: the shipped model)")
    source.add_argument("--pred", metavar="DIR",
                        help="folder with one 8-bit PNG probability map per image, named <image stem>.png")
    add_model_option(source)
    p.add_argument("--json", metavar="OUT", help="also write the numbers to this JSON file")
    p.add_argument("--per-image", action="store_true", help="include per-image numbers in the JSON file")
    p.add_argument("--tampered-only", action="store_true",
                   help="evaluate only the tampered images (e.g. pseudo masks, which authentic images lack)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="a pixel / image counts as tampered when its probability is above this (default: 0.5)")
    p.add_argument("--resize-predictions", action="store_true",
                   help="resize maps whose size differs from the mask (bilinear) instead of failing")
    p.add_argument("--group", action="append", default=[], metavar="NAME=REGEX",
                   help="also report the images whose file name matches REGEX as group NAME (repeatable; CASIA: "
                        + " ".join(f"--group {g}" for g in CASIA_GROUPS)
                        + "). Tampered-area bins are always reported.")
    p.add_argument("--resave-jpeg", type=int, metavar="Q",
                   help="re-save every image (both classes) as JPEG at quality Q before predicting, so that "
                        "image-level numbers cannot come from how each class was stored (needs --model)")
    add_resize_masks_option(p)
    add_overwrite_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    dataset = dataset_from_args(args)
    if args.json:  # never over a model, a prediction map, the data, or a file bpiml did not write
        read_folders = [Path(f) for f in (args.pred, args.model) if f and Path(f).is_dir()]
        check_not_an_input(Path(args.json), input_files(args, dataset) + read_folders, "--json file")
        claim_output_file(Path(args.json), args.overwrite)
    if args.tampered_only:
        dataset = dataset.replace_samples(dataset.tampered)
    if args.pred and args.model:
        raise ConfigError("give either --pred (saved maps) or --model (predict now), not both")
    if args.pred and args.resave_jpeg is not None:
        raise ConfigError("--resave-jpeg re-saves the images before predicting: it needs --model, not --pred")
    groups = tuple(GroupSpec.parse(g) for g in args.group)
    if args.pred:
        report, run_ = evaluate_prediction_dir(dataset, args.pred, args.threshold, args.resize_masks,
                                               args.resize_predictions, groups)
    else:
        import torch

        from ..deployment.predictor import load_predictor

        torch.set_num_threads(max(1, args.threads))
        predictor = load_predictor(args.model, args.backend, args.device, copy_move=not args.no_copy_move,
                              map_gate=not args.no_map_gate)
        decision = predictor.decision
        report, run_ = evaluate_predictor(dataset, predictor.predict, args.threshold, args.resize_masks,
                                          image_threshold=decision.threshold if decision else None,
                                          groups=groups, resave_jpeg=args.resave_jpeg)
        if decision is not None:
            print(f"image verdicts at the model's calibrated threshold: {decision.describe()}")
    print(report.format_table())
    if args.json:  # a score over fewer images is another score: the skipped ones are part of the record
        write_json_atomic(args.json, {"info": {"generator": "bpiml evaluate"},
                                      **report.to_dict(per_image=args.per_image), "skipped": run_.failures})
    return report_failures(run_, "evaluate")
