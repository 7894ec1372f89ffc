"""Stage ``ship``: the run trained from boxes only with the best validation F1 becomes the shipped model.

The candidate must also beat the model shipped now, scored on the same validation set with its
pixel threshold at 0.5 (as the candidates' validation F1 is), so a model chosen under an earlier
protocol is replaced only by a better one. The shipped copy (the run's folder is left as trained)
then gets its pixel threshold and its image-level threshold (5% false alarms) calibrated on the
validation images, and is scored on the test sets as shipped. Test sets choose nothing."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from boxpromptiml.data import load_dataset, load_datasets
from boxpromptiml.data.samples import Dataset
from boxpromptiml.deployment.calibrate import calibrate_model, calibrate_pixel_threshold
from boxpromptiml.deployment.predictor import Predictor, load_predictor
from boxpromptiml.deployment.shipped import TRAINING_NOTE, ship_model, shipped_model_path, write_shipped_graph
from boxpromptiml.deployment.verdict import VERDICT_FILE, fit_verdict
from boxpromptiml.evaluation import evaluate_predictor
from boxpromptiml.evaluation.calibration import PIXEL_CALIBRATION_FILE, PixelCalibration
from boxpromptiml.fileio import write_bytes_atomic, write_json_atomic
from boxpromptiml.training.checkpoint import load_student

from ..common import REFERENCE_BACKEND, REPO, markdown_table, relative_to_repo, update_results_section
from .layout import TEST_SETS, Layout, test_datasets
from .record import read_json_or_empty
from .runs import RUNS
from .train_eval import TEST_SCORES, finished

log = logging.getLogger("protocol")
SHIPPED_HISTORY = REPO / "docs" / "shipped_models.json"
FALSE_ALARM_RATE = 0.05
VAL_SOURCE = "the protocol's CASIA v1 validation split"
RESAVE_QUALITY = 90  # image-level calibration and checks re-save both classes at one JPEG quality (CASIA's tables)


def stage_ship(layout: Layout) -> str | None:
    candidates = {name: read_json_or_empty(layout.run(name) / "best" / "state.json").get("best_val_f1")
                  for name, spec in RUNS.items() if spec.from_boxes_only and finished(layout, name)}
    candidates = {name: f1 for name, f1 in candidates.items() if f1 is not None}
    if not candidates:
        log.warning("nothing to ship: no finished run trained from boxes only")
        return None
    best = max(candidates, key=candidates.get)
    val = load_dataset(layout.split / "val.json")
    current = None
    if (shipped_model_path() / "model.safetensors").is_file():
        shipped, _ = load_student(shipped_model_path())
        shipped.config = replace(shipped.config, pixel_threshold=0.5)  # as the candidates were validated
        current = evaluate_predictor(val, Predictor.from_student(shipped).predict,
                                     desc="shipped model on validation")[0].pixel_f1
        log.info("the shipped model scores validation F1 %.3f; best candidate %s %.3f", current, best,
                 candidates[best])
        if current >= candidates[best]:
            if not (shipped_model_path() / PIXEL_CALIBRATION_FILE).is_file():  # shipped before pixel calibration
                _calibrate_shipped(shipped_model_path(), val, layout)
            elif not (shipped_model_path() / VERDICT_FILE).is_file():  # shipped before verdict heads
                _verdict_and_scores(shipped_model_path(), val, layout)
            return None
    scores = read_json_or_empty(layout.run(best) / TEST_SCORES)
    note = {
        "summary": f"run '{best}' of the v2 protocol ({RUNS[best].what}); chosen among {sorted(candidates)} by "
                   f"validation pixel F1 {candidates[best]:.3f} on the source-disjoint CASIA v1 validation split"
                   + (f" (the model it replaced: {current:.3f})" if current is not None else ""),
        "trained_on": "casia1_train minus its validation split (409 tampered + 250 authentic), COVERAGE train (70) "
                      "and its 70 authentic originals; boxes simulated from the masks; targets: "
                      + ("the filled boxes" if RUNS[best].supervision == "box"
                         else f"{RUNS[best].teacher} pseudo masks")
                      + _synthetic_part(read_json_or_empty(layout.run(best) / "config.json")),
        "config": read_json_or_empty(layout.run(best) / "config.json"),
        "test_scores_as_trained": {t: {k: v for k, v in s.items()
                                       if k in ("pixel_f1", "pixel_iou", "pixel_auc", "image_auc")}
                                   for t, s in scores.items()},
        "command": "python -m benchmarks.protocol --stages ship",
    }
    out = ship_model(layout.run(best) / "best", note)
    pixels, shipped_scores = _calibrate_shipped(out, val, layout)
    record_shipment(best, candidates, current, shipped_scores, pixels.threshold)
    log.info("shipped %s", best)
    return best


def _calibrate_shipped(out: Path, val: Dataset, layout: Layout) -> tuple[PixelCalibration, dict]:
    """Calibrate the shipped copy's pixel and image thresholds on validation, score it on the test sets as
    shipped (fp16, calibrated) and add both to its training note."""
    pixels = calibrate_pixel_threshold(out, val, VAL_SOURCE)
    log.info("%s", pixels.describe())
    return pixels, _verdict_and_scores(out, val, layout, {"pixel_calibration": pixels.to_dict()})


def _verdict_and_scores(out: Path, val: Dataset, layout: Layout, note: dict | None = None) -> dict:
    """Fit the verdict head (kept if it wins on validation), calibrate the image threshold on the re-saved
    validation images, score the model on the test sets as shipped and add all of it to its training note."""
    verdict = _fit_verdict(out, val, layout)
    write_shipped_graph(out)  # the default backend's graph of the final weights and pixel threshold
    return calibrate_and_score(out, val, layout, {**(note or {}), "verdict": verdict})


def calibrate_and_score(out: Path, val: Dataset, layout: Layout, note: dict | None = None) -> dict:
    """Calibrate a model folder's image threshold on the re-saved validation images, score it on the test sets as
    it stands (with whatever it carries: verdict head, copy-move search) and add both to its training note."""
    # the calibrated weights; the image threshold is passed explicitly below
    predictor = load_predictor(out, REFERENCE_BACKEND)
    decision = calibrate_model(predictor, out, val, FALSE_ALARM_RATE, source=VAL_SOURCE,
                               resave_jpeg=RESAVE_QUALITY)
    scores = {}
    for test_name, dataset in test_datasets(layout.data).items():
        report = evaluate_predictor(dataset, predictor.predict, desc=f"{out.name} on {test_name}",
                                    image_threshold=decision.threshold)[0]
        scores[test_name] = {k: v for k, v in report.to_dict().items()
                             if k in ("pixel_f1", "pixel_iou", "pixel_auc", "image_auc", "image_false_alarm_rate",
                                      "image_detection_rate")}
        log.info("%s on %s: pixel F1 %.3f", out.name, test_name, report.pixel_f1)
    write_json_atomic(out / TRAINING_NOTE, {**read_json_or_empty(out / TRAINING_NOTE), **(note or {}),
                                            "image_decision": decision.to_dict(), "test_scores": scores})
    return scores


def _fit_verdict(out: Path, val: Dataset, layout: Layout) -> dict:
    """Fit an image-level score head on the shipped copy's frozen maps (bpiml fit-verdict, on the training images
    only) and keep it if it separates the validation images better than the map's maximum, both classes
    re-saved at one JPEG quality."""
    train = load_datasets([layout.split / "train.json", layout.data / "coverage" / "train.json",
                           layout.coverage_authentic])
    with tempfile.TemporaryDirectory(prefix="bpiml-verdict-") as tmp:
        headed_dir = Path(tmp) / "verdict"
        fit = fit_verdict(out, train, headed_dir, half=True)
        aucs = {name: evaluate_predictor(val, load_predictor(folder, REFERENCE_BACKEND).predict,
                                         resave_jpeg=RESAVE_QUALITY, desc=f"validation image AUC ({name})")[0].image_auc
                for name, folder in (("head", headed_dir), ("map_max", out))}
        adopted = aucs["head"] is not None and aucs["map_max"] is not None and aucs["head"] > aucs["map_max"]
        if adopted:
            for name in ("model.safetensors", "student.json"):
                write_bytes_atomic(out / name, (headed_dir / name).read_bytes())
    # the record is kept either way, so that the stage does not fit the same head again
    record = {**fit.to_dict(), "localizer": relative_to_repo(Path(fit.localizer)), "val_image_auc_resaved": aucs,
              "adopted": adopted}  # no machine-specific paths in a shipped file
    write_json_atomic(out / VERDICT_FILE, record)
    log.info("verdict head: %s; validation image AUC re-saved at Q%d: head %.3f, map maximum %.3f -> %s",
             fit.describe(), RESAVE_QUALITY, aucs["head"], aucs["map_max"], "adopted" if adopted else "not adopted")
    return {"fit": {k: v for k, v in record.items() if k not in ("val_image_auc_resaved", "adopted")},
            "val_image_auc_resaved": aucs, "adopted": adopted}


def _synthetic_part(config: dict) -> str:
    """The on-the-fly forgeries of a run, in words (empty when it had none)."""
    data = config.get("data", {})
    if not data.get("synthetic_fraction"):
        return ""
    objects = data.get("synthetic_objects") or 0
    return (f"; plus {data['synthetic_fraction']:.0%} of the samples fresh forgeries (exact masks) hosted by the "
            f"authentic photos of {', '.join(data.get('synthetic', []))}"
            + (f", {objects:.0%} of them object-shaped" if objects else ""))


def record_shipment(run: str, candidates: dict[str, float], replaced_val_f1: float | None, scores: dict,
                    pixel_threshold: float = 0.5) -> None:
    """Append the replacement to docs/shipped_models.json and rewrite the results section from it."""
    history = json.loads(SHIPPED_HISTORY.read_text()) if SHIPPED_HISTORY.is_file() else []
    history.append({"date": time.strftime("%Y-%m-%d %H:%M"), "protocol": "v2", "run": run, "what": RUNS[run].what,
                    "val_f1": candidates[run], "candidates": candidates, "replaced_model_val_f1": replaced_val_f1,
                    "pixel_threshold": pixel_threshold,
                    "test_f1": {t: s.get("pixel_f1") for t, s in scores.items()}})
    write_json_atomic(SHIPPED_HISTORY, history)
    rows = [[h["date"], h.get("protocol", "v1"), f"`{h['run']}`", h["what"], h["val_f1"], h.get("pixel_threshold", 0.5)]
            + [h["test_f1"].get(t) for t in TEST_SETS] for h in history]
    update_results_section("shipped", "\n".join([
        "## The shipped model and its replacements", "",
        "Written by the protocol's ship stage: of the finished runs trained from boxes only, the one with the best "
        "validation pixel F1 is shipped as fp16 safetensors in `src/boxpromptiml/deployment/shipped_model/`, if it "
        "also beats the shipped model on that validation set. v1 validated on synthetic BSDS-test images, v2 on the "
        "source-disjoint CASIA v1 validation split, so val F1 of v1 and v2 rows are not comparable. "
        "CASIA v1 test F1 of v1 rows used the old 200-image casia1_dev. Since 2026-11-26 the shipped copy also gets "
        "its pixel threshold calibrated on that validation split (`bpiml calibrate`; earlier models used 0.5), and "
        "its test F1 is measured as shipped (fp16, calibrated). Newest last.", "",
        markdown_table(["date", "protocol", "run", "what", "val F1", "pixel threshold"]
                       + [f"{t} test F1" for t in TEST_SETS], rows),
        ""]))
