"""Throughput of one process against two on this machine (docs/results.md): pseudo-labelling and
`bpiml predict` on a folder with ``--processes 2`` (two shards started by the command through torch's elastic
launcher), data-parallel training under ``torchrun`` (Gloo).

    python benchmarks/scaling.py                   # on an idle machine: these are wall-clock numbers
    python benchmarks/scaling.py --jobs predict    # only the folder-prediction rows

Pseudo-labelling: the default teacher on the first N CASIA v1 training images, as one process with
2 threads (``--processes 1``), then as two processes of 1 thread each (``--processes 2``; wall time from start to
the end, process start-up included). Training: one epoch of native 256 px crops of CASIA v1 training
images, EfficientNet-Lite0 + MGFM, global batch 8, as one process with 2 threads and as two Gloo
processes of 1 thread each (samples per second of the training loop, from metrics.csv). Prediction:
`bpiml predict` (default backend, shipped model, maps written) on a folder of 100 JPEG photos of 1024 x 768
and one of 20 of 4000 x 3000 (synthetic, quality 90), the command started once per folder, as one process with
2 threads (``--processes 1``) and as two of 1 thread each (``--processes 2``): wall time, start-up included, and
without it. Per-photo seconds from the progress of the run itself are not available, so start-up is measured
on a folder of one photo (one process) or two photos (two processes, one photo each) and subtracted.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    DEFAULT_DATA,
    REPO,
    ResultStore,
    machine_line,
    markdown_table,
    update_results_section,
)

BIN = Path(sys.executable).parent


def _run_all(commands: list[list[str]], env_threads: int) -> float:
    """Start the commands at once; wall seconds until the last one ends (each must succeed)."""
    import os

    env = {**os.environ, "OMP_NUM_THREADS": str(env_threads)}
    started = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c in commands]
    for proc, command in zip(procs, commands, strict=True):
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"failed: {' '.join(command)}\n{err[-2000:]}")
    return time.perf_counter() - started


def pseudo_labelling(work: Path, data: Path, n: int) -> list[list]:
    images = json.loads((data / "casia1_train" / "train.json").read_text())[:n]
    listing = work / "subset.json"
    listing.write_text(json.dumps([[str(data / "casia1_train" / a), str(data / "casia1_train" / b)]
                                   for a, b in images]))
    subprocess.run([BIN / "bpiml", "-q", "boxes", "-d", listing, "-o", work / "boxes.json"], check=True)
    base = [str(BIN / "bpiml"), "-q", "pseudo-label", "-d", str(listing), "--boxes", str(work / "boxes.json")]
    one = _run_all([base + ["-o", str(work / "pl1"), "--threads", "2", "--processes", "1"]], 2)
    # --processes 2: the two shards started by the command itself (torch's elastic launcher), as --processes auto does
    two = _run_all([base + ["-o", str(work / "pl2"), "--threads", "2", "--processes", "2"]], 2)
    return [["pseudo-label (default teacher)", f"{n} images", n / one, n / two, one / two, None]]


def predicting(work: Path, count: int, width: int, height: int) -> list[list]:
    """A folder of ``count`` photos through `bpiml predict`: one process (2 threads) against two shards."""
    import cv2
    from predict_speed import photo

    folder = work / f"photos-{width}x{height}"
    folder.mkdir()
    picture = cv2.cvtColor(photo(width, height), cv2.COLOR_RGB2BGR)
    for i in range(count):  # a different crop of one larger pattern each, so no two files are the same
        shifted = np.roll(picture, shift=(7 * i, 13 * i), axis=(0, 1))
        cv2.imwrite(str(folder / f"p{i:03d}.jpg"), shifted, [cv2.IMWRITE_JPEG_QUALITY, 90])
    single = work / f"single-{width}x{height}"
    single.mkdir()
    shutil.copy(folder / "p000.jpg", single)
    base = [str(BIN / "bpiml"), "-q", "predict"]
    startup = _run_all([base + [str(single), "-o", str(work / f"s-{width}"), "--threads", "2"]], 2)
    one = _run_all([base + [str(folder), "-o", str(work / f"o1-{width}"), "--threads", "2", "--processes", "1"]], 2)
    # --processes 2: two shards of one thread started by the command itself, as --processes auto does
    two = _run_all([base + [str(folder), "-o", str(work / f"o2-{width}"), "--threads", "2", "--processes", "2"]], 2)
    pair = work / f"pair-{width}x{height}"
    pair.mkdir()
    for name in ("p000.jpg", "p001.jpg"):
        shutil.copy(folder / name, pair)
    startup_two = _run_all([base + [str(pair), "-o", str(work / f"s2-{width}"), "--threads", "2", "--processes",
                                    "2"]], 2)
    return [["predict a folder (default backend, maps written)", f"{count} photos {width} x {height}",
             count / one, count / two, one / two, (one - startup) / (count - 1), (two - startup_two) / (count - 2)]]


def training(work: Path, data: Path, samples: int) -> list[list]:
    settings = ["--set", "student.resolution=native", "--set", f"optim.samples_per_epoch={samples}",
                "--set", "optim.epochs=1", "--set", "optim.workers=1", "--set", "data.fit_limit=0",
                "--set", "optim.device=cpu"]
    args = ["train", "--train", str(data / "casia1_train" / "train.json"), "--supervision", "full", *settings]
    _run_all([[str(BIN / "bpiml"), "-q", *args, "--out", str(work / "t1"), "--set", "optim.threads=2"]], 2)
    _run_all([[str(BIN / "torchrun"), "--nproc_per_node=2", "--master-port=29611", "-m", "boxpromptiml", "-q",
               *args, "--out", str(work / "t2"), "--set", "optim.threads=1"]], 1)

    def rate(run: str) -> float:
        with (work / run / "metrics.csv").open() as handle:
            return float(next(csv.DictReader(handle))["samples_per_second"])

    one, two = rate("t1"), rate("t2")
    return [["train (full supervision, 256 px crops)", f"{samples} samples", one, two, two / one, None]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40, help="images to pseudo-label (default 40)")
    parser.add_argument("--samples", type=int, default=240, help="training samples (default 240)")
    parser.add_argument("--jobs", nargs="+", default=["pseudo-label", "predict", "train"],
                        choices=["pseudo-label", "predict", "train"])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bpiml-scaling-"))
    rows = []
    try:
        if "pseudo-label" in args.jobs:
            rows += pseudo_labelling(work, DEFAULT_DATA, args.images)
        if "predict" in args.jobs:
            rows += predicting(work, 100, 1024, 768) + predicting(work, 20, 4000, 3000)
        if "train" in args.jobs:
            rows += training(work, DEFAULT_DATA, args.samples)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    measured = {f"{row[0]} | {row[1]}": {"row": row, "machine": machine_line(threads=False),
                                         "date": time.strftime("%Y-%m-%d")} for row in rows}
    if not rows or args.no_write:
        print(render(measured))
        return
    store = ResultStore(RECORD)  # rows of the jobs not run this time are kept, with the machine that ran them
    for key, entry in measured.items():
        store.put(key, entry)
    markdown = render(store.rows)
    print(markdown)
    update_results_section("scaling", markdown)


HEADERS = ["job", "size", "1 process /s", "2 processes /s", "speed-up", "1 process, seconds per photo after start-up",
           "2 processes, seconds per photo after start-up", "machine, date"]
RECORD = REPO / "docs" / "scaling_runs.json"


def render(rows: dict) -> str:
    width = len(HEADERS) - 1  # rows measured before a column was added leave it empty
    table = [[*entry["row"], *[None] * (width - len(entry["row"])), f"{entry['machine']}, {entry['date']}"]
             for entry in rows.values()]
    return ("## One process against two\n\n"
            "Measured with `python benchmarks/scaling.py` (`--jobs` re-runs some rows; the others keep the machine "
            "and date that measured them), idle machine. Pseudo-labelling: images per second of wall time, start-up "
            "included (two processes of 1 thread each against one process with 2 threads: `--processes 2` from "
            "the session of 2026-12-07 morning on, `--shard 0/2` and `1/2` started at once before). "
            "Predicting a folder: `bpiml predict` on synthetic JPEGs, the command started once, maps written (the "
            "same two ways); photos per second with start-up, and seconds per photo after it. Training: samples per "
            "second of the training loop (`torchrun --nproc_per_node=2`, Gloo, 1 thread each, against one process with "
            "2 threads), global batch 8. Rows in `docs/scaling_runs.json`.\n\n"
            + markdown_table(HEADERS, table) + "\n")


if __name__ == "__main__":
    main()
