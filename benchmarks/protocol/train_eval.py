"""Stages ``train`` and ``eval``: one student per run, then its best checkpoint on the test sets."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from boxpromptiml.data import load_dataset
from boxpromptiml.deployment.calibrate import calibrate_pixel_threshold
from boxpromptiml.deployment.predictor import load_predictor
from boxpromptiml.evaluation import evaluate_predictor
from boxpromptiml.evaluation.groups import CASIA_GROUPS, GroupSpec
from boxpromptiml.fileio import write_json_atomic
from boxpromptiml.training.loop import train
from boxpromptiml.training.run_folder import read_metrics

from ..common import REFERENCE_BACKEND, REPO
from .layout import Layout, test_datasets
from .runs import RUNS, run_config

log = logging.getLogger("protocol")
TEST_SCORES = "test_scores.json"
TEST_SCORES_CALIBRATED = "test_scores_calibrated.json"  # pixel threshold set on validation
GROUPS = tuple(GroupSpec.parse(g) for g in CASIA_GROUPS)  # per manipulation type (CASIA names) and area bin


def finished(layout: Layout, name: str) -> bool:
    """Every planned epoch of the run is in its metrics.csv."""
    config = run_config(name, layout, 1, 0)
    return len(read_metrics(layout.run(name) / "metrics.csv")) >= config.optim.epochs


def stage_train(layout: Layout, runs: list[str], threads: int, workers: int, max_minutes: float | None) -> None:
    os.chdir(REPO)  # the base config's paths are relative to the repository root
    for name in runs:
        log.info("training run %s: %s", name, RUNS[name].what)
        config = run_config(name, layout, threads, workers)
        config = replace(config, optim=replace(config.optim, max_minutes=max_minutes))
        result = train(config, layout.run(name))
        if result.epochs_done < result.epochs_planned:
            log.warning("run %s stopped at the time limit after %d of %d epochs", name, result.epochs_done,
                        result.epochs_planned)
            return


def _score(model_dir, tests: dict, label: str) -> dict:
    predictor = load_predictor(model_dir, REFERENCE_BACKEND)
    scores = {}
    for test_name, dataset in tests.items():
        started = time.perf_counter()
        report, run = evaluate_predictor(dataset, predictor.predict, desc=f"{label} on {test_name}",
                                         image_threshold=predictor.decision.threshold if predictor.decision else None,
                                         groups=GROUPS)
        scores[test_name] = {**report.to_dict(), "seconds": round(time.perf_counter() - started, 1),
                             "failures": run.failures}
        log.info("%s on %s: pixel F1 %.3f", label, test_name, report.pixel_f1)
    return scores


def stage_eval(layout: Layout, runs: list[str], threads: int) -> None:
    """Each finished run's best checkpoint on the test sets: as trained (pixel threshold 0.5), and with its
    pixel threshold calibrated on the validation split, as `bpiml calibrate` and the ship stage set it (on a
    copy: the run folder stays as trained)."""
    torch.set_num_threads(threads)
    tests = test_datasets(layout.data)
    for name in runs:
        if not finished(layout, name):
            continue
        out = layout.run(name) / TEST_SCORES
        if not out.is_file():
            write_json_atomic(out, _score(layout.run(name) / "best", tests, name))
        calibrated = layout.run(name) / TEST_SCORES_CALIBRATED
        if not calibrated.is_file():
            with tempfile.TemporaryDirectory(prefix=f"bpiml-{name}-") as tmp:
                copy = Path(tmp) / "best"
                shutil.copytree(layout.run(name) / "best", copy,
                                ignore=shutil.ignore_patterns("optimizer.*", "training.safetensors"))
                pixels = calibrate_pixel_threshold(copy, load_dataset(layout.split / "val.json"),
                                                   "the protocol's CASIA v1 validation split")
                log.info("%s: %s", name, pixels.describe())
                write_json_atomic(calibrated, {"pixel_calibration": pixels.to_dict(),
                                               **_score(copy, tests, f"{name} (calibrated)")})
