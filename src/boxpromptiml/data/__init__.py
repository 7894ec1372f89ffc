"""Data layer: one sample type, readers for the common IML layouts, COCO boxes, image I/O."""

from .coco import CocoBoxes, attach_boxes, read_coco_boxes, write_coco_boxes
from .images import read_image, read_label_map, read_mask, read_probability_map, write_probability_map
from .readers import load_dataset, load_datasets
from .samples import Box, Dataset, Label, Sample

__all__ = [
    "Box", "CocoBoxes", "Dataset", "Label", "Sample", "attach_boxes", "load_dataset", "load_datasets",
    "read_coco_boxes", "read_image", "read_label_map", "read_mask", "read_probability_map",
    "write_coco_boxes", "write_probability_map",
]
