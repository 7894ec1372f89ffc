"""Demo forgeries made from the photographs bundled with scikit-image (nothing is downloaded).

The photos have no human segmentations, so object-shaped regions come from a graph-based
segmentation (Felzenszwalb); then the synthesis functions forge them exactly as for training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.degrade import limit_long_side
from ..errors import ConfigError
from ..synthesis import PasteParams, forge, pick_region

# (photo, forgery kind, donor photo for splicing)
DEMO_PLAN = (
    ("astronaut", "splice", "coffee"),
    ("chelsea", "copy_move", None),
    ("rocket", "removal", None),
    ("coffee", "splice", "chelsea"),
    ("coins", "copy_move", None),
    ("camera", "removal", None),
    ("astronaut", "removal", None),
    ("cat", "splice", "astronaut"),
)
LONG_SIDE = 512


@dataclass
class DemoImage:
    name: str
    kind: str
    image: np.ndarray
    mask: np.ndarray


def bundled_photo(name: str) -> np.ndarray:
    """An RGB uint8 photo from ``skimage.data`` (gray ones expanded), long side at most 512 px."""
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - a dependency, but say what to do
        raise ConfigError("the demo needs scikit-image: pip install scikit-image") from exc
    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
    return limit_long_side(image, LONG_SIDE)[0]


def segments(image: np.ndarray) -> np.ndarray:
    """A label map of object-like regions (Felzenszwalb graph segmentation)."""
    from skimage.segmentation import felzenszwalb

    return felzenszwalb(image, scale=300, sigma=0.8, min_size=400).astype(np.int32)


def make_demo_images(count: int, seed: int = 0) -> list[DemoImage]:
    """The first ``count`` forgeries of :data:`DEMO_PLAN`, each with its exact mask."""
    params = PasteParams(scale_range=(0.8, 1.2), max_rotation=15.0, feather_probability=0.0,
                         colour_match_probability=0.0)
    out = []
    for index, (target_name, kind, donor_name) in enumerate(DEMO_PLAN[:count]):
        target = bundled_photo(target_name)
        source = bundled_photo(donor_name) if kind == "splice" else target
        labels = segments(source)
        limit = 0.06 if kind == "removal" else 0.15
        forgery = None
        for attempt in range(20):
            rng = np.random.default_rng([seed, index, attempt])
            region = pick_region(labels, rng, 0.01, limit, 1)
            if region is None:
                continue
            forgery = forge(kind, target, region, rng, params, donor=source)
            if forgery is not None:
                break
        if forgery is None:
            raise ConfigError(f"could not make the {kind} demo image from {target_name}")
        out.append(DemoImage(f"{index + 1:02d}_{kind}_{target_name}", kind, forgery.image, forgery.mask))
    return out
