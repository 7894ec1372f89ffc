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
FUSION_BAND_ROWS = 512  # rows of the photo's map changed at a time


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
    # The mask is brought to the photo's size a band of rows at a time: whole, it and the values it selects cost
    # ~430 MB on a 12000 x 9000 photo. Columns are widened once by cv2 (analysis height x photo width, small) and
    # rows are picked by cv2's own nearest-neighbour row map, so every band is the rows of the full-size resize.
    wide = cv2.resize(chosen, (width, chosen.shape[0]), interpolation=cv2.INTER_NEAREST)
    rows = np.arange(chosen.shape[0], dtype=np.float32)[:, None]
    source_rows = cv2.resize(rows, (1, height), interpolation=cv2.INTER_NEAREST)[:, 0].astype(np.intp)
    for top in range(0, height, FUSION_BAND_ROWS):
        band = probability[top:top + FUSION_BAND_ROWS]  # a view: changed in place
        inside = wide[source_rows[top:top + FUSION_BAND_ROWS]].view(bool)  # 0 / 1 bytes read as booleans
        kept = band[inside]
        band *= settings.outside_weight
        band[inside] = np.maximum(kept, settings.copy_probability)
    return probability
