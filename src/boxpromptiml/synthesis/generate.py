"""`bpiml synthesize`: tampered images with exact masks and boxes, made from segmented photos.

Regions come from the human segmentations (BSDS500 label maps), so forged regions have object
shapes, as in real forgeries. Image ``i`` depends only on (seed, i) and the source list, so a
run is reproducible and an interrupted run can be re-done image by image. Authentic images go
through the same post-processing as tampered ones, so the model cannot tell them apart by
compression alone.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..boxes.simulate import BoxSimulationConfig, simulate_boxes
from ..data.bsds import BSDS_SPLITS, SegmentedImage, aligned_label_map, read_bsds500
from ..data.coco import write_coco_boxes
from ..data.degrade import gaussian_blur, gaussian_noise, rescale
from ..data.images import PathLike, encode_png, read_image, write_image
from ..data.readers import read_imdl_json
from ..data.samples import Box, Dataset
from ..errors import ConfigError, DataError
from ..fileio import write_bytes_atomic, write_json_atomic
from ..runner import run_per_sample
from .forgeries import Forgery, PasteParams, forge

log = logging.getLogger(__name__)
KINDS = ("splice", "copy_move", "removal")


@dataclass(frozen=True)
class PostProcessing:
    """Degradations drawn at random after forging (each independently)."""

    resize_probability: float = 0.2
    resize_range: tuple[float, float] = (0.6, 0.95)
    blur_probability: float = 0.1
    blur_kernels: tuple[int, ...] = (3, 5)
    noise_probability: float = 0.1
    noise_sigma: tuple[float, float] = (1.0, 5.0)
    jpeg_probability: float = 0.8  # saved as JPEG at a random quality, otherwise lossless PNG
    jpeg_quality: tuple[int, int] = (65, 100)


@dataclass(frozen=True)
class SynthesisConfig:
    """What to make. Defaults: half splicing, 30% copy-move, 20% removal, regions 0.5-25% of the image."""

    n_tampered: int = 400
    n_authentic: int = 100
    kind_weights: dict[str, float] = field(default_factory=lambda: {"splice": 0.5, "copy_move": 0.3, "removal": 0.2})
    min_region: float = 0.005  # smallest region, as a fraction of the image area
    max_region: float = 0.25  # largest spliced / copied region
    max_removal_region: float = 0.08  # inpainting cannot fill large holes plausibly
    max_extra_segments: int = 2  # a region is one segment plus up to this many touching ones
    paste: PasteParams = field(default_factory=PasteParams)
    post: PostProcessing = field(default_factory=PostProcessing)
    boxes: BoxSimulationConfig = field(default_factory=BoxSimulationConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.kind_weights) - set(KINDS)
        if unknown:
            raise ConfigError(f"unknown forgery kind(s) {sorted(unknown)}; known: {', '.join(KINDS)}")
        if sum(self.kind_weights.values()) <= 0:
            raise ConfigError("kind weights must not all be zero")
        if self.n_tampered < 0 or self.n_authentic < 0:
            raise ConfigError("image counts must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


def pick_region(labels: np.ndarray, rng: np.random.Generator, min_fraction: float, max_fraction: float,
                max_extra: int) -> np.ndarray | None:
    """An object-shaped region: one segment of the label map, grown by up to ``max_extra`` touching
    segments, with an area in [min_fraction, max_fraction] of the image. None if there is none."""
    total = labels.size
    ids, counts = np.unique(labels, return_counts=True)
    fractions = counts / total
    candidates = ids[(fractions >= min_fraction / 2) & (fractions <= max_fraction)]
    if candidates.size == 0:
        return None
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(8):
        region = labels == rng.choice(candidates)
        for _ in range(int(rng.integers(0, max_extra + 1))):
            ring = cv2.dilate(region.astype(np.uint8), kernel).astype(bool) & ~region
            neighbours = np.unique(labels[ring])
            if neighbours.size == 0:
                break
            grown = region | (labels == rng.choice(neighbours))
            if grown.sum() / total > max_fraction:
                break
            region = grown
        if min_fraction <= region.sum() / total <= max_fraction:
            return _largest_component(region)
    return None


def _largest_component(region: np.ndarray) -> np.ndarray:
    """Keep the biggest connected piece (segments can be split; a forger cuts one piece)."""
    count, components = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    if count <= 2:
        return region
    sizes = np.bincount(components.ravel())[1:]
    return components == (1 + int(sizes.argmax()))


def post_process(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, post: PostProcessing
                 ) -> tuple[np.ndarray, np.ndarray, int | None, dict]:
    """Random resize / blur / noise; returns the image, the mask, the JPEG quality to save with
    (None: PNG) and the record of what was applied."""
    record: dict = {}
    if rng.random() < post.resize_probability:
        scale = float(rng.uniform(*post.resize_range))
        image, mask = rescale(image, scale, mask)
        record["resize"] = round(scale, 3)
    if rng.random() < post.blur_probability:
        kernel = int(rng.choice(post.blur_kernels))
        image = gaussian_blur(image, kernel)
        record["blur"] = kernel
    if rng.random() < post.noise_probability:
        sigma = float(rng.uniform(*post.noise_sigma))
        image = gaussian_noise(image, sigma, rng)
        record["noise"] = round(sigma, 2)
    quality = int(rng.integers(post.jpeg_quality[0], post.jpeg_quality[1] + 1)) \
        if rng.random() < post.jpeg_probability else None
    record["jpeg"] = quality
    return image, mask, quality, record


def forge_one(index: int, sources: list[SegmentedImage], config: SynthesisConfig) -> Forgery:
    """Tampered image ``index``: kind drawn by weight, target / donor / region drawn from the sources."""
    rng = np.random.default_rng([config.seed, index])
    kinds = list(config.kind_weights)
    weights = np.array([config.kind_weights[k] for k in kinds], float)
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    for attempt in range(10):
        target_src = sources[int(rng.integers(len(sources)))]
        target = read_image(target_src.image)
        record = {"kind": kind, "target": target_src.image.name}
        if kind == "splice":
            donor_src = sources[int(rng.integers(len(sources)))]
            if donor_src.image == target_src.image:
                continue
            donor = read_image(donor_src.image)
            region = pick_region(aligned_label_map(donor_src, donor), rng, config.min_region, config.max_region,
                                 config.max_extra_segments)
            forgery = None if region is None else forge(kind, target, region, rng, config.paste, donor)
            record["donor"] = donor_src.image.name
        else:
            largest = config.max_removal_region if kind == "removal" else config.max_region
            region = pick_region(aligned_label_map(target_src, target), rng, config.min_region, largest,
                                 config.max_extra_segments)
            if region is None:
                continue
            forgery = forge(kind, target, region, rng, config.paste)
        if forgery is not None and forgery.mask.any():
            forgery.record = {**record, **forgery.record, "attempts": attempt + 1}
            return forgery
    raise DataError(f"could not forge image {index} ({kind}) from the sources after 10 attempts")


def _encode(image: np.ndarray, quality: int | None) -> tuple[bytes, str]:
    if quality is None:
        return encode_png(image), ".png"
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DataError("JPEG encoding failed")
    return data.tobytes(), ".jpg"


def synthesize(bsds_root: PathLike, out_dir: PathLike, config: SynthesisConfig | None = None,
               splits: tuple[str, ...] = ("train", "val"), prefix: str = "syn") -> Dataset:
    """Write ``Tp/ Gt/ Au/``, ``dataset.json`` (IMDL-BenCo), ``boxes.json`` (COCO, simulated from
    the exact masks) and ``synthesis.json`` (config + what was done to each image) to ``out_dir``."""
    config = config or SynthesisConfig()
    bad = set(splits) - set(BSDS_SPLITS)
    if bad:
        raise ConfigError(f"unknown BSDS split(s) {sorted(bad)}; known: {', '.join(BSDS_SPLITS)}")
    sources = read_bsds500(bsds_root, tuple(splits))
    out = Path(out_dir)
    records: dict[str, dict] = {}
    pairs: list[list[str]] = []
    boxes: dict[str, list[Box]] = {}
    sizes: dict[str, tuple[int, int]] = {}

    def make_tampered(index: int) -> None:
        name = f"{prefix}_tp_{index:05d}"
        forgery = forge_one(index, sources, config)
        rng = np.random.default_rng([config.seed, index, 1])
        image, mask, quality, post = post_process(forgery.image, forgery.mask, rng, config.post)
        data, ext = _encode(image, quality)
        write_bytes_atomic(out / "Tp" / f"{name}{ext}", data)
        write_image(out / "Gt" / f"{name}.png", mask.astype(np.uint8) * 255)
        pairs.append([f"Tp/{name}{ext}", f"Gt/{name}.png"])
        boxes[name] = simulate_boxes(mask, config.boxes, np.random.default_rng([config.seed, index, 2]))
        sizes[name] = mask.shape
        records[name] = {**forgery.record, **post, "tampered_fraction": round(float(mask.mean()), 4)}

    def make_authentic(index: int) -> None:
        name = f"{prefix}_au_{index:05d}"
        rng = np.random.default_rng([config.seed, index, 3])
        src = sources[int(rng.integers(len(sources)))]
        image = read_image(src.image)
        image, _, quality, post = post_process(image, np.zeros(image.shape[:2], bool), rng, config.post)
        data, ext = _encode(image, quality)
        write_bytes_atomic(out / "Au" / f"{name}{ext}", data)
        pairs.append([f"Au/{name}{ext}", "Negative"])
        sizes[name] = image.shape[:2]
        records[name] = {"kind": "authentic", "source": src.image.name, **post}

    tampered = run_per_sample(range(config.n_tampered), make_tampered, desc="synthesize tampered",
                              total=config.n_tampered, name_of=lambda i: f"{prefix}_tp_{i:05d}")
    authentic = run_per_sample(range(config.n_authentic), make_authentic, desc="synthesize authentic",
                               total=config.n_authentic, name_of=lambda i: f"{prefix}_au_{i:05d}")
    failures = {**tampered.failures, **authentic.failures}
    if failures:
        log.warning("%d image(s) could not be made: %s", len(failures), "; ".join(failures.values()))
    list_path = write_json_atomic(out / "dataset.json", pairs)
    dataset = read_imdl_json(list_path)
    write_coco_boxes(out / "boxes.json", dataset,
                     boxes_by_name=boxes, sizes_by_name=sizes,
                     info={"description": "boxes simulated from the exact masks of synthesized forgeries",
                           "simulation": config.boxes.to_dict()})
    write_json_atomic(out / "synthesis.json", {
        "bsds_root": str(bsds_root), "splits": list(splits), "n_sources": len(sources), "config": config.to_dict(),
        "images": records, "failures": failures,
    })
    return dataset
