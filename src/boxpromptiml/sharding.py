"""Splitting a long per-image job over processes or machines that share one output folder.

``--shard K/N`` takes every N-th image starting at K (in dataset order, so every shard sees the
same split). Under ``torchrun`` each rank takes its shard from the ``RANK`` / ``WORLD_SIZE``
variables torchrun sets, with no flag. Shards that update one shared file (a manifest, a scores
file) do it under an exclusive lock file next to it, so the last one to finish sees everybody's
part.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count`` (0-based)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard {self.index}/{self.count}: need 0 <= K < N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` -> Shard(K, N)."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError as exc:
            raise ConfigError(f"--shard takes K/N (e.g. 0/4), got {text!r}") from exc
        return cls(index, count)

    @classmethod
    def from_environment(cls) -> Shard | None:
        """This process's shard under torchrun (RANK of WORLD_SIZE), or None outside a multi-process launch."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world) if world > 1 else None

    def select(self, items: Sequence[T]) -> list[T]:
        return list(items[self.index::self.count])

    @property
    def tag(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def resolve_shard(text: str | None) -> Shard | None:
    """The shard a command runs as: ``--shard K/N`` if given, else torchrun's rank, else the whole job."""
    return Shard.parse(text) if text else Shard.from_environment()


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
