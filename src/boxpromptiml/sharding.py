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
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .errors import BPIMLError, ConfigError

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


def under_launcher() -> bool:
    """True inside a multi-process launch (torchrun, or :func:`run_in_processes`): the job is split already."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def run_in_processes(entrypoint: Callable[..., T], args: tuple, processes: int) -> list[T]:
    """``entrypoint(*args)`` in ``processes`` local processes started by PyTorch's elastic launcher (what torchrun
    runs), each with ``RANK`` / ``WORLD_SIZE`` set, so that :func:`resolve_shard` gives each its part of the job.
    Returns each process's return value, by rank. ``entrypoint`` must be importable (a module-level function):
    the processes are spawned, not forked. A process that fails makes a :class:`BPIMLError` naming it and its
    error (the launcher logs its traceback)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes, run_id=f"bpiml-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn")
    try:
        results = elastic_launch(config, entrypoint)(*args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        message = failure.message.get("message") if isinstance(failure.message, dict) else failure.message
        why = message or f"exit code {failure.exitcode}"
        raise BPIMLError(f"process {rank} of {processes} failed: {why}") from None
    return [results[rank] for rank in range(processes)]


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
