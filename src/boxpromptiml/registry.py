"""One registry mechanism for everything chosen by name (teachers, student backbones).

Like timm's: tiny entry functions registered under a name; one front door creates them; an
unknown name fails with the list of known ones and the closest match.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of one kind of object."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._summaries: dict[str, str] = {}

    def register(self, name: str, summary: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``."""

        def add(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            self._summaries[name] = summary or (factory.__doc__ or "").strip().splitlines()[0]
            return factory

        return add

    def names(self) -> list[str]:
        return list(self._factories)

    def summaries(self) -> dict[str, str]:
        return dict(self._summaries)

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._factories:
            close = difflib.get_close_matches(name, self._factories, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown {self.kind} {name!r}{hint}; known: {', '.join(self._factories)}")
        return self._factories[name]

    def create(self, name: str, **kwargs) -> T:
        return self.get(name)(**kwargs)
