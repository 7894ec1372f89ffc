"""Command line of the reference protocol v2 (see the package docstring)."""

from __future__ import annotations

import argparse
import logging
import time

import torch

from ..common import update_results_section
from . import __doc__ as DESCRIPTION
from .data import stage_data, stage_pseudo
from .layout import RECORD, Layout
from .record import collect_record
from .report import CURVES, plot_curves, render
from .runs import RUNS
from .ship import stage_ship
from .train_eval import stage_eval, stage_train

STAGES = ["data", "pseudo", "train", "eval", "report", "ship"]
log = logging.getLogger("protocol")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.protocol", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="+", default=STAGES[:5], choices=STAGES,
                        help="ship is not run by default")
    parser.add_argument("--runs", nargs="+", default=["method"], choices=list(RUNS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="data-loading worker processes (default 1)")
    parser.add_argument("--max-minutes", type=float, help="stop training cleanly after this much time; rerun to go on")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    layout = Layout()
    if not (layout.data / "casia1_train").is_dir():
        raise SystemExit(f"no shared data at {layout.data}")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if "data" in args.stages:
        stage_data(layout)
    if "pseudo" in args.stages:
        stage_pseudo(layout, {RUNS[r].teacher for r in args.runs if RUNS[r].supervision == "pseudo"})
    if "train" in args.stages:
        stage_train(layout, args.runs, args.threads, args.workers, args.max_minutes)
    if "eval" in args.stages:
        stage_eval(layout, args.runs, args.threads)
    if "report" in args.stages:
        from boxpromptiml.fileio import write_json_atomic

        record = collect_record(layout)
        write_json_atomic(RECORD, record)
        markdown = render(record, plot_curves(record["runs"], CURVES))
        print(markdown)
        update_results_section("protocol_v2", markdown)
    if "ship" in args.stages:
        stage_ship(layout)
    log.info("stages %s done in %.1f min", " ".join(args.stages), (time.perf_counter() - started) / 60)


if __name__ == "__main__":
    main()
