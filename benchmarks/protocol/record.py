"""The committed record of evaluated runs (docs/protocol_v2_runs.json).

Run folders (checkpoints, pseudo masks) are too big to commit and do not survive a new machine;
the record does, so the report can show runs made in earlier sessions next to new ones."""

from __future__ import annotations

import json
import time

from boxpromptiml.training.run_folder import read_metrics

from ..common import REPO, machine_line
from .layout import RECORD, Layout
from .runs import RUNS
from .train_eval import TEST_SCORES, TEST_SCORES_CALIBRATED

CURVE_FIELDS = ("samples_seen", "train_loss", "fit_pixel_f1", "val_pixel_f1", "seconds")


def _number(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def read_json_or_empty(path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def run_summary(layout: Layout, name: str) -> dict | None:
    """What the report needs of one evaluated run in the work folder, small enough to commit."""
    run_dir = layout.run(name)
    scores = run_dir / TEST_SCORES
    if not scores.is_file():
        return None
    metrics = [{"epoch": int(r["epoch"]), **{k: _number(r.get(k)) for k in CURVE_FIELDS}}
               for r in read_metrics(run_dir / "metrics.csv")]
    return {
        "what": RUNS[name].what,
        "evaluated": time.strftime("%Y-%m-%d %H:%M", time.gmtime(scores.stat().st_mtime)),
        "machine": machine_line(threads=False),
        "config": json.loads((run_dir / "config.json").read_text().replace(f"{REPO}/", "")),
        "best_val_f1": read_json_or_empty(run_dir / "best" / "state.json").get("best_val_f1"),
        "train_minutes": round(sum(m["seconds"] or 0.0 for m in metrics) / 60, 1) if metrics else None,
        "metrics": metrics,
        "test_scores": read_json_or_empty(scores),
        "test_scores_calibrated": read_json_or_empty(run_dir / TEST_SCORES_CALIBRATED) or None,
    }


def collect_record(layout: Layout) -> dict:
    """The committed record, updated from the evaluated runs in the work folder."""
    record = read_json_or_empty(RECORD)
    runs, quality = record.get("runs", {}), record.get("pseudo_quality", {})
    quality.update(read_json_or_empty(layout.work / "pseudo_quality.json"))
    for name in RUNS:
        summary = run_summary(layout, name)
        if summary is not None:
            runs[name] = summary
    return {"pseudo_quality": dict(sorted(quality.items())),
            "runs": {name: runs[name] for name in RUNS if name in runs}}
