"""Where the time of `bpiml predict` goes, stage by stage, on JPEG photos of common sizes (docs/results.md).

    python -m benchmarks.predict_profile                 # idle machine: these are wall-clock times
    python -m benchmarks.predict_profile --backend openvino --threads 2

Runs :func:`boxpromptiml.deployment.predict_files.predict_files` on one JPEG file per size (synthetic, written at
quality 90) under :mod:`cProfile` and reads the cumulative time of the functions that make each stage:
decode (``read_image``), input (padding and the uint8 -> float tensor), network (the batch runner), stitching
(cutting the photo and blending the tiles into one clipped map: what ``predict_image`` spends outside the
input and the network), the copy-move search and its fusion into the map (model folders with a ``copy_move.json``),
the map gate, quantise (map -> 8-bit), PNG encoding and writing the file, in whichever thread they
run. One photo per call, so only the copy-move search overlaps: with more than one thread it runs in a thread of
its own beside the network (photos up to 40 MP), and the stages then add up to more than the wall time (``other``:
what the stages leave of the wall time, e.g. waiting for a thread; 0 when they overlap). The first call of each
size is a warm-up and is not counted.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import threading
import time
from pathlib import Path

import cv2
import torch

from boxpromptiml.deployment import predictor as predictor_module
from boxpromptiml.deployment.predict_files import predict_files
from boxpromptiml.deployment.predictor import load_predictor

from .common import machine_line, markdown_table, update_results_section
from .predict_speed import photo

SIZES = [(1024, 768), (1920, 1080), (4000, 3000)]  # width x height
# stage -> (function names whose cumulative time it is, names whose cumulative time it excludes)
STAGES = {
    "decode": (("read_image",), ()),
    "input": (("pad_to_multiple", "to_tensor"), ()),
    "network": (("network_pass",), ()),
    "stitching": (("predict_image",), ("network_pass", "pad_to_multiple", "to_tensor")),
    "copy-move search": (("working_copy", "find_copies_in_working_copy", "fuse_copies"), ()),
    "map gate": (("gate_map",), ()),
    "quantise": (("probability_to_uint8",), ()),
    "PNG encoding": (("encode_png",), ()),
    "writing": (("write_bytes_atomic",), ()),
}


def cumulative_seconds(stats: pstats.Stats, names: tuple[str, ...]) -> float:
    """Sum of the cumulative times of the functions called ``names`` (outermost calls only: pstats' cumulative
    time already excludes recursion)."""
    total = 0.0
    for (_file, _line, function), (_calls, _primitive, _tottime, cumtime, _callers) in stats.stats.items():
        if function in names:
            total += cumtime
    return total


def profile_one(predictor, path: Path, out: Path) -> dict[str, float]:
    """Seconds per stage of one `predict_files` call on ``path``, in every thread: `predict_files` decodes and
    writes in its I/O threads, which get a profiler of their own as they start (threading.setprofile), merged
    with the main thread's afterwards."""
    profilers = [cProfile.Profile()]
    lock = threading.Lock()

    def start_profiling_this_thread(*_event) -> None:
        profiler = cProfile.Profile()
        with lock:
            profilers.append(profiler)
        profiler.enable()  # replaces this hook for the rest of the thread's life

    # the copy-move search's thread (predictor.py) outlives a call: a fresh one is made for each call, so that it
    # starts under the profiling hook
    if predictor_module._search_threads is not None:
        predictor_module._search_threads[1].shutdown(wait=True)
        predictor_module._search_threads = None
    threading.setprofile(start_profiling_this_thread)
    try:
        started = time.perf_counter()
        profilers[0].runcall(predict_files, predictor, [str(path)], out)
        wall = time.perf_counter() - started
    finally:
        threading.setprofile(None)
    for profiler in profilers[1:]:
        profiler.disable()
    stats = pstats.Stats(*profilers)
    row = {stage: cumulative_seconds(stats, inside) - cumulative_seconds(stats, outside)
           for stage, (inside, outside) in STAGES.items()}
    row["other"] = max(0.0, wall - sum(row.values()))
    row["total"] = wall
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="run or checkpoint folder (default: the shipped model)")
    parser.add_argument("--backend", default=None, help="predictor backend (default: bpiml predict's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    predictor = load_predictor(args.model, **({"backend": args.backend} if args.backend else {}))
    runner = predictor.predict_batch

    def network_pass(images):  # the batch runner under a name of its own, for the profile
        return runner(images)

    predictor.predict_batch = network_pass
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in SIZES:
            path = Path(tmp) / f"photo_{width}x{height}.jpg"
            picture = cv2.cvtColor(photo(width, height), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(path), picture, [cv2.IMWRITE_JPEG_QUALITY, 90])
            profile_one(predictor, path, Path(tmp) / "out")  # warm-up
            runs = [profile_one(predictor, path, Path(tmp) / "out") for _ in range(args.repeats)]
            median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            rows.append([f"{width} x {height}", *(median[key] for key in [*STAGES, "other", "total"])])
            print(rows[-1], flush=True)
    markdown = "\n".join([
        "## Where the time of `bpiml predict` goes", "",
        f"Measured with `python -m benchmarks.predict_profile{' --backend ' + args.backend if args.backend else ''}"
        f"` ({machine_line()}), idle machine: `predict_files` on one JPEG (quality 90) per size, under cProfile "
        f"(which adds a little to every stage); seconds, median of {args.repeats} calls after a warm-up. With more "
        f"than one thread the copy-move search runs beside the network on photos up to 40 MP, so its column overlaps "
        f"the network's and the stages add up to more than the total. Model: "
        f"{args.model or 'the shipped model'} through `{predictor.backend}`.", "",
        markdown_table(["photo", *STAGES, "other", "total"], rows), ""])
    print(markdown)
    if not args.no_write:
        update_results_section(f"predict_profile_{args.backend or 'default'}", markdown)


if __name__ == "__main__":
    main()
