"""Coarse boxes: simulating an annotator's boxes from masks, and rasterising boxes."""

from .simulate import BoxSimulationConfig, boxes_to_mask, simulate_boxes

__all__ = ["BoxSimulationConfig", "boxes_to_mask", "simulate_boxes"]
