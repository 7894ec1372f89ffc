"""The adaptation curve: what k boxes on a team's own photos buy (issue 26; writes docs/results.md).

    python -m benchmarks.adaptation --stages base points report --max-minutes 150   # resumable; idle machine

Needs the protocol's prepared data (`python -m benchmarks.protocol --stages data pseudo`: the CASIA split,
simulated boxes and the default teacher's pseudo masks of CASIA and COVERAGE train).
- **Base model**: the protocol row ``--recipe`` (default ``jpeg-ghost``) trained from boxes on the CASIA v1
  training part only: no COVERAGE image, no COVERAGE original as a forgery host.
- **Adaptation sets**: k = 5, 10, 20, 40, 70 COVERAGE train images (a seeded draw of images 1-70, each with its
  authentic original as a negative), trained on for one fixed short budget (the web app's: 3 x 200 samples;
  lr 1e-4 from the base model, the recipe's rate from ImageNet), from
  (a) nothing: the base model as it is (k = 0);
  (b) ImageNet weights, on the k images' boxes through the default teacher (no base model);
  (c) the base model, on the same boxes (the method: what "Train on my boxes" does);
  (d) the base model, on the k images' true masks (what the 23-minute masks would buy).
- **Measure**: COVERAGE test pixel F1 at 0.5 (30 forgeries + their 30 originals; nothing is calibrated, as
  there is no validation part of k images), against annotation minutes: the paper's 7 s per box image and 23 min
  per mask. Two seeds per point (different draws of the k images and different training seeds).
Every point is a run folder under ``runs/adaptation/`` and a row in ``docs/adaptation_runs.json``; an interrupted
call resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from boxpromptiml.data import load_dataset
from boxpromptiml.data.readers import write_imdl_json
from boxpromptiml.deployment.predictor import load_predictor
from boxpromptiml.evaluation import evaluate_predictor
from boxpromptiml.fileio import write_json_atomic
from boxpromptiml.training.config import TrainSource
from boxpromptiml.training.loop import train
from boxpromptiml.training.run_folder import read_metrics

from .common import DEFAULT_DATA, REPO, markdown_table, update_results_section
from .protocol.layout import Layout, test_datasets
from .protocol.record import read_json_or_empty
from .protocol.runs import run_config

log = logging.getLogger("adaptation")
WORK = REPO / "runs" / "adaptation"
RECORD = REPO / "docs" / "adaptation_runs.json"
KS = (5, 10, 20, 40, 70)
SEEDS = (0, 1)
BUDGET = ("optim.epochs=3", "optim.samples_per_epoch=200", "optim.warmup_epochs=0.2", "loss.image=0", "data.val=[]")
FINE_TUNE_LR = 1e-4  # from the base model; from ImageNet the recipe's own rate
BOX_SECONDS, MASK_SECONDS = 7.0, 23 * 60.0  # the paper's annotation costs per image
CONDITIONS = {"scratch": "ImageNet weights, k boxes", "boxes": "base model + k boxes (the method)",
              "masks": "base model + k true masks"}


def base_config(recipe: str, layout: Layout, threads: int, precision: str | None = None):
    """The recipe's protocol config with CASIA as the only training source (COVERAGE left out everywhere);
    ``precision`` replaces the recipe's ``optim.precision`` (e.g. ``auto`` on a CPU without native bf16, where the
    recipe's bf16 is emulated and about 6x slower)."""
    config = run_config(recipe, layout, threads, workers=1)
    if precision is not None:
        config = config.override([f"optim.precision={precision}"])
    casia = tuple(s for s in config.data.train if "coverage" not in s.dataset)
    hosts = tuple(h for h in config.data.synthetic if "coverage" not in h)
    return replace(config, data=replace(config.data, train=casia, synthetic=hosts))


def draw(k: int, seed: int, layout: Layout) -> Path:
    """A list of k COVERAGE train forgeries (a seeded draw) and their authentic originals, for one point."""
    tampered = load_dataset(layout.data / "coverage" / "train.json")
    originals = {s.name: s for s in load_dataset(layout.data / "coverage" / "authentic.json")}
    picked = [tampered.samples[i] for i in sorted(np.random.default_rng(seed).permutation(len(tampered))[:k])]
    negatives = [originals[s.name.rstrip("t")] for s in picked if s.name.rstrip("t") in originals]
    out = WORK / "sets" / f"k{k}-seed{seed}.json"
    write_imdl_json(tampered.replace_samples(picked + negatives), out)
    return out


def point_config(recipe: str, condition: str, k: int, seed: int, layout: Layout, base_dir: Path, threads: int,
                 precision: str | None = None):
    """One point's run: the recipe's settings (architecture, augmentation, forgeries), the k images as the only
    annotated source, the short budget; from the base model (boxes, masks) or from ImageNet (scratch)."""
    source = TrainSource(dataset=str(draw(k, seed, layout)), boxes=str(layout.boxes("coverage_train")),
                         pseudo_labels=str(layout.pseudo("litemedsam", "coverage_train")))
    config = base_config(recipe, layout, threads, precision).override(
        [*BUDGET, f"optim.seed={seed}", "optim.max_minutes=null",
         *([f"optim.init={base_dir}", f"optim.lr={FINE_TUNE_LR}"] if condition != "scratch" else []),
         f"data.supervision={'full' if condition == 'masks' else 'pseudo'}"])
    return replace(config, data=replace(config.data, train=(source,)))


def score(model_dir: Path, data: Path, threshold: float = 0.5) -> float:
    """COVERAGE test pixel F1 of a model's maps at ``threshold``."""
    coverage = test_datasets(data)["COVERAGE"]
    report, _ = evaluate_predictor(coverage, load_predictor(model_dir, "torch").predict, threshold=threshold,
                                   desc=f"COVERAGE {model_dir.name} at {threshold:g}")
    return report.pixel_f1


def base_threshold(base_dir: Path, layout: Layout) -> float:
    """The base model's pixel threshold calibrated on its own CASIA validation split, as a shipped model's is
    (on a copy: the base folder itself stays as trained). Every point is also scored at it: a threshold chosen on
    the base's training side, never on COVERAGE."""
    import shutil

    from boxpromptiml.deployment.calibrate import calibrate_pixel_threshold

    copy = WORK / f"{base_dir.name}-calibrated"
    if not (copy / "student.json").is_file() or not (copy / "pixel_calibration.json").is_file():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(base_dir / "best", copy)
        calibrate_pixel_threshold(copy, load_dataset(layout.split / "val.json"), "CASIA v1 validation split")
    return float(json.loads((copy / "student.json").read_text())["pixel_threshold"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="+", default=["base", "points", "report"],
                        choices=["base", "points", "report"])
    parser.add_argument("--recipe", default="jpeg-ghost", help="protocol row the base model follows")
    parser.add_argument("--ks", type=int, nargs="+", default=list(KS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-minutes", type=float, help="stop (resumably) after this much wall time")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                        help="optim.precision instead of the recipe's, for the base and every point; its rows and "
                             "runs are kept apart (recipe name + '-' + precision)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    import torch

    torch.set_num_threads(args.threads)
    layout, started = Layout(data=args.data), time.monotonic()
    label = args.recipe if args.precision is None else f"{args.recipe}-{args.precision}"
    base_dir = WORK / f"base-{label}"
    record = read_json_or_empty(RECORD)

    def out_of_time() -> bool:
        return args.max_minutes is not None and time.monotonic() - started > 60 * args.max_minutes

    config = base_config(args.recipe, layout, args.threads, args.precision)
    if "base" in args.stages and len(read_metrics(base_dir / "metrics.csv")) < config.optim.epochs:
        train(replace(config, optim=replace(config.optim, max_minutes=args.max_minutes)), base_dir)
    if "points" in args.stages and len(read_metrics(base_dir / "metrics.csv")) >= config.optim.epochs:
        key = f"base-{label}"
        if key not in record and (base_dir / "best" / "model.safetensors").is_file():
            row = {"k": 0, "condition": "base", "seed": None, "coverage_f1": score(base_dir, args.data)}
            record = {**read_json_or_empty(RECORD), key: row}
            write_json_atomic(RECORD, record)
        threshold = base_threshold(base_dir, layout)
        for name, row in list(record.items()):  # every finished point, also at the base's calibrated threshold
            run_dir = base_dir if row["condition"] == "base" else WORK / name
            if "coverage_f1_base_threshold" not in row and (run_dir / "best" / "model.safetensors").is_file():
                row = {**row, "base_threshold": threshold,
                       "coverage_f1_base_threshold": score(run_dir, args.data, threshold)}
                record = {**read_json_or_empty(RECORD), name: row}
                write_json_atomic(RECORD, record)
        for k in args.ks:
            for seed in args.seeds:
                for condition in CONDITIONS:
                    name = f"{condition}-k{k}-seed{seed}-{label}"
                    if name in record or out_of_time():
                        continue
                    run_dir = WORK / name
                    tick = time.monotonic()
                    train(point_config(args.recipe, condition, k, seed, layout, base_dir, args.threads,
                                       args.precision), run_dir)
                    minutes = (time.monotonic() - tick) / 60  # pseudo masks are prepared: this is the fine-tuning
                    row = {"k": k, "condition": condition, "seed": seed, "train_minutes": round(minutes, 2),
                           "threads": args.threads, "coverage_f1": score(run_dir, args.data),
                           "base_threshold": threshold,
                           "coverage_f1_base_threshold": score(run_dir, args.data, threshold)}
                    record = {**read_json_or_empty(RECORD), name: row}  # another call (other seeds) may have written
                    write_json_atomic(RECORD, record)
                    log.info("%s: COVERAGE F1 %.3f", name, record[name]["coverage_f1"])
    if "report" in args.stages:
        report(read_json_or_empty(RECORD), label)


def point_scores(record: dict, recipe: str, k: int, condition: str, key: str = "coverage_f1") -> list[float]:
    """The measured seeds of one point (``key``: F1 at 0.5, or at the base's calibrated threshold)."""
    return [r[key] for n, r in record.items()
            if r["k"] == k and r["condition"] == condition and n.endswith(recipe) and key in r]


def plot_curve(record: dict, recipe: str, out: Path) -> None:
    """COVERAGE test F1 against annotation minutes, one line per condition (each seed a dot, the mean a line): at 0.5
    and at the base model's calibrated threshold, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    ks = sorted({r["k"] for r in record.values() if r["k"]})
    base = record.get(f"base-{recipe}", {})
    for ax, key, title in ((axes[0], "coverage_f1", "at 0.5"),
                           (axes[1], "coverage_f1_base_threshold", "at the base model's calibrated threshold")):
        for condition, label in CONDITIONS.items():
            seconds = MASK_SECONDS if condition == "masks" else BOX_SECONDS
            points = [(k * seconds / 60, point_scores(record, recipe, k, condition, key)) for k in ks]
            points = [(m, v) for m, v in points if v]
            if not points:
                continue
            line = ax.plot([m for m, _ in points], [np.mean(v) for _, v in points], marker="o", label=label)[0]
            for m, values in points:
                ax.scatter([m] * len(values), values, s=12, color=line.get_color(), alpha=0.5)
        if key in base:
            ax.axhline(base[key], color="grey", linestyle="--", label="base model, no adaptation")
        ax.set_xscale("log")
        ax.set_title(f"COVERAGE test pixel F1 {title}", fontsize=9)
        ax.set_xlabel("annotation minutes (7 s per boxed image, 23 min per mask)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("pixel F1")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def _mean_cell(values: list[float], seeds: int) -> str:
    if not values:
        return "not run"
    return f"{np.mean(values):.3f}" + ("" if len(values) == seeds else f" ({len(values)} of {seeds} seeds)")


def report(record: dict, recipe: str) -> None:
    base = record.get(f"base-{recipe}", {})
    threshold = base.get("base_threshold")
    ks = sorted({r["k"] for r in record.values() if r["k"]})
    tables = []
    for key, label in (("coverage_f1", "at 0.5"),
                       ("coverage_f1_base_threshold", f"at the base model's calibrated threshold ({threshold})")):
        rows = []
        for k in ks:
            row: list = [k, f"{k * BOX_SECONDS / 60:.1f}", f"{k * MASK_SECONDS / 60:.0f}", base.get(key)]
            row += [_mean_cell(point_scores(record, recipe, k, condition, key), len(SEEDS)) for condition in CONDITIONS]
            if key == "coverage_f1":
                minutes = [r["train_minutes"] for r in record.values() if r["k"] == k and "train_minutes" in r]
                row.append(f"{np.mean(minutes):.1f}" if minutes else "")
            rows.append(row)
        headers = ["k", "box minutes", "mask minutes", "base, no adaptation", *CONDITIONS.values()]
        if key == "coverage_f1":
            headers.append("CPU minutes per fine-tuning")
        tables += [f"COVERAGE test pixel F1 {label}, mean over seeds:", "", markdown_table(headers, rows), ""]
    figure = REPO / "docs" / "figures" / "adaptation_curve.png"
    if ks:
        plot_curve(record, recipe, figure)
    markdown = "\n".join([
        "## The adaptation curve: what k boxes buy", "",
        "Measured with `python -m benchmarks.adaptation` (base model: protocol row `" + recipe + "` trained on CASIA "
        "v1 boxes only; each point fine-tuned 3 x 200 samples at lr 1e-4 (from ImageNet: the recipe's rate) on k "
        "COVERAGE training images and their originals, 2 seeds = 2 draws of the k images; COVERAGE test pixel F1; "
        "minutes from the paper's 7 s per box image and 23 min per mask). A set of k images has no validation part, "
        "so nothing is calibrated on it: every point is scored at 0.5 and at the threshold the base model was "
        "calibrated to on its own CASIA validation split (never on COVERAGE). Rows kept in "
        "`docs/adaptation_runs.json`; a row without the second score was measured before that score was added and "
        "its run folder is gone.", "",
        *(tables if ks else ["No point measured yet.", ""]),
        f"![adaptation curve](figures/{figure.name})" if ks else "", ""])
    print(markdown)
    update_results_section("adaptation", markdown)


if __name__ == "__main__":
    main()
