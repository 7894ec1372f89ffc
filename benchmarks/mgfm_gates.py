"""How open MGFM's gates are in trained students, and what that caps.

MGFM's map is A = a * (A_base * G_avg) + (1 - a) * A_mem with G_avg the mean of the four per-scale
gates, so a gate that is shut everywhere removes its scale from the fused features and lowers
the ceiling of the gated term. This reads the gates of each given run's kept checkpoint on the
tampered validation images (the checkpoint's own choice set, never a test set) and prints, per
scale, the mean opening and the largest opening anywhere, then the largest G_avg and the ceiling
of the gated term, a * max G_avg.

    python -m benchmarks.mgfm_gates runs/v2/runs/method-synth runs/v2/runs/method --limit 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from boxpromptiml.data.images import read_image
from boxpromptiml.data.readers import load_dataset
from boxpromptiml.student.decoders import MGFM
from boxpromptiml.student.inference import pad_to_multiple, to_tensor
from boxpromptiml.training.checkpoint import load_student

from .common import REPO, markdown_table, update_results_section


def gate_openings(run: Path, val: Path, limit: int) -> dict[str, float]:
    """Mean and max sigmoid output of each MGFM gate over ``limit`` tampered images of ``val``."""
    model, _ = load_student(run / "best")
    decoder = model.eval().decoder
    if not isinstance(decoder, MGFM) or decoder.gates is None:
        raise SystemExit(f"{run}: the student has no MGFM gates")
    seen: list[list[torch.Tensor]] = [[] for _ in decoder.gates]
    hooks = [gate.register_forward_hook(lambda _m, _i, out, i=i: seen[i].append(torch.sigmoid(out)))
             for i, gate in enumerate(decoder.gates)]
    samples = [s for s in load_dataset(val).samples if s.mask is not None][:limit]
    with torch.no_grad():
        for sample in samples:
            model(to_tensor(pad_to_multiple(read_image(sample.image)))[None])
    for hook in hooks:
        hook.remove()
    # the gates of one image share the stride-4 grid, so their mean is G_avg there
    gate_avg_max = max(torch.stack(per_image).mean(0).max().item() for per_image in zip(*seen, strict=True))
    row: dict[str, float] = {}
    for info, values in zip(model.encoder.feature_info, seen, strict=True):
        opening = torch.cat([v.flatten() for v in values])
        row[f"stride {info.stride} mean"] = opening.mean().item()
        row[f"stride {info.stride} max"] = opening.max().item()
    row["a"] = torch.sigmoid(decoder.alpha).item() if decoder.use_memory else 1.0
    row["max G_avg"] = gate_avg_max
    row["gated ceiling"] = row["a"] * gate_avg_max
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (their best/ checkpoint is read)")
    parser.add_argument("--val", type=Path, default=REPO / "runs" / "v2" / "casia1_split" / "val.json")
    parser.add_argument("--limit", type=int, default=20, help="tampered validation images read")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/results.md alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = {run.name: gate_openings(run, args.val, args.limit) for run in args.runs}
    headers = list(next(iter(rows.values())))
    table = markdown_table(["run", *headers], [[name, *row.values()] for name, row in rows.items()])
    command = " ".join(["python -m benchmarks.mgfm_gates", *(p.as_posix() for p in args.runs),
                        f"--limit {args.limit}"])
    markdown = (f"## MGFM gate openings in trained students\n\n`{command}`: sigmoid outputs of the four per-scale "
                f"gates of each run's kept checkpoint on {args.limit} tampered images of "
                f"`{args.val.relative_to(REPO) if args.val.is_relative_to(REPO) else args.val}` (validation: "
                "the set checkpoints are chosen on). A = a * (A_base * G_avg) + (1 - a) * A_mem, so the gated "
                "term can add at most a * max G_avg to a pixel's probability (gated ceiling); where it is "
                "below 0.5 a pixel is called tampered only with the memory term's help. A scale whose gate "
                "stays near 0 is dropped from the fused features.\n\n" + table + "\n")
    print(markdown)
    if not args.no_write:
        update_results_section("mgfm_gates", markdown)


if __name__ == "__main__":
    main()
