"""Readers for the dataset layouts IML users already have, all producing :class:`Dataset`.

- IMDL-BenCo JSON: ``[[image, mask], ...]``; mask ``"Negative"`` marks an authentic image.
- ForensicHub JSON: ``[{"path": ..., "mask": ..., "label": 0|1}, ...]``.
- A folder with ``Tp/`` (tampered), ``Gt/`` (masks, matched by stem) and optional ``Au/``.
- A BSDS500-style folder (``images/<split>/``, ``segments/<split>/``): natural, authentic images.
Relative paths in JSON files are relative to the JSON file's folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..fileio import read_json as read_json_file
from .images import IMAGE_EXTENSIONS, PathLike
from .problems import collecting, problem
from .samples import Dataset, Label, Sample

log = logging.getLogger(__name__)

IMDL_NEGATIVE = "Negative"
# Suffixes that mask files commonly add to their image's stem (CASIA v2 uses "_gt").
MASK_STEM_SUFFIXES = ("", "_gt", "_GT", "_mask", "-gt", "-mask")
MAX_LISTED = 10


def load_dataset(spec: PathLike) -> Dataset:
    """Read a dataset from a JSON list (IMDL-BenCo or ForensicHub) or a folder; format detected."""
    path = Path(spec)
    if not path.exists():
        raise DataError(f"dataset not found: {path}")
    if path.is_dir():
        if (path / "Tp").is_dir():
            return read_tp_gt_folder(path)
        if (path / "images").is_dir() and (path / "segments").is_dir():
            from .bsds import read_bsds_as_dataset

            return read_bsds_as_dataset(path)
        raise DataError(
            f"{path}: unknown folder layout; expected Tp/ (+ Gt/, Au/) or images/ + segments/ (BSDS500), "
            "or pass a JSON list file"
        )
    entries = read_json(path)
    if isinstance(entries, dict) and "annotations" in entries:
        raise DataError(f"{path} is a COCO box file, not a dataset list; pass it with --boxes")
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of samples, got {type(entries).__name__}")
    if not entries:
        raise DataError(f"{path}: contains no samples (empty list)")
    if all(isinstance(e, dict) for e in entries):
        return read_forensichub_json(path, entries)
    return read_imdl_json(path, entries)


def load_datasets(specs: list[PathLike]) -> Dataset:
    """Read and concatenate several datasets (e.g. ``test.json`` + ``authentic.json``)."""
    return Dataset.concat([load_dataset(s) for s in specs])


def read_imdl_json(path: PathLike, entries: list[Any] | None = None) -> Dataset:
    """Read an IMDL-BenCo list of ``[image, mask]`` pairs."""
    path = Path(path)
    entries = read_json(path) if entries is None else entries
    base = path.parent
    samples = []
    for i, entry in enumerate(entries):
        if not (isinstance(entry, list | tuple) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
            raise DataError(f"{path}: entry {i} is {entry!r}; expected [image_path, mask_path or \"Negative\"]")
        image, mask = entry
        if mask == IMDL_NEGATIVE:
            samples.append(Sample(_resolve(base, image), None, Label.AUTHENTIC))
        else:
            samples.append(Sample(_resolve(base, image), _resolve(base, mask), Label.TAMPERED))
    return _dataset(samples, base, f"{path}")


def read_forensichub_json(path: PathLike, entries: list[Any] | None = None) -> Dataset:
    """Read a ForensicHub list of ``{"path", "mask", "label"}`` objects (mask may be null)."""
    path = Path(path)
    entries = read_json(path) if entries is None else entries
    base = path.parent
    samples = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise DataError(f"{path}: entry {i} is {entry!r}; expected an object with a \"path\" string")
        mask = entry.get("mask")
        if mask in (None, "", IMDL_NEGATIVE):
            mask = None
        elif not isinstance(mask, str):
            raise DataError(f"{path}: entry {i} has mask {mask!r}; expected a path string or null")
        label = entry.get("label", 1 if mask else 0)
        if label not in (0, 1):
            raise DataError(f"{path}: entry {i} has label {label!r}; expected 0 (authentic) or 1 (tampered)")
        samples.append(Sample(_resolve(base, entry["path"]), _resolve(base, mask) if mask else None, Label(label)))
    return _dataset(samples, base, f"{path}")


def read_tp_gt_folder(root: PathLike) -> Dataset:
    """Read ``Tp/`` + ``Gt/`` (+ optional ``Au/``); masks matched by stem, extension may differ.

    A tampered image without a mask is kept (it can still be annotated with boxes) and logged.
    """
    root = Path(root)
    tampered = _list_images(root / "Tp")
    if not tampered:
        raise DataError(f"{root / 'Tp'}: no images found (extensions: {', '.join(IMAGE_EXTENSIONS)})")
    masks = _masks_by_stem(root / "Gt")
    samples, unmatched = [], []
    for image in tampered:
        mask = next((masks[image.stem + s] for s in MASK_STEM_SUFFIXES if image.stem + s in masks), None)
        if mask is None:
            unmatched.append(image.name)
        samples.append(Sample(image, mask, Label.TAMPERED))
    if unmatched and masks:
        log.warning("%s: %d tampered image(s) have no mask in Gt/ (e.g. %s)", root, len(unmatched),
                    ", ".join(unmatched[:MAX_LISTED]))
    used = {s.mask for s in samples}
    for mask in sorted(set(masks.values()) - used):
        problem("mask without a tampered image in Tp/ (ignored)", str(mask))
    samples += [Sample(image, None, Label.AUTHENTIC) for image in _list_images(root / "Au")]
    return _dataset(samples, root, f"{root}")


def _masks_by_stem(folder: Path) -> dict[str, Path]:
    masks: dict[str, Path] = {}
    for mask in _list_images(folder):
        if mask.stem in masks:
            problem("two masks share a stem (the first is used)", f"{folder}: {masks[mask.stem].name}, {mask.name}",
                    f"{folder}: two masks share the stem {mask.stem!r} ({masks[mask.stem].name}, {mask.name})")
            continue
        masks[mask.stem] = mask
    return masks


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )


def read_json(path: Path) -> Any:
    """Parse a dataset's JSON file, with errors that name it."""
    return read_json_file(path, DataError)


def _resolve(base: Path, relative: str) -> Path:
    p = Path(relative).expanduser()
    return p if p.is_absolute() else base / p


def _checked(dataset: Dataset) -> Dataset:
    """Fail early, listing every referenced file that does not exist."""
    missing = [str(p) for s in dataset for p in (s.image, s.mask) if p is not None and not p.is_file()]
    if missing:
        listed = "\n  ".join(missing[:MAX_LISTED])
        more = f"\n  ... and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
        raise DataError(f"{dataset.source}: {len(missing)} referenced file(s) do not exist:\n  {listed}{more}")
    return dataset


def _dataset(samples: list[Sample], root: Path, source: str) -> Dataset:
    """The dataset of ``samples``, checked; when collecting problems (`bpiml check`), samples with a missing
    file or a name already taken are recorded and left out instead."""
    if collecting():
        kept, seen = [], {}
        for sample in samples:
            missing = [p for p in (sample.image, sample.mask) if p is not None and not p.is_file()]
            for path in missing:
                problem("referenced file does not exist", f"{source}: {path}")
            if sample.name in seen:
                problem("image name occurs more than once (outputs are stored per file stem)",
                        f"{sample.name}: {seen[sample.name]} and {sample.image}")
            elif not missing:
                seen[sample.name] = sample.image
                kept.append(sample)
        samples = kept
        if not samples:
            raise DataError(f"{source}: no usable sample left")
    return _checked(Dataset(samples, root, source))


def write_imdl_json(dataset: Dataset, path: PathLike) -> Path:
    """Write ``dataset`` as an IMDL-BenCo list; paths relative to the file's folder where possible."""
    from ..fileio import write_json_atomic

    path = Path(path)
    base = path.parent.resolve()

    def name(file: Path) -> str:
        return Path(os.path.relpath(file.resolve(), base)).as_posix()

    entries = [[name(s.image), name(s.mask) if s.mask is not None else IMDL_NEGATIVE] for s in dataset]
    return write_json_atomic(path, entries, indent=None)
