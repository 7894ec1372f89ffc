"""The student model shipped inside the package (once a benchmark has produced one)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from ..errors import ConfigError

SHIPPED_PACKAGE = "boxpromptiml.deployment"
SHIPPED_FOLDER = "shipped_model"


def shipped_model_dir() -> Path:
    """Folder of the shipped checkpoint; a clear error while none ships yet."""
    folder = Path(str(importlib.resources.files(SHIPPED_PACKAGE).joinpath(SHIPPED_FOLDER)))
    if not (folder / "model.safetensors").is_file():
        raise ConfigError("no shipped model in this version of boxpromptiml yet: pass --model RUN_DIR "
                          "(a folder written by bpiml train)")
    return folder
