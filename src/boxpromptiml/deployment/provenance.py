"""What an analyst needs to cite an analysis: which file, which model, which software.

A report is evidence only if someone else can tell exactly what was analysed and by what: the file's
SHA-256 and size (the photo as received, before any decoding), its format and the metadata that
says where it came from (EXIF camera, software, dates), the model by name and by the hash of its
weights (never by a path on the analyst's machine), and the versions of the software.
"""

from __future__ import annotations

import hashlib
import io
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from PIL import ExifTags, Image

# EXIF fields that tell where a photo came from and what touched it, in the order a report lists them
EXIF_FIELDS = ("Make", "Model", "Software", "DateTime", "DateTimeOriginal", "DateTimeDigitized", "Artist",
               "Copyright", "ImageDescription", "HostComputer")


@dataclass(frozen=True)
class FileFacts:
    """The analysed file as received."""

    name: str
    size_bytes: int
    sha256: str
    format: str | None = None  # as Pillow identifies the content (not the file name's extension)
    metadata: dict[str, str] = field(default_factory=dict)  # EXIF summary, JPEG quality hints

    def rows(self) -> dict[str, str]:
        rows = {"file": self.name, "size": f"{self.size_bytes:,} bytes", "SHA-256": self.sha256,
                "format": self.format or "unknown"}
        rows.update(self.metadata or {"metadata": "none (no EXIF)"})
        return rows


def file_facts(data: bytes, name: str) -> FileFacts:
    """Facts of a file's bytes: hash, size, format and metadata (read from the header; nothing is decoded)."""
    facts: dict[str, str] = {}
    kind = None
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            exif = image.getexif()
            tags = {ExifTags.TAGS.get(key, str(key)): value for key, value in exif.items()}
            tags.update({ExifTags.TAGS.get(k, str(k)): v for k, v in exif.get_ifd(ExifTags.IFD.Exif).items()})
            for key in EXIF_FIELDS:
                if key in tags and str(tags[key]).strip():
                    facts[f"EXIF {key}"] = str(tags[key]).strip()[:200]
            tables = getattr(image, "quantization", None)
            if tables:  # the first entries of the luma table: a hint of the quality it was last saved at
                luma = list(tables.get(0, []))[:4]
                facts["JPEG tables"] = f"{len(tables)}; luma starts {luma}"
    except Exception:  # noqa: BLE001 - a file Pillow cannot read still gets its hash and size
        pass
    return FileFacts(Path(name).name, len(data), hashlib.sha256(data).hexdigest(), kind, facts)


def weights_identity(model_path: Path | None) -> dict[str, str]:
    """The model by name and weights hash (``model.safetensors`` or the ``.onnx`` file), without its path."""
    if model_path is None:
        return {"model": "(in memory)"}
    path = Path(model_path)
    weights = path if path.is_file() else next((path / n for n in ("model.safetensors", "best/model.safetensors")
                                                if (path / n).is_file()), None)
    name = path.name if path.name not in ("best", "last") else f"{path.resolve().parent.name}/{path.name}"
    identity = {"model": name}
    if weights is not None:
        digest = hashlib.sha256()
        with weights.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        identity["weights SHA-256"] = digest.hexdigest()
    return identity


def software_versions() -> dict[str, str]:
    """The versions that produced the numbers."""
    versions = {"boxpromptiml": _version("boxpromptiml"), "python": platform.python_version()}
    for package in ("torch", "onnxruntime", "numpy", "opencv-python-headless", "pillow"):
        found = _version(package)
        if found != "not installed":
            versions[package] = found
    return versions


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
