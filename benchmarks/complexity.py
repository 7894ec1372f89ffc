"""Student complexity on this CPU for both backbones, with and without MGFM (docs/results.md).

    python benchmarks/complexity.py            # run on an idle machine: latency is wall-clock

GMACs = FLOPs / 2 from torch.utils.flop_counter (convolutions and matrix products only), at
224 x 224. Latency: median of repeated forward passes under inference mode, random weights
(weights do not change the cost), all CPU cores unless --threads.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, markdown_table, update_results_section  # noqa: E402

from boxpromptiml.deployment.complexity import count_gmacs, median_latency_ms  # noqa: E402
from boxpromptiml.student.model import StudentConfig, build_student  # noqa: E402

VARIANTS = {
    "MGFM (gates + memory)": {},
    "MGFM, memory off": {"use_memory": False},
    "MGFM, gates off": {"use_gates": False},
    "plain FPN (no MGFM)": {"fusion": "fpn"},
    "MGFM + SRM residual branch": {"residual": "srm"},
    "MGFM + JPEG compression branch": {"compression_traces": True, "resolution": "native"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for encoder in ("tinyvit5m", "efficientnet_lite0"):
        for name, variant in VARIANTS.items():
            model = build_student(StudentConfig(encoder=encoder, encoder_init="random", **variant)).eval()
            row = [f"`{encoder}`", name, sum(p.numel() for p in model.parameters()) / 1e6, count_gmacs(model, 224),
                   median_latency_ms(model, 224, 1, args.repeats), median_latency_ms(model, 224, 8, 3),
                   median_latency_ms(model, 512, 1, args.repeats)]
            rows.append(row)
            print(" | ".join(str(round(v, 3)) if isinstance(v, float) else v for v in row), flush=True)
    table = markdown_table(["encoder", "fusion", "params (M)", "GMACs @224", "ms 224 b1", "ms 224 b8", "ms 512 b1"],
                           rows)
    markdown = ("## Student complexity\n\n"
                f"Measured with `python benchmarks/complexity.py` ({machine_line()}), idle machine. GMACs = FLOPs / 2 "
                "counted by `torch.utils.flop_counter` (convolutions and matrix products). Latency: median wall "
                "time of one forward pass. The shipped student is `efficientnet_lite0` with MGFM and the JPEG "
                "compression branch. Paper's student: 5.5 M params, 1.4 GFLOPs at 224.\n\n" + table + "\n")
    print(markdown)
    if not args.no_write:
        update_results_section("complexity", markdown)


if __name__ == "__main__":
    main()
