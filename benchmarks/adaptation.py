"""The adaptation curve: what k boxes on a team's own photos buy (issue 26; writes docs/results.md).

    python -m benchmarks.adaptation --stages base tune points report --budget tuned --max-minutes 150  # resumable

Needs the protocol's prepared data (`python -m benchmarks.protocol --stages data pseudo`: the CASIA split,
simulated boxes and the default teacher's pseudo masks of CASIA and COVERAGE train).
- **Base model**: the protocol row ``--recipe`` (default ``jpeg-ghost``) trained from boxes on the CASIA v1
  training part only: no COVERAGE image, no COVERAGE original as a forgery host.
- **Adaptation sets**: k = 5, 10, 20, 40, 70 COVERAGE train images (a seeded draw of images 1-70, each with its
  authentic original as a negative), trained on for one fixed short budget (``--budget``; ``tuned``: the one the
  tune stage chose on COVERAGE train photos the draws leave out, which the web app's "Train on my boxes" uses;
  from ImageNet at the recipe's own rate), from
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
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from boxpromptiml.app.annotations import SECONDS_KEY, annotation_seconds
from boxpromptiml.data import load_dataset
from boxpromptiml.data.readers import read_json, write_imdl_json
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
BUDGET = ("optim.warmup_epochs=0.2", "loss.image=0", "data.val=[]")


@dataclass(frozen=True)
class Budget:
    """A fine-tuning budget: epochs x samples per epoch at ``lr`` from the base model (from ImageNet the recipe's own
    rate); ``hosts`` of the fresh forgeries: "base" keeps the recipe's synthetic share on the base's own host photos
    (CASIA, BSDS), "own" makes the k set's authentic photos (the user's own, unannotated) the only hosts, at
    OWN_FRACTION of the draws; ``extra``: further config overrides (one knob per variant) and ``what`` says them."""

    epochs: int
    samples: int
    lr: float
    hosts: str = "base"
    extra: tuple[str, ...] = ()
    what: str = ""
    candidate: bool = True  # False: measured on both tune draws for reference, never chosen


# what the web app's "Train on my boxes" runs: a user has no CASIA or BSDS photos to make fresh forgeries in
APP_BUDGET = "6x200 lr 3e-4 frozen BN, as the app (no forgeries)"
# The first kept its name from earlier rows; the one the tune stage chose is the web app's "Train on my boxes" and the
# README's. Three are one knob each on 6x200 lr 3e-4, against the spread between draws: batch-norm statistics kept as
# the base's (20 images move them), a weight average, and no fresh forgeries (all samples from the k images). The
# app's own recipe is measured for the record. All stay within the 10 CPU minutes.
BUDGETS = {"3x200 lr 1e-4": Budget(3, 200, 1e-4), "6x200 lr 1e-4": Budget(6, 200, 1e-4),
           "6x200 lr 3e-4": Budget(6, 200, 3e-4), "10x200 lr 3e-4": Budget(10, 200, 3e-4),
           "6x200 lr 3e-4 own hosts": Budget(6, 200, 3e-4, hosts="own"),
           "6x200 lr 3e-4 frozen BN": Budget(6, 200, 3e-4, extra=("optim.freeze_batchnorm=true",),
                                             what="batch-norm statistics kept as the base's"),
           "6x200 lr 3e-4 EMA": Budget(6, 200, 3e-4, extra=("optim.ema_decay=0.95",),
                                       what="weights averaged (EMA 0.95)"),
           "6x200 lr 3e-4 no forgeries": Budget(6, 200, 3e-4, extra=("data.synthetic_fraction=0",),
                                                what="no fresh forgeries"),
           APP_BUDGET: Budget(6, 200, 3e-4, extra=("optim.freeze_batchnorm=true", "data.synthetic_fraction=0"),
                              what="batch-norm statistics kept as the base's, no fresh forgeries", candidate=False)}
# knobs that keep a trained start model's state: from ImageNet the decoder has no batch-norm statistics worth keeping
# (frozen at their initial values, the scratch condition scored 0.000), so training from ImageNet leaves them out
FINE_TUNING_ONLY = ("optim.freeze_batchnorm=true",)
OWN_FRACTION = 0.5
DEFAULT_BUDGET = "3x200 lr 1e-4"
TUNE_K, TUNE_SEED = 20, 0  # the budget is chosen on this draw, on the COVERAGE train images it leaves out
TUNE_RECORD = REPO / "docs" / "adaptation_tune_runs.json"
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


def held_out(k: int, seed: int, layout: Layout) -> Path:
    """The COVERAGE train forgeries a draw leaves out, with their originals: validation for choosing the budget
    (never COVERAGE test)."""
    tampered = load_dataset(layout.data / "coverage" / "train.json")
    originals = {s.name: s for s in load_dataset(layout.data / "coverage" / "authentic.json")}
    drawn = set(np.random.default_rng(seed).permutation(len(tampered))[:k].tolist())
    kept = [s for i, s in enumerate(tampered.samples) if i not in drawn]
    negatives = [originals[s.name.rstrip("t")] for s in kept if s.name.rstrip("t") in originals]
    out = WORK / "sets" / f"held-out-k{k}-seed{seed}.json"
    write_imdl_json(tampered.replace_samples(kept + negatives), out)
    return out


def point_config(recipe: str, condition: str, k: int, seed: int, layout: Layout, base_dir: Path, threads: int,
                 precision: str | None = None, budget: str = DEFAULT_BUDGET):
    """One point's run: the recipe's settings (architecture, augmentation, forgeries), the k images as the only
    annotated source, the short budget; from the base model (boxes, masks) or from ImageNet (scratch)."""
    chosen = BUDGETS[budget]
    source = TrainSource(dataset=str(draw(k, seed, layout)), boxes=str(layout.boxes("coverage_train")),
                         pseudo_labels=str(layout.pseudo("litemedsam", "coverage_train")))
    config = base_config(recipe, layout, threads, precision).override(
        [*BUDGET, f"optim.epochs={chosen.epochs}", f"optim.samples_per_epoch={chosen.samples}", f"optim.seed={seed}",
         "optim.max_minutes=null", *(o for o in chosen.extra if condition != "scratch" or o not in FINE_TUNING_ONLY),
         *([f"optim.init={base_dir}", f"optim.lr={chosen.lr}"] if condition != "scratch" else []),
         f"data.supervision={'full' if condition == 'masks' else 'pseudo'}"])
    data = replace(config.data, train=(source,))
    if chosen.hosts == "own":
        data = replace(data, synthetic=(source.dataset,), synthetic_fraction=OWN_FRACTION)
    return replace(config, data=data)


def evaluate_on_coverage(model_dir: Path, data: Path, threshold: float = 0.5):
    """A model's COVERAGE test report (its 30 forgeries and their 30 originals) at ``threshold``."""
    coverage = test_datasets(data)["COVERAGE"]
    report_, _ = evaluate_predictor(coverage, load_predictor(model_dir, "torch").predict, threshold=threshold,
                                    desc=f"COVERAGE {model_dir.name} at {threshold:g}")
    return report_


def score(model_dir: Path, data: Path, threshold: float = 0.5) -> float:
    """COVERAGE test pixel F1 of a model's maps at ``threshold``."""
    return evaluate_on_coverage(model_dir, data, threshold).pixel_f1


def scores_at_half(model_dir: Path, data: Path) -> dict[str, float]:
    """A point's row at 0.5: COVERAGE test pixel F1 and its false alarms, the share of the authentic originals with
    any pixel marked and the median share of their pixels marked (a detector of objects marks them widely)."""
    report_ = evaluate_on_coverage(model_dir, data)
    return {"coverage_f1": report_.pixel_f1, "authentic_marked": report_.authentic_marked_rate,
            "authentic_area_median": report_.authentic_marked_area_median}


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


def training_minutes(run_dir: Path) -> float:
    """CPU-clock minutes a fine-tuning took: the epochs' seconds in its metrics.csv, so that a run resumed in a
    later call counts its earlier epochs too (setting up the run adds about two seconds, not counted)."""
    return sum(float(row["seconds"]) for row in read_metrics(run_dir / "metrics.csv")) / 60


def same_scratch_run(record: dict, k: int, seed: int, label: str, budget: str) -> str | None:
    """A measured scratch point of another budget whose run is this one's: from ImageNet the budget's learning rate
    and fine-tuning-only knobs do not apply, so budgets equal in the rest train the same model."""
    def from_imagenet(b: Budget) -> tuple:
        return b.epochs, b.samples, b.hosts, tuple(o for o in b.extra if o not in FINE_TUNING_ONLY)

    for other in BUDGETS:
        name = f"scratch-k{k}-seed{seed}-{label}{budget_tag(other)}"
        if (other != budget and from_imagenet(BUDGETS[other]) == from_imagenet(BUDGETS[budget]) and name in record
                and "same_run_as" not in record[name] and (WORK / name / "best" / "model.safetensors").is_file()):
            return name
    return None


def budget_tag(budget: str) -> str:
    """What a budget adds to run and row names (nothing for the default, so earlier rows keep their names)."""
    return "" if budget == DEFAULT_BUDGET else "-" + re.sub(r"[^A-Za-z0-9.]+", "-", budget).strip("-")


def tune_key(label: str, budget: str | None, seed: int) -> str:
    """A tune row's name (the first draw's rows keep their earlier names)."""
    name = f"{label}/{budget or 'no adaptation'}"
    return name if seed == TUNE_SEED else f"{name}/seed {seed}"


def tune_row(args: argparse.Namespace, label: str, layout: Layout, base_dir: Path, budget: str | None,
             seed: int) -> dict:
    """One budget (None: the base without adaptation) fine-tuned on the k = TUNE_K draw of ``seed`` and scored at
    0.5 on the COVERAGE train images that draw leaves out; measured once, then read from TUNE_RECORD."""
    key = tune_key(label, budget, seed)
    if (known := read_json_or_empty(TUNE_RECORD).get(key)) is not None:
        return known
    validation = load_dataset(held_out(TUNE_K, seed, layout))
    model_dir, minutes = base_dir, 0.0
    if budget is not None:
        model_dir = WORK / (f"tune-k{TUNE_K}-seed{seed}-{label}{budget_tag(budget) or '-default'}")
        train(point_config(args.recipe, "boxes", TUNE_K, seed, layout, base_dir, args.threads, args.precision,
                           budget), model_dir)
        minutes = training_minutes(model_dir)
    report_, _ = evaluate_predictor(validation, load_predictor(model_dir, "torch").predict, threshold=0.5,
                                    desc=f"held-out COVERAGE train, {budget or 'base'}")
    row = {"budget": budget, "seed": seed, "train_minutes": round(minutes, 2), "threads": args.threads,
           "val_f1": report_.pixel_f1, "val_authentic_marked": report_.authentic_marked_rate,
           "validation": f"{len(validation)} COVERAGE train images left out of the k={TUNE_K} seed {seed} draw"}
    write_json_atomic(TUNE_RECORD, {**read_json_or_empty(TUNE_RECORD), key: row})
    log.info("tune %s, draw %d: held-out F1 %.3f in %.1f min", budget or "no adaptation", seed, row["val_f1"], minutes)
    return row


def stage_tune(args: argparse.Namespace, label: str, layout: Layout, base_dir: Path) -> str:
    """Fine-tune the base on the k = TUNE_K draw of seed TUNE_SEED with every budget and score each on the COVERAGE
    train images the draw leaves out (at 0.5, next to the base without adaptation); the two best are measured
    again on a second draw, and the better mean wins (ties: the cheaper, listed first)."""
    def gain(budget: str, seed: int) -> float:  # lift over the base on the same held-out images
        return tune_row(args, label, layout, base_dir, budget, seed)["val_f1"] - \
            tune_row(args, label, layout, base_dir, None, seed)["val_f1"]

    candidates = [b for b in BUDGETS if BUDGETS[b].candidate]
    first = {b: gain(b, TUNE_SEED) for b in candidates}
    finalists = sorted(candidates, key=lambda b: (-round(first[b], 3), candidates.index(b)))[:2]
    means = {b: (first[b] + gain(b, TUNE_SEED + 1)) / 2 for b in finalists}
    best = max(finalists, key=lambda b: (round(means[b], 3), -candidates.index(b)))
    for reference in (b for b in BUDGETS if not BUDGETS[b].candidate):  # the app's recipe, for the record
        log.info("%s: held-out lift %.3f, mean of 2 draws (never chosen)", reference,
                 (gain(reference, TUNE_SEED) + gain(reference, TUNE_SEED + 1)) / 2)
    log.info("tuned budget: %s (held-out lift over the base %.3f, mean of 2 draws)", best, means[best])
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="+", default=["base", "points", "report"],
                        choices=["base", "tune", "points", "report"])
    parser.add_argument("--recipe", default="jpeg-ghost", help="protocol row the base model follows")
    parser.add_argument("--ks", type=int, nargs="+", default=list(KS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS),
                        help="which points to run (e.g. only 'boxes' for more seeds of the method)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-minutes", type=float, help="stop (resumably) after this much wall time")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                        help="optim.precision instead of the recipe's, for the base and every point; its rows and "
                             "runs are kept apart (recipe name + '-' + precision)")
    parser.add_argument("--budget", default=DEFAULT_BUDGET, choices=[*BUDGETS, "tuned"],
                        help="fine-tuning budget of the points; 'tuned': the one --stages tune chose on held-out "
                             "COVERAGE train images")
    parser.add_argument("--annotations", type=Path,
                        help="a box file written by `bpiml serve`: its mean seconds per timed image is the curve's "
                             "third cost axis (what boxing took a person in the app), next to the paper's 7 s")
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
    base_done = len(read_metrics(base_dir / "metrics.csv")) >= config.optim.epochs
    budget = args.budget
    if budget == "tuned" and "tune" not in args.stages:
        raise SystemExit("--budget tuned needs --stages tune (it reads or measures the held-out rows)")
    if "tune" in args.stages and base_done and not out_of_time():
        tuned = stage_tune(args, label, layout, base_dir)
        budget = tuned if budget == "tuned" else budget
    if budget == "tuned":  # the base or the time ran out before the budget was chosen: no point can be run yet
        log.info("the budget is not chosen yet (base unfinished or out of time): rerun the same command to go on")
        return
    points_label = label + budget_tag(budget)
    if "points" in args.stages and base_done:
        key = f"base-{label}"
        if key not in record and (base_dir / "best" / "model.safetensors").is_file():
            row = {"k": 0, "condition": "base", "seed": None, **scores_at_half(base_dir, args.data)}
            record = {**read_json_or_empty(RECORD), key: row}
            write_json_atomic(RECORD, record)
        threshold = base_threshold(base_dir, layout)
        record = complete_rows(record, key, points_label, base_dir, threshold, args.data)
        for k in args.ks:
            for seed in args.seeds:
                for condition in args.conditions:
                    name = f"{condition}-k{k}-seed{seed}-{points_label}"
                    if name in record or out_of_time():
                        continue
                    if condition == "scratch" and (same := same_scratch_run(record, k, seed, label, budget)):
                        # the very run another budget made (training is deterministic: re-running one gave the
                        # same F1 to every digit), so it is not trained again
                        row = {**record[same], "budget": budget, "same_run_as": same}
                        record = {**read_json_or_empty(RECORD), name: row}
                        write_json_atomic(RECORD, record)
                        continue
                    run_dir = WORK / name
                    train(point_config(args.recipe, condition, k, seed, layout, base_dir, args.threads,
                                       args.precision, budget), run_dir)
                    minutes = training_minutes(run_dir)  # pseudo masks are prepared: this is the fine-tuning
                    row = {"k": k, "condition": condition, "seed": seed, "budget": budget,
                           "train_minutes": round(minutes, 2), "threads": args.threads,
                           **scores_at_half(run_dir, args.data), "base_threshold": threshold,
                           "coverage_f1_base_threshold": score(run_dir, args.data, threshold)}
                    record = {**read_json_or_empty(RECORD), name: row}  # another call (other seeds) may have written
                    write_json_atomic(RECORD, record)
                    log.info("%s: COVERAGE F1 %.3f", name, record[name]["coverage_f1"])
        record = complete_rows(record, key, points_label, base_dir, threshold, args.data)  # reused rows too
    if "report" in args.stages:
        report(read_json_or_empty(RECORD), label, points_label, budget, args.data, app_timing(args.annotations))


def complete_rows(record: dict, base_key: str, points_label: str, base_dir: Path, threshold: float,
                  data: Path) -> dict:
    """This base's and budget's rows with the scores measured after them added: F1 at the base's calibrated
    threshold, and the false alarms at 0.5 (from the run folder a row names, its own or ``same_run_as``)."""
    for name, row in list(record.items()):
        if not (name == base_key or name.endswith(points_label)):
            continue
        run_dir = base_dir if row["condition"] == "base" else WORK / row.get("same_run_as", name)
        if not (run_dir / "best" / "model.safetensors").is_file():
            continue
        if "coverage_f1_base_threshold" not in row:
            row = {**row, "base_threshold": threshold, "coverage_f1_base_threshold": score(run_dir, data, threshold)}
        if "authentic_area_median" not in row:  # rows measured before the false alarms were kept
            row = {**row, **{k: v for k, v in scores_at_half(run_dir, data).items() if k != "coverage_f1"}}
        if row != record[name]:
            record = {**read_json_or_empty(RECORD), name: row}
            write_json_atomic(RECORD, record)
    return record


def point_seeds(record: dict, recipe: str, k: int, condition: str, key: str = "coverage_f1") -> dict[int, float]:
    """The measured seeds of one point, by seed (``key``: F1 at 0.5, or at the base's calibrated threshold)."""
    return {r["seed"]: r[key] for n, r in record.items()
            if r["k"] == k and r["condition"] == condition and n.endswith(recipe) and key in r}


def point_scores(record: dict, recipe: str, k: int, condition: str, key: str = "coverage_f1") -> list[float]:
    """The measured seeds' scores of one point."""
    return list(point_seeds(record, recipe, k, condition, key).values())


def app_timing(path: Path | None) -> tuple[float, int, str] | None:
    """Mean seconds per image a person took in `bpiml serve` (its box file's timings), how many images, the file."""
    if path is None:
        return None
    seconds = annotation_seconds(read_json(path))
    if not seconds:
        raise SystemExit(f"{path}: no image in it was timed by `bpiml serve` ({SECONDS_KEY})")
    return float(np.mean(seconds)), len(seconds), path.name


def plot_curve(record: dict, recipe: str, out: Path, base_key: str | None = None,
               app: tuple[float, int, str] | None = None) -> None:
    """COVERAGE test F1 against annotation minutes, one line per condition (each seed a dot, the mean a line): at 0.5
    and at the base model's calibrated threshold, side by side; with ``app`` the method's line also at the seconds
    per image the app measured (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    ks = sorted({r["k"] for r in record.values() if r["k"]})
    base = record.get(base_key or f"base-{recipe}", {})
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
            if app is not None and condition == "boxes":
                ax.plot([m * app[0] / BOX_SECONDS for m, _ in points], [np.mean(v) for _, v in points],
                        linestyle=":", marker="o", color=line.get_color(), alpha=0.6,
                        label=f"{label}, at the app's {app[0]:.0f} s per image")
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
    if len(values) < seeds:
        return f"{np.mean(values):.3f} ({len(values)} of {seeds} seeds)"
    return f"{np.mean(values):.3f}" + ("" if len(values) == seeds else f" ({len(values)} seeds)")


def mark_everything_f1(data: Path) -> float:
    """COVERAGE test pixel F1 of a map that marks every pixel (per tampered image, averaged): the floor below which
    an F1 says nothing. COVERAGE's copies are large (13% of the image on average), so this floor is high."""
    from boxpromptiml.data.images import read_mask
    from boxpromptiml.evaluation.metrics import confusion, f1

    masks = [read_mask(s.mask) for s in test_datasets(data)["COVERAGE"].tampered]
    return float(np.mean([f1(confusion(np.ones(m.shape, np.float32), m)) for m in masks]))


TARGET_K, TARGET_LIFT, TARGET_MINUTES = 20, 0.10, 10.0  # issue 26: 20 boxed images lift COVERAGE F1 by >= 0.10


def target_lines(mine: dict, points_label: str, base: dict) -> list[str]:
    """The issue's targets at k = TARGET_K, as measured: lift at 0.5 over the base, CPU minutes, against ImageNet."""
    boxes = point_scores(mine, points_label, TARGET_K, "boxes")
    if not boxes or "coverage_f1" not in base:
        return []
    scratch = point_scores(mine, points_label, TARGET_K, "scratch")
    masks = point_scores(mine, points_label, TARGET_K, "masks")
    minutes = [r["train_minutes"] for r in mine.values() if r["k"] == TARGET_K and r["condition"] == "boxes"]
    floor = base["coverage_f1"]
    lift = float(np.mean(boxes)) - floor
    seeds = ", ".join(f"{b - floor:+.3f}" for b in boxes)
    lines = [f"**The targets at k = {TARGET_K}** (at 0.5, {len(boxes)} seeds): lift over the base "
             f"{lift:+.3f} (seeds: {seeds}; target "
             f"{TARGET_LIFT:+.2f}: {'met' if lift >= TARGET_LIFT else 'not met'}); fine-tuning "
             f"{max(minutes):.1f} CPU minutes at most (target {TARGET_MINUTES:g}: "
             f"{'met' if max(minutes) <= TARGET_MINUTES else 'not met'})"]
    if scratch:
        lines[0] += (f"; from ImageNet on the same boxes {np.mean(scratch):.3f} "
                     f"({'beaten' if np.mean(boxes) > np.mean(scratch) else 'not beaten'})")
    if masks:  # compared on the draws both have
        box_seeds = point_seeds(mine, points_label, TARGET_K, "boxes")
        mask_seeds = point_seeds(mine, points_label, TARGET_K, "masks")
        common = sorted(set(box_seeds) & set(mask_seeds))
        gap = float(np.mean([mask_seeds[s] - box_seeds[s] for s in common]))
        lines[0] += (f". On the {len(common)} draws that also have them, the same images' true masks lift it by "
                     f"{np.mean([mask_seeds[s] for s in common]) - floor:+.3f} against the boxes' "
                     f"{np.mean([box_seeds[s] for s in common]) - floor:+.3f}") + (
            ": what limits the lift is the few images and minutes of CPU, not boxes in place of masks"
            if gap < 0.02 else f": boxes in place of masks cost {gap:.3f}")
    return [lines[0] + ".", ""]


def report(record: dict, base_label: str, points_label: str | None = None, budget: str = DEFAULT_BUDGET,
           data: Path = DEFAULT_DATA, app: tuple[float, int, str] | None = None) -> None:
    """The curve of one base (``base_label``) and one budget (``points_label``: the base label and the budget's
    tag)."""
    points_label = points_label or base_label
    mine = {n: r for n, r in record.items() if n == f"base-{base_label}" or n.endswith(points_label)}
    base = mine.get(f"base-{base_label}", {})
    threshold = base.get("base_threshold")
    ks = sorted({r["k"] for r in mine.values() if r["k"]})
    chosen = BUDGETS[budget]
    forgeries = (f", {OWN_FRACTION:.0%} of the samples fresh forgeries made in those originals (no annotation needed)"
                 if chosen.hosts == "own" else "" if "data.synthetic_fraction=0" in chosen.extra
                 else ", the recipe's share of fresh forgeries made in the base's CASIA and BSDS photos")
    tables = []
    for key, what in (("coverage_f1", "at 0.5"),
                      ("coverage_f1_base_threshold", f"at the base model's calibrated threshold ({threshold})")):
        rows = []
        for k in ks:
            row: list = [k, f"{k * BOX_SECONDS / 60:.1f}", *([f"{k * app[0] / 60:.1f}"] if app else []),
                         f"{k * MASK_SECONDS / 60:.0f}", base.get(key)]
            row += [_mean_cell(point_scores(mine, points_label, k, condition, key), len(SEEDS))
                    for condition in CONDITIONS]
            if key == "coverage_f1":
                minutes = [r["train_minutes"] for r in mine.values() if r["k"] == k and "train_minutes" in r]
                row.append(f"{np.mean(minutes):.1f}" if minutes else "")
            rows.append(row)
        headers = ["k", "box minutes", *(["box minutes, app-timed"] if app else []), "mask minutes",
                   "base, no adaptation", *CONDITIONS.values()]
        if key == "coverage_f1":
            headers.append("CPU minutes per fine-tuning")
        tables += [f"COVERAGE test pixel F1 {what}, mean over seeds:", "", markdown_table(headers, rows), ""]
    def alarms(k: int, condition: str) -> str:  # mean over seeds of the median share marked, and of photos marked
        area = point_scores(mine, points_label, k, condition, "authentic_area_median")
        marked = point_scores(mine, points_label, k, condition, "authentic_marked")
        return f"{np.mean(area):.3f} ({np.mean(marked):.2f})" if area else ""

    if "authentic_area_median" in base:
        rows = [[k, f"{base['authentic_area_median']:.3f} ({base['authentic_marked']:.2f})",
                 *(alarms(k, condition) for condition in CONDITIONS)] for k in ks]
        tables += ["False alarms at 0.5 on COVERAGE test's 30 authentic originals (similar objects, no copy): the "
                   "median share of an original's pixels marked (and the share of originals with any pixel marked), "
                   "mean over the seeds measured:", "",
                   markdown_table(["k", "base, no adaptation", *CONDITIONS.values()], rows), ""]
    tuned = [r for k, r in read_json_or_empty(TUNE_RECORD).items() if k.startswith(f"{base_label}/")]
    if tuned:
        bases = {r.get("seed", TUNE_SEED): r["val_f1"] for r in tuned if r["budget"] is None}
        rows = [[r.get("seed", TUNE_SEED), r["budget"] or "no adaptation", r["val_f1"],
                 r["val_f1"] - bases[r.get("seed", TUNE_SEED)] if r.get("seed", TUNE_SEED) in bases else None,
                 r["val_authentic_marked"], r["train_minutes"]] for r in tuned]
        rows.sort(key=lambda row: (row[0], row[1] != "no adaptation"))
        tables += [f"Budgets tried on the k = {TUNE_K} draw of seed {TUNE_SEED}, scored at 0.5 on the COVERAGE train "
                   "images it leaves out (never COVERAGE test), next to the base without adaptation on the same "
                   "images; the two best again on the draw of the next seed, the better mean lift chosen; rows in "
                   "`docs/adaptation_tune_runs.json`:", "",
                   markdown_table(["draw", "budget", "held-out F1", "lift over the base", "held-out authentic marked",
                                   "CPU minutes"], rows), ""]
    figure = REPO / "docs" / "figures" / "adaptation_curve.png"
    if ks:
        plot_curve(mine, points_label, figure, base_key=f"base-{base_label}", app=app)
    markdown = "\n".join([
        "## The adaptation curve: what k boxes buy", "",
        f"Measured with `python -m benchmarks.adaptation` (base model `base-{base_label}`: its protocol row trained on "
        f"CASIA v1 boxes only; each point fine-tuned {chosen.epochs} x {chosen.samples} samples at lr {chosen.lr:g} "
        + "(from ImageNet: the recipe's rate" + (", and batch-norm statistics learned" if set(chosen.extra) &
                                                 set(FINE_TUNING_ONLY) else "")
        + ") on k COVERAGE training images and their originals"
        + (f", {chosen.what}" if chosen.what else "") + forgeries
        + ", 2 seeds = 2 draws of the k images; "
        "COVERAGE test pixel F1; minutes from the paper's 7 s per box image and 23 min per mask). A set of k images "
        "has no validation part, so nothing is calibrated on it: every point is scored at 0.5 and at the threshold "
        "the base model was calibrated to on its own CASIA validation split (never on COVERAGE). Rows kept in "
        "`docs/adaptation_runs.json`; a row without the second score was measured before that score was added and "
        f"its run folder is gone. A map marking every pixel scores {mark_everything_f1(data):.3f} on COVERAGE test: "
        "its copies are large, so F1s below that floor say little.", "",
        (f"Box minutes are also given at the {app[0]:.1f} s per image a person took in `bpiml serve` ({app[1]} images "
         f"timed in `{app[2]}`, `--annotations`)." if app else
         "No box file timed by a person in `bpiml serve` was given (`--annotations FILE` adds the app's mean seconds "
         "per image as a third cost axis); the browser test's boxes are drawn by a script, whose seconds are not an "
         "annotator's."), "",
        *target_lines(mine, points_label, base),
        *(tables if ks else ["No point measured yet.", ""]),
        f"![adaptation curve](figures/{figure.name})" if ks else "", ""])
    print(markdown)
    update_results_section("adaptation", markdown)


if __name__ == "__main__":
    main()
