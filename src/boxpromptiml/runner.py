"""Running one step over many samples: a progress bar, and bad files reported, not fatal."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tqdm import tqdm

from .data.samples import Sample
from .errors import DataError

log = logging.getLogger(__name__)
T = TypeVar("T")


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
    samples: Iterable[Sample], step: Callable[[Sample], T], desc: str, total: int | None = None
) -> SampleRun[T]:
    """Apply ``step`` to every sample; a :class:`DataError` skips that sample and is recorded."""
    run: SampleRun[T] = SampleRun()
    bar = tqdm(samples, desc=desc, total=total, unit="img", file=sys.stderr, dynamic_ncols=True,
               disable=None)
    for sample in bar:
        try:
            run.results[sample.name] = step(sample)
        except DataError as exc:
            run.failures[sample.name] = str(exc)
            log.error("%s: %s", sample.image, exc)
    return run
