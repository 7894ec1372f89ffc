"""Stages ``data`` and ``pseudo``: the source-disjoint split, simulated boxes, teachers' pseudo masks."""

from __future__ import annotations

import json
import logging

from boxpromptiml.boxes.from_masks import make_boxes
from boxpromptiml.data import load_dataset, load_datasets
from boxpromptiml.data.coco import attach_boxes, read_coco_boxes
from boxpromptiml.data.readers import write_imdl_json
from boxpromptiml.data.splits import split_by_source
from boxpromptiml.evaluation import evaluate_prediction_dir
from boxpromptiml.fileio import write_json_atomic
from boxpromptiml.pseudo_labels.generate import generate_pseudo_labels
from boxpromptiml.teachers import create_teacher

from .layout import Layout
from .runs import PROTOCOL_TEACHERS

log = logging.getLogger("protocol")
VAL_FRACTION, SPLIT_SEED = 0.15, 0

# training sources with boxes: name -> tampered list inside the shared data
BOXED_SOURCES = {"casia1_train": "casia1_train/train.json", "coverage_train": "coverage/train.json"}


def stage_data(layout: Layout) -> None:
    if not (layout.split / "val.json").is_file():
        casia = load_datasets([layout.data / "casia1_train/train.json", layout.data / "casia1_train/authentic.json"])
        train, val = split_by_source(casia, VAL_FRACTION, SPLIT_SEED)
        write_imdl_json(train, layout.split / "train.json")
        write_imdl_json(val, layout.split / "val.json")
    if not layout.coverage_authentic.is_file():
        authentic = load_dataset(layout.data / "coverage/authentic.json")
        write_imdl_json(authentic.replace_samples([s for s in authentic if int(s.name) <= 70]),
                        layout.coverage_authentic)
    for source, tampered in BOXED_SOURCES.items():
        if not layout.boxes(source).is_file():
            run = make_boxes(load_dataset(layout.data / tampered), layout.boxes(source))
            if run.failures:
                raise SystemExit(f"boxes of {source} failed: {run.summary()}")


def stage_pseudo(layout: Layout, teachers: set[str]) -> dict[str, dict]:
    """Pseudo masks of every training image for each teacher; their quality against the exact masks."""
    quality_file = layout.work / "pseudo_quality.json"
    quality = json.loads(quality_file.read_text()) if quality_file.is_file() else {}
    for name in sorted(teachers):
        registry_name, settings = PROTOCOL_TEACHERS.get(name, (name, None))
        teacher = create_teacher(registry_name, settings=settings)
        for source, tampered in BOXED_SOURCES.items():
            dataset = attach_boxes(load_dataset(layout.data / tampered), read_coco_boxes(layout.boxes(source)))
            out = layout.pseudo(name, source)
            run = generate_pseudo_labels(dataset, teacher, out)
            if run.failures:
                log.warning("pseudo labels %s/%s: %s", name, source, run.summary())
            report, _ = evaluate_prediction_dir(dataset, out)
            quality[f"{name}|{source}"] = {"f1": report.pixel_f1, "iou": report.pixel_iou, "n": report.n_tampered}
            log.info("pseudo masks of %s on %s: F1 %.3f", name, source, report.pixel_f1)
    write_json_atomic(quality_file, quality)
    return quality
