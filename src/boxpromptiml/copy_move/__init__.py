"""Copy-move detection: regions of one photo that are copies of each other.

The student reads traces that a pasted region brings with it (compression history, edges). A region copied
within the same photo brings none: its colours, noise and JPEG history are those of the photo. What gives it
away is that two places in one photo match, patch for patch, under one geometric map. This package finds such
pairs without learning (rotation-invariant patch features, a PatchMatch nearest-neighbour field, offsets that
agree with a local affine map), and ``fusion`` lets the student's map say which member of a pair was pasted.
"""

from .detector import SEARCH_REVISION, Copies, CopyMoveSettings, find_copies, find_copies_in_working_copy, working_copy
from .fusion import fuse_copies

__all__ = ["SEARCH_REVISION", "Copies", "CopyMoveSettings", "find_copies", "find_copies_in_working_copy", "fuse_copies",
           "working_copy"]
