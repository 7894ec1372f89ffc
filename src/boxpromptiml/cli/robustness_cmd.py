"""`bpiml robustness`: F1 / AUC of a model under JPEG, blur, noise, downscaling and social-network chains."""

from __future__ import annotations

import argparse
import logging

from ..evaluation.robustness import (
    BLUR_KERNELS,
    DEGRADATION_KINDS,
    DOWNSCALES,
    JPEG_QUALITIES,
    NOISE_SIGMAS,
    SOCIAL_CHAINS,
    evaluate_robustness,
    plot_robustness,
    robustness_suite,
)
from ..fileio import write_json_atomic
from .common import add_dataset_option, dataset_from_args
from .deploy_cmds import add_model_option

log = logging.getLogger("boxpromptiml")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    chains = "; ".join(f"{c.name}: long side <= {c.long_side} px, JPEG {c.quality}" for c in SOCIAL_CHAINS)
    p = sub.add_parser(
        "robustness", help="evaluate a model on degraded copies of a dataset (JPEG, blur, noise, resize, social)",
        description=f"Levels: JPEG quality {list(JPEG_QUALITIES)}; Gaussian blur kernel {list(BLUR_KERNELS)}; "
                    f"Gaussian noise sigma {list(NOISE_SIGMAS)}; downscale {list(DOWNSCALES)} (the mask follows); "
                    f"social-network-like chains ({chains}; approximations of the platforms' default uploads, see "
                    "boxpromptiml.evaluation.robustness). Pixel F1 at 0.5, mean over tampered images.",
    )
    add_dataset_option(p)
    add_model_option(p)
    p.add_argument("--only", nargs="+", choices=DEGRADATION_KINDS, metavar="KIND",
                   help=f"degradations to run ({', '.join(DEGRADATION_KINDS)})")
    p.add_argument("--json", metavar="OUT", help="write a list of {degradation, level, pixel_f1, pixel_auc, ...}")
    p.add_argument("--plot", metavar="OUT.png", help="plot F1 against each degradation's level")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    p.set_defaults(run=run)


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'degradation':12s} {'level':>9s} {'pixel F1':>9s} {'pixel AUC':>9s} {'image AUC':>9s}"]
    for r in rows:
        cells = [f"{r[k]:9.3f}" if r[k] is not None else f"{'n/a':>9s}" for k in ("pixel_f1", "pixel_auc", "image_auc")]
        lines.append(f"{r['degradation']:12s} {str(r['level']):>9s} " + " ".join(cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..deployment.predictor import load_predictor

    dataset = dataset_from_args(args)
    torch.set_num_threads(max(1, args.threads))
    predictor = load_predictor(args.model, args.backend, args.device, copy_move=not args.no_copy_move,
                              map_gate=not args.no_map_gate)
    suite = robustness_suite(tuple(args.only) if args.only else None)
    rows = evaluate_robustness(dataset, predictor.predict, suite, args.seed,
                               progress=lambda label: log.info("robustness: %s", label))
    print(format_rows(rows))
    if args.json:
        write_json_atomic(args.json, rows)
    if args.plot:
        plot_robustness({str(dataset.source): rows}, args.plot)
    failures = rows[0]["failures"] if rows else {}
    return 1 if failures else 0
