"""Traces, not objects: a model's scores per manipulation type, per tampered area, its false alarms on authentic
photos and its image-level verdict with both classes re-saved at one JPEG quality (writes docs/results.md).

    python -m benchmarks.by_type --model shipped=src/boxpromptiml/deployment/shipped_model
    python -m benchmarks.by_type --model copymove=runs/v2/runs/copymove/best --threads 1

Each --model is LABEL=FOLDER; rows are kept in docs/by_type_runs.json by label, so models measured in other
sessions stay in the table. Test sets only: `casia1_dev` (groups by CASIA's file names: `Sp_D_*` spliced,
`Sp_S_*` copied within the photo) and COVERAGE test (copy-moves). The image-level columns re-save both classes
as JPEG quality 90 first (`bpiml evaluate --resave-jpeg 90`): CASIA v1 stored its tampered and authentic photos
with different quantisation tables, which alone separate the classes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from boxpromptiml.deployment.predictor import load_predictor
from boxpromptiml.evaluation import evaluate_predictor
from boxpromptiml.fileio import write_json_atomic

from .common import DEFAULT_DATA, REFERENCE_BACKEND, REPO, machine_line, markdown_table, update_results_section
from .protocol.layout import test_datasets
from .protocol.record import read_json_or_empty
from .protocol.report import group_value
from .protocol.train_eval import GROUPS

RECORD = REPO / "docs" / "by_type_runs.json"
RESAVE_QUALITY = 90


def measure(model_dir: Path, data: Path, backend: str = REFERENCE_BACKEND) -> dict:
    predictor = load_predictor(model_dir, backend)
    image_threshold = predictor.decision.threshold if predictor.decision else None
    out: dict = {"model": str(model_dir), "backend": predictor.description,
                 "decision": predictor.decision.to_dict() if predictor.decision else None}
    started = time.perf_counter()
    for test_name, dataset in test_datasets(data).items():
        report, _ = evaluate_predictor(dataset, predictor.predict, image_threshold=image_threshold, groups=GROUPS,
                                       desc=f"{model_dir.name} on {test_name}")
        resaved, _ = evaluate_predictor(dataset, predictor.predict, image_threshold=image_threshold,
                                        resave_jpeg=RESAVE_QUALITY, desc=f"{test_name} re-saved")
        out[test_name] = {"stored": report.to_dict(), "resaved": resaved.to_dict()}
    out["minutes"] = round((time.perf_counter() - started) / 60, 1)
    return out


def render(record: dict) -> str:
    rows, verdict_rows = [], []
    for label, m in record.items():
        casia, coverage = m["CASIA v1"]["stored"], m["COVERAGE"]["stored"]
        rows.append([f"`{label}`", casia["pixel_f1"], group_value(casia, "spliced"),
                     group_value(casia, "copy-moved"),
                     group_value(casia, "copy-moved", "missed_rate"), group_value(casia, "area 0-2%"),
                     casia["pixel_precision"], casia["pixel_recall"], casia["authentic_marked_rate"],
                     casia["authentic_marked_area_median"], coverage["pixel_f1"], coverage["authentic_marked_rate"]])
        for test_name in ("CASIA v1", "COVERAGE"):
            resaved = m[test_name]["resaved"]
            verdict_rows.append([f"`{label}`", test_name, m[test_name]["stored"]["image_auc"], resaved["image_auc"],
                                 resaved["image_false_alarm_rate"], resaved["image_detection_rate"],
                                 resaved["pixel_f1"], resaved.get("authentic_marked_rate")])
    return "\n".join([
        "## By manipulation type, by area, and false alarms on authentic photos", "",
        "Measured with `python -m benchmarks.by_type --model LABEL=FOLDER` (" + machine_line() + "); each model as "
        "it would ship (its own pixel threshold and image threshold). Pixel F1 at 0.5, mean over tampered images; "
        "`casia1_dev` groups by file name (`Sp_D_*` spliced: 125 images, `Sp_S_*` copied within the photo: 78); "
        "missed = share of copy-moves with F1 < 0.1; area < 2% = tampered region under 2% of the image (20 images). "
        "Authentic marked = share of authentic photos with any pixel above 0.5 (COVERAGE: originals 71-100), "
        "median area = median share of an authentic photo marked. Rows kept in `docs/by_type_runs.json`.", "",
        markdown_table(["model", "CASIA v1 F1", "spliced", "copy-moved", "copy-moved missed", "area < 2%",
                        "precision", "recall", "authentic marked", "median area", "COVERAGE F1",
                        "COVERAGE authentic marked"], rows), "",
        f"Image level: AUC as stored against both classes re-saved as JPEG quality {RESAVE_QUALITY} "
        "(`bpiml evaluate --resave-jpeg 90`); false alarms and detections at the model's calibrated image "
        "threshold (5% false alarms on validation), on the re-saved images; pixel F1 and the share of authentic "
        "photos with a marked pixel on the re-saved images (a model that read CASIA's per-class tables would lose "
        "its low false-alarm rate here).", "",
        markdown_table(["model", "test set", "image AUC as stored", f"image AUC re-saved Q{RESAVE_QUALITY}",
                        "false alarms", "detected", "pixel F1 re-saved", "authentic marked re-saved"],
                       verdict_rows), "",
        "Models: " + "; ".join(f"`{k}` = `{v['model']}`" for k, v in record.items()) + ".",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=FOLDER")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", default=REFERENCE_BACKEND,
                        help="what runs the network (default: PyTorch float32, as every earlier row; 'auto' for an "
                             "OpenVINO .xml graph, e.g. an int8 one, with the model's JSON settings beside it)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    record = read_json_or_empty(RECORD)
    for spec in args.model:
        label, _, folder = spec.partition("=")
        record[label] = measure(Path(folder), args.data, args.backend)
        write_json_atomic(RECORD, record)
    if record:
        markdown = render(record)
        print(markdown)
        update_results_section("by_type", markdown)


if __name__ == "__main__":
    main()
