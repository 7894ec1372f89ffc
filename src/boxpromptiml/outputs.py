"""Guards that keep a command's outputs off the user's own files.

Every command that writes checks, before it writes anything, that its output is not one of its
inputs, does not hold one, and does not lie inside an input folder (``predict photos/ --out
photos/`` or ``pseudo-label ... -o data/Gt`` would replace the user's images or masks). It also
refuses to write into a folder, or over a file, that it did not make itself, unless
``--overwrite`` says so: folders it makes carry a small marker file, and files carry a
``generator`` entry.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError
from .fileio import write_json_atomic

MARKER = ".bpiml-output.json"
OVERWRITE_HINT = "choose another output, or pass --overwrite to write there anyway"


def check_not_an_input(out: Path, inputs: Iterable[Path], what: str = "output") -> None:
    """Refuse ``out`` when it is an input, holds an input, or lies inside an input folder."""
    target = Path(out).resolve()
    for path in inputs:
        source = Path(path).resolve()
        if target == source:
            raise ConfigError(f"the {what} {out} is one of the inputs; it would be overwritten. Choose another output")
        if target in source.parents:
            raise ConfigError(f"the {what} {out} holds the input {path}, which could be overwritten. "
                              "Choose another output")
        if source.is_dir() and source in target.parents:
            raise ConfigError(f"the {what} {out} lies inside the input folder {path}. Choose another output")


def claim_output_dir(out: Path, command: str, overwrite: bool = False, evidence: tuple[str, ...] = ()) -> None:
    """Make sure ``out`` is new, empty, or a folder that this same ``command`` wrote (its marker, or one of the
    ``evidence`` files only ``command`` writes); then mark it. Another command's outputs count as foreign:
    ``pseudo-label -o`` a folder of ``predict`` maps would replace them under the wrong marker."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"the output folder {out} is a file")
    writer = marker_writer(out)
    own_files = (MARKER, *evidence)
    foreign = out.is_dir() and any(p for p in out.iterdir()
                                   if p.name not in own_files and not (p.name.startswith(".") and p.suffix == ".lock"))
    if foreign and writer is not None and writer != f"bpiml {command}" and not overwrite:
        raise ConfigError(f"{out} holds the outputs of {writer}; bpiml {command} would write over them. "
                          f"{OVERWRITE_HINT}")
    ours = writer == f"bpiml {command}" or (writer is None and any((out / name).is_file() for name in evidence))
    if foreign and not ours and not overwrite:
        raise ConfigError(f"{out} already holds files that bpiml {command} did not write; {OVERWRITE_HINT}")
    if writer != f"bpiml {command}":
        write_json_atomic(out / MARKER, {"written_by": f"bpiml {command}"})


def marker_writer(folder: Path) -> str | None:
    """The command recorded in ``folder``'s marker ("bpiml predict"), or None without a readable marker."""
    try:
        written_by = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8")).get("written_by")
    except (OSError, ValueError, AttributeError):
        return None
    return str(written_by) if written_by else None


def claim_output_file(out: Path, overwrite: bool = False) -> None:
    """Make sure the JSON file ``out`` is new or was written by bpiml (its ``info.generator`` says so)."""
    out = Path(out)
    if out.exists() and not overwrite:
        try:
            info = json.loads(out.read_text(encoding="utf-8")).get("info", {})
        except (OSError, ValueError, AttributeError):
            info = {}
        if not str(info.get("generator", "")).startswith("bpiml"):
            raise ConfigError(f"{out} exists and was not written by bpiml; {OVERWRITE_HINT}")


def dataset_inputs(dataset) -> list[Path]:
    """Every file a dataset reads: its images and masks."""
    return [p for s in dataset for p in (s.image, s.mask) if p is not None]


@contextmanager
def removed_if_nothing_made(out: Path, made: tuple[str, ...]) -> Iterator[None]:
    """Around a command that creates ``out``: when it fails before any of ``made`` (the entries that hold real
    results) exists, the folder it created is removed again, so a refused start leaves no half-made output
    behind. A folder that existed before is never touched."""
    out = Path(out)
    existed = out.exists()
    try:
        yield
    except BaseException:
        if not existed and out.is_dir() and not any(_holds_something(out / name) for name in made):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _holds_something(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


@contextmanager
def folder_lock(folder: Path, name: str = "bpiml") -> Iterator[None]:
    """Hold ``folder/.NAME.lock`` while writing there: a second process on the same folder gets a clear
    error naming the holder. The lock is the OS's (flock), so it is released even when its holder is
    killed: a stale lock file from a dead process never blocks a later run."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{name}.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(f"{folder} is being written by {holder}; wait for it to finish or stop it "
                              f"(lock: {path})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"bpiml pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
