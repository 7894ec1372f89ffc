"""Reading the small JSON settings files saved beside a model's weights (``copy_move.json``, ``map_gate.json``).

A missing file means the feature is off; a file that is there but broken stops the model from loading with one
error naming the file, never a traceback and never a silent default.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError
from ..fileio import read_json

T = TypeVar("T")


def read_model_settings(path: Path, parse: Callable[[dict[str, Any]], T], what: str) -> T | None:
    """``parse`` of the JSON object in ``path`` (None when there is no such file); ``what`` names its content in
    the error a file that is not such an object gives."""
    if not path.is_file():
        return None
    values = read_json(path, ConfigError)
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a JSON object of {what}")
    try:
        return parse(values)
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
