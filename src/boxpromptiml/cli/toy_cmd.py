"""`bpiml toy-data`: write a tiny generated dataset to try the tool on."""

from __future__ import annotations

import argparse

from ..data.toy import make_toy_dataset


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("toy-data", help="write a tiny generated IML dataset (Tp/ Gt/ Au/ + dataset.json)",
                       description="Generate spliced texture images with exact masks, for trying the tool.")
    p.add_argument("out", help="output folder")
    p.add_argument("--tampered", type=int, default=8, help="number of tampered images (default: 8)")
    p.add_argument("--authentic", type=int, default=4, help="number of authentic images (default: 4)")
    p.add_argument("--height", type=int, default=192, help="image height in pixels (default: 192)")
    p.add_argument("--width", type=int, default=256, help="image width in pixels (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    dataset = make_toy_dataset(args.out, args.tampered, args.authentic, (args.height, args.width), args.seed)
    print(f"wrote {len(dataset.tampered)} tampered + {len(dataset.authentic)} authentic images; "
          f"dataset list: {dataset.source}")
    return 0
