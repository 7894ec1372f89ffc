"""`bpiml boxes`: simulated coarse boxes for every tampered image of a dataset, as COCO JSON."""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.coco import write_coco_boxes
from ..data.images import PathLike, read_image, read_mask, write_probability_map
from ..data.samples import Box, Dataset, Sample
from ..errors import DataError
from ..runner import SampleRun, run_per_sample
from .simulate import BoxSimulationConfig, boxes_to_mask, rng_for, simulate_boxes

log = logging.getLogger(__name__)


def simulate_dataset_boxes(
    dataset: Dataset, config: BoxSimulationConfig, resize_masks: bool = False
) -> SampleRun[tuple[tuple[int, int], list[Box]]]:
    """(image size, boxes) per sample; authentic images get no boxes, unreadable ones fail.

    Images are decoded in full (not just their header) so that an annotation file never lists
    an image that later steps cannot read.
    """

    def step(sample: Sample) -> tuple[tuple[int, int], list[Box]]:
        size = read_image(sample.image).shape[:2]
        if not sample.is_tampered:
            return size, []
        if sample.mask is None:
            raise DataError(f"tampered image {sample.image} has no mask to derive boxes from")
        mask = read_mask(sample.mask, size, sample.image, resize=resize_masks)
        boxes = simulate_boxes(mask, config, rng_for(sample.name, config.seed))
        if not boxes:
            raise DataError(f"mask {sample.mask} of tampered image {sample.image} is empty")
        return size, boxes

    return run_per_sample(dataset, step, desc="boxes", total=len(dataset))


def make_boxes(
    dataset: Dataset,
    out: PathLike,
    config: BoxSimulationConfig | None = None,
    resize_masks: bool = False,
    filled_masks_dir: PathLike | None = None,
) -> SampleRun[tuple[tuple[int, int], list[Box]]]:
    """Simulate boxes, write them as COCO JSON to ``out`` and optionally every image's filled-box map."""
    config = config or BoxSimulationConfig()
    run = simulate_dataset_boxes(dataset, config, resize_masks)
    if not run.results:
        raise DataError(f"{dataset.source}: no image could be processed:\n{run.summary()}")
    done = dataset.replace_samples([s for s in dataset if s.name in run.results])
    write_coco_boxes(
        out, done,
        boxes_by_name={name: boxes for name, (_, boxes) in run.results.items()},
        sizes_by_name={name: size for name, (size, _) in run.results.items()},
        info={"generator": "bpiml boxes", "description": "coarse boxes simulated from masks by boxpromptiml",
              "simulation": config.to_dict(), "dataset": dataset.source},
    )
    if filled_masks_dir is not None:
        for sample in done:  # authentic images get an all-zero map, so the folder is complete
            size, boxes = run.results[sample.name]
            write_probability_map(Path(filled_masks_dir) / f"{sample.name}.png", boxes_to_mask(boxes, size))
    return run
