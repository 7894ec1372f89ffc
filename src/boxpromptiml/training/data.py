"""Training samples: image + soft target (+ the box region), fitted to the student's input.

``resize`` students see the (augmented) image squeezed to ``input_size``; ``native`` students
see an ``input_size`` crop of the image's own pixels (zero-padded when the image is smaller),
centred on a tampered pixel half of the time so that small regions are seen often enough.

The target of a tampered image comes from the configured supervision: the teacher's pseudo
mask (``pseudo``), the ground-truth mask (``full``) or the filled boxes (``box``); authentic
images get an all-zero target. The box region (1 inside any box; all ones when boxes are
unknown) feeds the optional outside-box penalty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from ..boxes.simulate import boxes_to_mask
from ..data.coco import attach_boxes, read_coco_boxes
from ..data.images import read_image, read_mask, read_probability_map
from ..data.readers import load_dataset
from ..data.samples import Sample
from ..errors import ConfigError, DataError
from ..student.inference import to_tensor
from ..student.inputs import image_to_input
from ..synthesis.online import OnlineSynthesisConfig, forge_online
from .augment import augment, native_crop
from .config import AugmentConfig, Supervision, TrainSource

SYNTHETIC = -1  # sampler index of an on-the-fly forgery


@dataclass(frozen=True)
class TrainItem:
    sample: Sample
    pseudo_label: Path | None  # the teacher's mask file (pseudo supervision, tampered images)


def collect_items(sources: tuple[TrainSource, ...], supervision: Supervision) -> list[TrainItem]:
    """Every training image with what its target needs; fails early on anything missing."""
    if not sources:
        raise ConfigError("no training data: give at least one --train dataset")
    items: list[TrainItem] = []
    for source in sources:
        dataset = load_dataset(source.dataset)
        if source.boxes:
            dataset = attach_boxes(dataset, read_coco_boxes(source.boxes), source=source.boxes)
        for sample in dataset:
            pseudo = None
            if sample.is_tampered and supervision is Supervision.PSEUDO:
                if not source.pseudo_labels:
                    raise ConfigError(f"{source.dataset}: pseudo supervision needs its --pseudo-labels folder")
                pseudo = Path(source.pseudo_labels) / f"{sample.name}.png"
                if not pseudo.is_file():
                    raise DataError(f"pseudo label {pseudo} of {sample.image} is missing; run bpiml pseudo-label")
            if sample.is_tampered and supervision is Supervision.FULL and sample.mask is None:
                raise DataError(f"full supervision needs a mask for {sample.image}")
            if sample.is_tampered and supervision is Supervision.BOX and not sample.boxes:
                raise DataError(f"box supervision needs boxes for {sample.image} (pass --boxes)")
            items.append(TrainItem(sample, pseudo))
    return items


def load_target(item: TrainItem, supervision: Supervision, shape: tuple[int, int],
                resize_masks: bool = False) -> np.ndarray:
    """Float32 target in [0, 1] at the image's size (``resize_masks``: ground-truth masks of another size
    are resized with nearest neighbour instead of failing)."""
    sample = item.sample
    if not sample.is_tampered:
        return np.zeros(shape, np.float32)
    if supervision is Supervision.PSEUDO:
        target = read_probability_map(item.pseudo_label)
    elif supervision is Supervision.FULL:
        target = read_mask(sample.mask, shape, sample.image, resize=resize_masks).astype(np.float32)
    else:
        target = boxes_to_mask(sample.boxes or (), shape)
    if target.shape != shape:
        raise DataError(f"target for {sample.image} is {target.shape[::-1]} but the image is {shape[::-1]}")
    return target


def map_to_tensor(array: np.ndarray, size: int) -> torch.Tensor:
    return torch.from_numpy(cv2.resize(array.astype(np.float32), (size, size),
                                       interpolation=cv2.INTER_LINEAR))[None]


class TrainingSet(TorchDataset):
    """Augmented (image, target, region, label) tensors for the training loop.

    Indexed by ``(epoch, draw, index)`` keys (see :class:`EpochSampler`): the augmentation of a
    draw depends only on the seed, the epoch and the draw's position, so a resumed run sees the
    same samples and the same item drawn twice in an epoch is augmented differently.
    """

    def __init__(self, items: list[TrainItem], supervision: Supervision, size: int,
                 augment_config: AugmentConfig | None, seed: int = 0, native: bool = False,
                 photos: list[Path] | None = None, resize_masks: bool = False,
                 synthesis: OnlineSynthesisConfig | None = None) -> None:
        self.items, self.supervision, self.size, self.native = items, supervision, size, native
        self.augment_config, self.seed = augment_config, seed
        self.photos = photos or []  # hosts and donors of on-the-fly forgeries (index SYNTHETIC)
        self.resize_masks = resize_masks
        self.synthesis = synthesis or OnlineSynthesisConfig()
        self.crop_grid = augment_config.crop_grid if augment_config is not None else 1

    def __len__(self) -> int:
        return len(self.items)

    def _item(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """(image, target, box region, tampered) of a stored item, or of a fresh forgery."""
        if index == SYNTHETIC:
            host, donor = (self.photos[int(i)] for i in rng.integers(0, len(self.photos), 2))
            forgery = forge_online(read_image(host), read_image(donor), rng, self.synthesis)
            mask = forgery.mask.astype(np.float32)
            return forgery.image, mask, np.ones_like(mask), True
        item = self.items[index]
        image = read_image(item.sample.image)
        shape = image.shape[:2]
        target = load_target(item, self.supervision, shape, self.resize_masks)
        region = boxes_to_mask(item.sample.boxes, shape) if item.sample.boxes else np.ones(shape, np.float32)
        return image, target, region, item.sample.is_tampered

    def __getitem__(self, key: tuple[int, int, int] | int) -> dict[str, torch.Tensor | str]:
        """The sample of ``key``. An item whose image or target cannot be read is replaced by the next
        readable one, and named in the sample's ``skipped`` entry, so one bad file never stops a run."""
        epoch, draw, index = key if isinstance(key, tuple) else (0, key, key)
        rng = np.random.default_rng([self.seed, epoch, draw])
        skipped = ""
        for attempt in range(min(len(self.items), 8)):
            try:
                image, target, region, tampered = self._item(index, rng)
                break
            except DataError as exc:
                if index == SYNTHETIC or attempt == min(len(self.items), 8) - 1:
                    raise
                skipped = skipped or f"{self.items[index].sample.name}: {exc}"
                index = (index + 1) % len(self.items)
        if self.native:
            image, target, region = native_crop([image, target, region], self.size, rng, grid=self.crop_grid)
        if self.augment_config is not None:
            image, target, region = augment(image, target, region, self.augment_config, rng, crop=not self.native)
        if self.native:
            tensors = to_tensor(image), torch.from_numpy(target)[None], torch.from_numpy(region)[None]
        else:
            tensors = (image_to_input(image, self.size), map_to_tensor(target, self.size),
                       map_to_tensor(region, self.size))
        return {"image": tensors[0], "target": tensors[1], "region": tensors[2], "label": torch.tensor(float(tampered)),
                "skipped": skipped}


class EpochSampler(torch.utils.data.Sampler):
    """``samples_per_epoch`` keys ``(epoch, draw, index)`` per epoch: shuffled passes over the
    items, as many as the budget needs (the last one partial), seeded by (seed, epoch). A
    ``synthetic_fraction`` of the draws are fresh forgeries (index ``SYNTHETIC``) instead."""

    def __init__(self, n_items: int, samples_per_epoch: int, seed: int, synthetic_fraction: float = 0.0,
                 rank: int = 0, world: int = 1, global_batch: int = 1) -> None:
        self.n_items, self.samples_per_epoch, self.seed, self.epoch = n_items, samples_per_epoch, seed, 0
        self.synthetic_fraction = synthetic_fraction
        # data parallelism: this process takes its slice of every global batch (the same keys in the same order
        # as one process would see them, split over ``world`` processes)
        self.rank, self.world, self.global_batch = rank, world, global_batch

    def __len__(self) -> int:
        return self.samples_per_epoch // self.world

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        passes = -(-self.samples_per_epoch // self.n_items)
        order = np.concatenate([rng.permutation(self.n_items) for _ in range(passes)])[: self.samples_per_epoch]
        if self.synthetic_fraction > 0:
            order = np.where(rng.random(order.size) < self.synthetic_fraction, SYNTHETIC, order)
        keys = [(self.epoch, draw, int(index)) for draw, index in enumerate(order)]
        if self.world > 1:
            local = self.global_batch // self.world
            keys = [k for position, k in enumerate(keys) if (position % self.global_batch) // local == self.rank]
        return iter(keys)
