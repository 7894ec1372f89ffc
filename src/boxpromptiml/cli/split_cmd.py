"""`bpiml split`: carve a validation set out of training data, by source photo."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.readers import write_imdl_json
from ..data.splits import split_by_source
from ..outputs import check_not_an_input, claim_output_dir
from .common import add_dataset_option, add_overwrite_option, dataset_from_args, input_files


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "split", help="split training data into train / validation lists by source photo",
        description="Images that share a source photo (CASIA names declare them, e.g. "
                    "Sp_D_CND_A_pla0005_pla0023_0281 and Au_pla_0005) land on the same side, so validation "
                    "never shows the model a background it trained on. Writes OUT/train.json and OUT/val.json "
                    "(IMDL-BenCo lists, paths relative to OUT).",
    )
    add_dataset_option(p)
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="folder for train.json and val.json")
    p.add_argument("--val-fraction", type=float, default=0.15,
                   help="share of tampered (and of authentic) images for validation (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    add_overwrite_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    dataset = dataset_from_args(args)
    train, val = split_by_source(dataset, args.val_fraction, args.seed)
    out = Path(args.out)
    check_not_an_input(out, input_files(args, dataset), "output folder")
    claim_output_dir(out, "split", args.overwrite)
    for part, name in ((train, "train.json"), (val, "val.json")):
        write_imdl_json(part, out / name)
        print(f"{out / name}: {len(part.tampered)} tampered + {len(part.authentic)} authentic")
    return 0
