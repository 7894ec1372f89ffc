"""End-to-end prediction time of the shipped model on photos of common sizes (docs/results.md).

    python benchmarks/predict_speed.py        # on an idle machine: these are wall-clock times

Times ``Predictor.predict`` (fitting the image to the model, the forward pass, the map at the
image's size) on a synthetic photo per size; decoding the file is not included. Target of
issue 12: a 1024 x 768 photo in under 1.5 s on this CPU with 2 threads.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, markdown_table, update_results_section  # noqa: E402

from boxpromptiml.deployment.complexity import count_params_m  # noqa: E402
from boxpromptiml.deployment.predictor import load_predictor  # noqa: E402
from boxpromptiml.deployment.shipped import shipped_model_dir  # noqa: E402
from boxpromptiml.devices import cpu_has_native_bf16  # noqa: E402
from boxpromptiml.training.checkpoint import load_student  # noqa: E402

SIZES = [(384, 256), (1024, 768), (1920, 1080), (4000, 3000)]  # width x height


def photo(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:height, :width]
    smooth = np.stack([np.sin(xx / 37), np.cos(yy / 23), np.sin((xx + yy) / 51)], axis=2) * 90 + 128
    return np.clip(smooth + rng.normal(0, 4, (height, width, 3)), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="run or checkpoint folder (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    predictor = load_predictor(args.model)
    rows = []
    for width, height in SIZES:
        image = photo(width, height)
        predictor.predict(image)  # warm-up
        times = []
        for _ in range(args.repeats if width * height < 4e6 else 2):
            started = time.perf_counter()
            predictor.predict(image)
            times.append(time.perf_counter() - started)
        rows.append([f"{width} x {height}", statistics.median(times),
                     resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024])
        print(rows[-1], flush=True)
    config = predictor.config
    params = f"{count_params_m(load_student(args.model or shipped_model_dir())[0]):.2f} M parameters, "
    markdown = ("## Prediction speed of the shipped model\n\n"
                f"Measured with `python benchmarks/predict_speed.py` ({machine_line()}), idle machine: "
                f"`Predictor.predict` through `{predictor.backend}` (bpiml predict's default) on a synthetic photo "
                f"({params}student `{config.encoder}`, resolution "
                f"`{config.resolution}`, residual `{config.residual}`, tiles above {config.max_side} px); median "
                "of repeated calls after a warm-up, decoding not included; with the model folder's copy-move search "
                f"({'on' if predictor.copy_move else 'off'}) and map gate ({'on' if predictor.map_gate else 'off'}), "
                f"on a CPU {'with' if cpu_has_native_bf16() else 'without'} native bf16. Peak RSS is the process's "
                "maximum so far (OpenVINO keeps the kernels of every input shape it has run)."
                "\n\n" + markdown_table(["image", "seconds", "peak RSS (MB)"], rows) + "\n")
    print(markdown)
    if not args.no_write:
        update_results_section("predict_speed", markdown)


if __name__ == "__main__":
    main()
