"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file behind.

Everything the user keeps (annotations, pseudo masks, caches, checkpoints) is written to a
temporary file in the destination folder and then renamed over the target, which POSIX
guarantees to be atomic on the same filesystem.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import BPIMLError, ConfigError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` in one rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _naming(exc, target) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _naming(exc, target) from exc
        raise
    return target


def _naming(exc: OSError, target: Path) -> OSError:
    """``exc`` as the same kind of error about ``target`` (a full disk otherwise names no file, or a temporary one)."""
    return type(exc)(exc.errno, exc.strerror or str(exc), str(target)) if exc.errno is not None else exc


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Serialise ``obj`` as JSON and write it atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def read_json(path: str | os.PathLike, error: type[BPIMLError] = ConfigError, hint: str = "") -> Any:
    """The JSON content of ``path``; a missing, unreadable, empty, non-UTF-8 or malformed file raises ``error``
    naming the file (followed by ``hint``, e.g. what to do about it), never a bare traceback."""
    path = Path(path)
    suffix = f"; {hint}" if hint else ""
    if not path.is_file():
        raise error(f"file not found: {path}{suffix}")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}{suffix}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{path} is damaged or not a JSON file (not UTF-8 text){suffix}") from exc
    if not text.strip():
        raise error(f"{path}: file is empty{suffix}")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise error(f"{path}: invalid JSON ({exc}){suffix}") from exc
