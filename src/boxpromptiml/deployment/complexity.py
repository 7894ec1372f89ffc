"""Model complexity on this CPU: parameters, multiply-accumulates, latency, peak memory.

FLOP convention: ``torch.utils.flop_counter`` counts 2 FLOPs per multiply-accumulate in
convolutions and matrix products (elementwise ops, norms and activations are not counted); we
report GMACs = counted FLOPs / 2, the convention of the paper's "1.4 GFLOPs" for TinyViT-5M.
Latency is the median of repeated forward passes (after warm-up) under inference mode.
Peak memory is the process's maximum resident set size (includes Python and torch).
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..student.model import Student


@dataclass(frozen=True)
class Complexity:
    params_m: float
    gmacs_224: float
    latency_ms_224_b1: float
    latency_ms_224_b8: float
    latency_ms_512_b1: float
    latency_ms_512_b8: float
    peak_rss_mb: float
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


def count_params_m(model: Student) -> float:
    """Parameters in millions."""
    return sum(p.numel() for p in model.parameters()) / 1e6


def count_gmacs(model: Student, size: int = 224) -> float:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:  # (inference_mode breaks the counter's module tracker)
        model(torch.rand(1, 3, size, size))
    return counter.get_total_flops() / 2 / 1e9


def median_latency_ms(model: Student, size: int, batch: int, repeats: int) -> float:
    x = torch.rand(batch, 3, size, size)
    with torch.inference_mode():
        model(x)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(model: Student, repeats: int = 10) -> Complexity:
    model.eval()
    return Complexity(
        params_m=count_params_m(model),
        gmacs_224=count_gmacs(model, 224),
        latency_ms_224_b1=median_latency_ms(model, 224, 1, repeats),
        latency_ms_224_b8=median_latency_ms(model, 224, 8, max(3, repeats // 3)),
        latency_ms_512_b1=median_latency_ms(model, 512, 1, repeats),
        latency_ms_512_b8=median_latency_ms(model, 512, 8, max(3, repeats // 3)),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        threads=torch.get_num_threads(),
    )


def format_complexity(name: str, c: Complexity) -> str:
    return (f"{name}: {c.params_m:.2f} M params, {c.gmacs_224:.2f} GMACs at 224x224, latency (ms, median, "
            f"{c.threads} threads): 224 b1 {c.latency_ms_224_b1:.0f}, 224 b8 {c.latency_ms_224_b8:.0f}, "
            f"512 b1 {c.latency_ms_512_b1:.0f}, 512 b8 {c.latency_ms_512_b8:.0f}; peak RSS {c.peak_rss_mb:.0f} MB")
