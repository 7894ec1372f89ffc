"""Stages ``train`` and ``eval``: one student per run, then its best checkpoint on the test sets."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace

import torch

from boxpromptiml.deployment.predictor import load_predictor
from boxpromptiml.evaluation import evaluate_predictor
from boxpromptiml.fileio import write_json_atomic
from boxpromptiml.training.loop import read_metrics, train

from ..common import REPO
from .layout import Layout, test_datasets
from .runs import RUNS, run_config

log = logging.getLogger("protocol")
TEST_SCORES = "test_scores.json"


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


def stage_eval(layout: Layout, runs: list[str], threads: int) -> None:
    torch.set_num_threads(threads)
    tests = test_datasets(layout.data)
    for name in runs:
        out = layout.run(name) / TEST_SCORES
        if not finished(layout, name) or out.is_file():
            continue
        predictor = load_predictor(layout.run(name) / "best")
        scores = {}
        for test_name, dataset in tests.items():
            started = time.perf_counter()
            report, run = evaluate_predictor(dataset, predictor.predict, desc=f"{name} on {test_name}")
            scores[test_name] = {**report.to_dict(), "seconds": round(time.perf_counter() - started, 1),
                                 "failures": run.failures}
            log.info("%s on %s: pixel F1 %.3f", name, test_name, report.pixel_f1)
        write_json_atomic(out, scores)
