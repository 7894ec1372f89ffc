"""Running one step over many samples: a progress bar, and bad files reported, not fatal."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tqdm import tqdm

from .errors import DataError

log = logging.getLogger(__name__)
T = TypeVar("T")
S = TypeVar("S")


@dataclass
class SampleRun(Generic[T]):
    """Results per sample name, the samples that failed with the reason, and those skipped
    because an earlier run had already done them."""

    results: dict[str, T] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{len(self.results)} done, {len(self.skipped)} already done before, {len(self.failures)} failed"
        if self.failures:
            text += ":\n" + "\n".join(f"  {name}: {why}" for name, why in self.failures.items())
        return text


def run_per_sample(
    samples: Iterable[S], step: Callable[[S], T], desc: str, total: int | None = None,
    name_of: Callable[[S], str] = lambda s: s.name,
) -> SampleRun[T]:
    """Apply ``step`` to every sample (or any item named by ``name_of``); a :class:`DataError`
    skips that item and is recorded, so one bad file never stops a long run."""
    run: SampleRun[T] = SampleRun()
    # one line per process under a launcher (torchrun, bpiml predict --processes)
    bar = tqdm(samples, desc=desc, total=total, unit="img", file=sys.stderr, dynamic_ncols=True,
               disable=None, position=int(os.environ.get("LOCAL_RANK", "0")))
    for sample in bar:
        name = name_of(sample)
        try:
            run.results[name] = step(sample)
        except DataError as exc:
            run.failures[name] = str(exc)
            log.error("%s", exc)
    return run
