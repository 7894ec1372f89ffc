"""`bpiml demo`: the method end to end on a few generated forgeries, as demo/index.html."""

from __future__ import annotations

import argparse
import os

from ..devices import DEVICE_HELP


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="forge a few bundled photos, run the teacher and the shipped student, write an HTML page",
        description="Makes forgeries from scikit-image's bundled photos, simulates their boxes, runs the default "
                    "LiteMedSAM teacher (boxes -> pseudo masks) and the shipped student (image only), scores both "
                    "against the exact masks and writes OUT/index.html. Needs nothing but the installed package.",
    )
    p.add_argument("--out", "-o", default="demo", metavar="DIR", help="output folder (default: demo)")
    p.add_argument("--model", "-m", metavar="RUN_DIR", help="student to show (default: the shipped model)")
    p.add_argument("--quick", action="store_true", help="3 images instead of 8")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: %(default)s)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..demo import run_demo
    from ..deployment.shipped import model_dir
    from ..devices import resolve_device
    from ..teachers import create_teacher
    from ..training.checkpoint import load_student

    torch.set_num_threads(max(1, args.threads))
    device = resolve_device(args.device)
    student, _ = load_student(model_dir(args.model))
    label = f"run folder {args.model}" if args.model else None
    result = run_demo(args.out, create_teacher("litemedsam").to(device), student.to(device), quick=args.quick,
                      model_label=label)
    print(result.summary())
    return 0
