"""Frozen box-prompted teachers that turn coarse boxes into soft pseudo masks."""

from typing import TYPE_CHECKING

from .base import OutputKind, Teacher, TeacherOptions
from .settings import ENCODER_BACKENDS, Normalize, Resize, SamSettings
from .zoo import TEACHERS, create_teacher, default_settings

if TYPE_CHECKING:
    from .sam_teacher import SamTeacher

__all__ = ["ENCODER_BACKENDS", "TEACHERS", "Normalize", "OutputKind", "Resize", "SamSettings", "SamTeacher", "Teacher",
           "TeacherOptions", "create_teacher", "default_settings"]


def __getattr__(name: str):
    """``SamTeacher`` is imported on first use: it needs torch, which listing the teachers does not."""
    if name == "SamTeacher":
        from .sam_teacher import SamTeacher

        return SamTeacher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
