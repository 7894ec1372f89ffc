"""Pseudo labels: a teacher run over a dataset's boxes, cached as 8-bit soft masks."""

from .generate import MANIFEST_NAME, generate_pseudo_labels

__all__ = ["MANIFEST_NAME", "generate_pseudo_labels"]
