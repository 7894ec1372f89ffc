"""Letting the student say which member of a copied pair was pasted.

The detector finds both the original and its copy; only the copy is a manipulation. The student's map tends to
be higher on the pasted member (it sees its edges and, in JPEGs, a block grid out of step with the photo's), so
the member with the higher mean probability is taken as the copy; when both score alike, both are kept. A found
copy is strong evidence of where the manipulation is, so the map elsewhere is scaled down
(``CopyMoveSettings.outside_weight``): what the student marks elsewhere is most often a salient genuine object.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from .detector import Copies, CopyMoveSettings

TIE = 0.02  # mean probabilities closer than this leave both members marked


def pasted_regions(probability: np.ndarray, copies: Copies) -> set[int]:
    """The member of each pair that the student's map favours (both members when it does not choose)."""
    work_height, work_width = copies.labels.shape
    if probability.shape != (work_height, work_width):
        # every step-th pixel first (a view): no full-size float32 copy of a float16 map of a huge photo
        step = max(1, min(probability.shape[0] // work_height, probability.shape[1] // work_width))
        probability = cv2.resize(np.asarray(probability[::step, ::step], np.float32), (work_width, work_height),
                                 interpolation=cv2.INTER_AREA)
    regions = sorted({r for pair in copies.pairs for r in pair})
    means = dict(zip(regions, ndimage.mean(probability, copies.labels, regions), strict=True))
    chosen: set[int] = set()
    for a, b in copies.pairs:
        if a == b or abs(means[a] - means[b]) < TIE:
            chosen |= {a, b}
        else:
            chosen.add(a if means[a] > means[b] else b)
    return chosen


def fuse_copies(probability: np.ndarray, copies: Copies, settings: CopyMoveSettings) -> np.ndarray:
    """The student's map (float, the photo's size) with the pasted members of found pairs marked, changed in
    place and returned. Unchanged when no copy was found."""
    if not copies.found:
        return probability
    height, width = probability.shape
    chosen = copies.region_mask(pasted_regions(probability, copies)).astype(np.uint8)
    if chosen.shape != (height, width):
        chosen = cv2.resize(chosen, (width, height), interpolation=cv2.INTER_NEAREST)
    inside = chosen.view(bool)  # 0 / 1 bytes: the same memory read as booleans
    kept = probability[inside]
    probability *= settings.outside_weight
    probability[inside] = np.maximum(kept, settings.copy_probability)
    return probability
