"""Robustness of the default (shipped) model on both test sets (writes docs/results.md).

    python benchmarks/robustness.py                  # shipped model, CASIA v1 dev + COVERAGE test
    python benchmarks/robustness.py --model runs/v2/runs/method

Same levels as `bpiml robustness`; pixel F1 at 0.5 (mean over tampered images), pixel AUC,
image AUC (with the sets' authentic images), the share of authentic images with a marked pixel.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import DEFAULT_DATA, REPO, machine_line, markdown_table, update_results_section  # noqa: E402

from benchmarks.protocol.layout import test_datasets  # noqa: E402
from boxpromptiml.deployment.predictor import load_predictor  # noqa: E402
from boxpromptiml.deployment.shipped import shipped_note  # noqa: E402
from boxpromptiml.evaluation.robustness import (  # noqa: E402
    SOCIAL_CHAINS,
    evaluate_robustness,
    plot_robustness,
    robustness_suite,
)
from boxpromptiml.fileio import write_json_atomic  # noqa: E402

PAPER = "the paper reports its CASIA v1 F1 falling from 0.552 to 0.477-0.536 across the four platforms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", help="run or checkpoint folder (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, help="first N tampered images of each set (default: all)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--no-map-gate", action="store_true",
                        help="maps as made, without the model's map gate (rows kept apart, results.md untouched)")
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the table from runs/bench/robustness.json without re-measuring")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    suite = robustness_suite()
    store = REPO / "runs" / "bench" / ("robustness_no_map_gate.json" if args.no_map_gate else "robustness.json")
    args.no_write = args.no_write or args.no_map_gate
    if args.render_only:
        saved = json.loads(store.read_text())
        rows_by_set, minutes = (saved["rows"], saved["minutes"]) if "rows" in saved else (saved, None)
    else:
        predictor = load_predictor(args.model, map_gate=not args.no_map_gate)
        rows_by_set, started = {}, time.perf_counter()
        for name, dataset in test_datasets(args.data, args.limit).items():
            rows_by_set[name] = evaluate_robustness(dataset, predictor.predict, suite,
                                                    progress=lambda label, n=name: print(f"{n}: {label}", flush=True))
        minutes = (time.perf_counter() - started) / 60
        write_json_atomic(store, {"rows": rows_by_set, "minutes": minutes, "model": args.model, "limit": args.limit})
    if not args.no_write:
        figure = REPO / "docs" / "figures" / "robustness.png"
        figure.parent.mkdir(parents=True, exist_ok=True)
        plot_robustness(rows_by_set, figure)
    names = list(rows_by_set)
    table = []
    for i, d in enumerate(suite):
        row = [d.kind, d.level]
        for name in names:
            r = rows_by_set[name][i]
            row += [r["pixel_f1"], r["pixel_auc"], r["image_auc"], r.get("authentic_marked_rate")]
        table.append(row)
    limit = f" --limit {args.limit}" if args.limit else ""
    chains = "; ".join(f"{c.name}: long side <= {c.long_side} px then JPEG {c.quality}" for c in SOCIAL_CHAINS)
    model = args.model or f"the shipped model: {shipped_note().get('summary', 'no training note')}"
    markdown = "\n".join([
        "## Robustness", "",
        f"Measured with `python benchmarks/robustness.py{limit}` ({model}) on {machine_line()}"
        + (f", {minutes:.0f} min. " if minutes is not None else ". ")
        + (f"At most {args.limit} tampered and {args.limit // 2} authentic images per set. " if args.limit else "")
        + "Each level is applied to the original test images (masks follow resizing). Social-network-like chains "
        f"are approximations, not measured platform behaviour ({chains}); CASIA v1 and COVERAGE images are "
        f"smaller than every limit, so only their JPEG step acts. For reference, {PAPER}.", "",
        markdown_table(["degradation", "level"] + [f"{n} {m}" for n in names
                                                   for m in ("F1", "pAUC", "iAUC", "authentic marked")], table),
        "", "![robustness](figures/robustness.png)", ""])
    print(markdown)
    if not args.no_write:
        update_results_section("robustness", markdown)


if __name__ == "__main__":
    main()
