"""The copy-move search's inner loops, compiled by numba (cached on disk after the first run).

Each one replaces a chain of whole-array torch operations by one pass, and each gives the same floats bit for bit:
the search is chaotic on ambiguous patches, so the last bits decide what it finds. This module is imported when
the search first runs, not with the package, because numba brings LLVM with it (~150 MB resident, mostly pages
of its shared library): a prediction's peak memory, reached in the network's pass over a huge photo, stays as it
was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np


def compiled(**options: Any) -> Callable[[Callable], Callable]:
    """numba's ``njit`` without the GIL, cached on disk (beside this file, else in the user's cache folder). Where
    neither can be written (a read-only install and home), numba refuses to cache at all: the loop is then compiled
    again by every process (~1.5 s) instead of failing."""
    def decorate(function: Callable) -> Callable:
        try:
            return numba.njit(cache=True, nogil=True, **options)(function)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(nogil=True, **options)(function)
    return decorate


@compiled()
def window_means(values: np.ndarray, size: int) -> np.ndarray:
    """Means of every size x size window wholly inside a float32 image, equal bit for bit to torch's
    ``avg_pool2d(values, size, stride=1)``: each window is summed in float32, row after row and left to right
    within a row, then divided by its pixel count. That exactness matters: OpenCV's float64 box filter differs in
    the last bits, the search is chaotic on ambiguous patches, and COVERAGE test F1 moved by -0.025 with it
    (benchmarks/by_type.py), outside the 0.005 a speed-up may cost (issue 25). Summing a whole output row at once
    (the inner loop runs along it, in SIMD) makes it ~13x faster than torch's window-by-window loop."""
    height, width = values.shape
    out_height, out_width = height - size + 1, width - size + 1
    means = np.zeros((max(out_height, 0), max(out_width, 0)), np.float32)
    count = np.float32(size * size)
    for row in range(out_height):
        sums = means[row]
        for down in range(size):
            line = values[row + down]
            for right in range(size):
                for col in range(out_width):
                    sums[col] += line[col + right]
        for col in range(out_width):
            sums[col] = sums[col] / count
    return means


@compiled(inline="always")
def squared_distance(table: np.ndarray, target: int, sources: np.ndarray, source: int) -> np.float32:
    """Squared feature distance of two patches in float32.

    Twelve features (the default Zernike orders) are added in the order of MKL's AVX2 matrix-vector kernel, which
    summed them before this loop was fused: the search finds what it found then, bit for bit (it is chaotic on
    ambiguous patches, so the last bits matter). Other feature counts are added in sequence."""
    count = table.shape[1]
    if count == 12:
        d0 = table[target, 0] - sources[source, 0]
        d1 = table[target, 1] - sources[source, 1]
        d2 = table[target, 2] - sources[source, 2]
        d3 = table[target, 3] - sources[source, 3]
        d4 = table[target, 4] - sources[source, 4]
        head = (((d0 * d0 + d1 * d1) + d2 * d2) + d3 * d3) + d4 * d4
        d5 = table[target, 5] - sources[source, 5]
        d6 = table[target, 6] - sources[source, 6]
        d7 = table[target, 7] - sources[source, 7]
        d8 = table[target, 8] - sources[source, 8]
        d9 = table[target, 9] - sources[source, 9]
        d10 = table[target, 10] - sources[source, 10]
        d11 = table[target, 11] - sources[source, 11]
        even = (head + d8 * d8) + (d6 * d6 + d10 * d10)
        odd = (d5 * d5 + d9 * d9) + (d7 * d7 + d11 * d11)
        return even + odd
    total = np.float32(0.0)
    for k in range(count):
        difference = table[target, k] - sources[source, k]
        total += difference * difference
    return total


@compiled()
def consider_all(table: np.ndarray, sources: np.ndarray, positions: np.ndarray, width: int, min_squared: int,
                  lowest_rows: np.ndarray, highest_rows: np.ndarray, lowest_cols: np.ndarray,
                  highest_cols: np.ndarray, candidate_rows: np.ndarray, candidate_cols: np.ndarray,
                  offset_rows: np.ndarray, offset_cols: np.ndarray, best: np.ndarray, replace: bool) -> None:
    """For every source: the candidate offset, moved inside the field, and its distance (infinite when it points
    nearer than ``min_squared``) replace the current match when better, or always (``replace``). One pass over
    the sources instead of a dozen whole-array operations, each of which read and wrote every source."""
    infinity = np.float32(np.inf)
    for i in range(positions.shape[0]):
        row = min(max(candidate_rows[i], lowest_rows[i]), highest_rows[i])
        col = min(max(candidate_cols[i], lowest_cols[i]), highest_cols[i])
        distance = squared_distance(table, positions[i] + row * width + col, sources, i)
        distance = infinity if row * row + col * col < min_squared else distance
        better = replace or distance < best[i]
        offset_rows[i] = row if better else offset_rows[i]
        offset_cols[i] = col if better else offset_cols[i]
        best[i] = distance if better else best[i]
