"""Helpers shared by the benchmark scripts: where the data is, and writing docs/results.md.

Each benchmark owns one section of docs/results.md, delimited by HTML comments, and rewrites
only that section, so benchmarks can be re-run independently.
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any

import torch

from boxpromptiml.fileio import write_json_atomic, write_text_atomic

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
RESULTS_MD = REPO / "docs" / "results.md"
RESULTS_HEADER = "# Results\n\nEvery number here comes from a script under `benchmarks/`, run as shown.\n"
# Model-quality figures (protocol, by type) are measured through PyTorch in float32, the numerics every earlier row
# was scored with; what the other backends change is measured beside it (benchmarks.backends).
REFERENCE_BACKEND = "torch"


def cpu_line() -> str:
    """The CPU's model name and widest vector unit (AVX2 / AVX512 / AVX512-BF16 / AMX), which decide CPU timings
    more than anything else; the architecture alone where /proc/cpuinfo is not there."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    widest = next((name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"),
                                            ("avx512f", "AVX512"), ("avx2", "AVX2")) if flag in flags), "no AVX2")
    return f"{model} ({widest})"


def machine_line(threads: bool = True) -> str:
    """CPU, torch threads of this process (leave out when the numbers came from other processes), versions."""
    thread_part = f"{torch.get_num_threads()} torch thread(s), " if threads else ""
    return f"{cpu_line()}, {thread_part}torch {torch.__version__}, Python {platform.python_version()}"


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "n/a"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def update_results_section(key: str, markdown: str, path: Path = RESULTS_MD) -> None:
    """Replace (or append) the section ``key`` of docs/results.md."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else RESULTS_HEADER
    block = f"{start}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    write_text_atomic(path, text)


def relative_to_repo(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, else its name: no machine's own paths in records."""
    path = Path(path).resolve()
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name


class ResultStore:
    """Measured rows kept in a JSON file, so a long benchmark can be resumed and re-rendered."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else {}

    def has(self, key: str) -> bool:
        return key in self.rows

    def put(self, key: str, row: dict[str, Any]) -> None:
        self.rows[key] = row
        write_json_atomic(self.path, self.rows)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)
