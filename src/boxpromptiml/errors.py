"""Exceptions raised by BoxPromptIML; each message names the file(s) involved."""

from __future__ import annotations


class BPIMLError(Exception):
    """Base class: errors the CLI reports as one clear line instead of a traceback."""


class DataError(BPIMLError):
    """A dataset, image, mask or annotation file is missing, unreadable or inconsistent."""


class ConfigError(BPIMLError):
    """An option or configuration value is invalid."""


class TrainingError(BPIMLError):
    """Training cannot go on (e.g. the loss became NaN); the checkpoints written so far are kept."""
