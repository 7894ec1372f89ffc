"""Frozen box-prompted teachers that turn coarse boxes into soft pseudo masks."""

from .base import OutputKind, Teacher, TeacherOptions
from .sam_teacher import Normalize, Resize, SamSettings, SamTeacher
from .zoo import TEACHERS, create_teacher, default_settings

__all__ = ["TEACHERS", "Normalize", "OutputKind", "Resize", "SamSettings", "SamTeacher", "Teacher",
           "TeacherOptions", "create_teacher", "default_settings"]
