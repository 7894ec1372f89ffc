"""Reading a dataset leniently, so that `bpiml check` can list every problem in one pass.

The readers stop at the first dataset-level error (a missing file, two images with one name, a box
on an unknown COCO image), which is right for `train` and `evaluate`. Inside
:func:`collecting_problems` they record each such problem instead, leave the offending entry out
and go on, so the check can report all of them and still look at every readable image.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ..errors import DataError

_collected: ContextVar[list[tuple[str, str]] | None] = ContextVar("bpiml_reading_problems", default=None)


@contextmanager
def collecting_problems() -> Iterator[list[tuple[str, str]]]:
    """Within the block, readers append ``(kind, line)`` to the yielded list instead of raising."""
    problems: list[tuple[str, str]] = []
    token = _collected.set(problems)
    try:
        yield problems
    finally:
        _collected.reset(token)


def problem(kind: str, line: str, error: str | None = None) -> None:
    """Record a problem when collecting; otherwise raise ``error`` (a :class:`DataError`) if one is given."""
    problems = _collected.get()
    if problems is not None:
        problems.append((kind, line))
    elif error is not None:
        raise DataError(error)


def collecting() -> bool:
    return _collected.get() is not None
