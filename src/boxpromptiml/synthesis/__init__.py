"""Training data synthesis: splicing, copy-move and removal forgeries with exact masks and boxes."""

from .forgeries import Forgery, PasteParams, copy_move, forge, paste_region, remove, splice
from .generate import KINDS, PostProcessing, SynthesisConfig, forge_one, pick_region, post_process, synthesize

__all__ = ["KINDS", "Forgery", "PasteParams", "PostProcessing", "SynthesisConfig", "copy_move", "forge", "forge_one",
           "paste_region", "pick_region", "post_process", "remove", "splice", "synthesize"]
