"""The BoxPromptIML reference protocol: synthetic + COVERAGE training, real test sets, baselines.

Stages (each resumable; re-running the same command continues where it stopped):
  data    synthesize training images from BSDS train+val and validation images from BSDS test;
          simulate boxes for COVERAGE train (bpiml boxes defaults)
  pseudo  pseudo masks of every training image from the teachers the chosen runs need
  train   one student per run (checkpoint every epoch, resumed automatically)
  eval    each finished run's best checkpoint on CASIA v1 dev test (+ authentic) and COVERAGE
          test (+ the authentic originals of the test images); never used to choose anything
  report  table, training curves and a qualitative figure into docs/results.md (full mode only)
  ship    (only when asked) of the runs that need only boxes (method, box, grabcut, ablations),
          the one with the best validation F1 becomes the package's shipped model

Runs (the paper's claims, on the same student and data):
  method      box supervision through the default SAM teacher (the method)
  full        ground-truth masks (upper bound)
  box         filled boxes as targets (no teacher)
  grabcut     GrabCut teacher instead of SAM
  mgfm-off    plain FPN fusion instead of MGFM
  memory-off  MGFM without its memory bank
  gates-off   MGFM without its gates
  effnet      efficientnet_lite0 encoder instead of tinyvit5m

    python benchmarks/protocol.py                                  # everything, full size
    python benchmarks/protocol.py --quick                          # tiny sizes, end to end, < 10 min
    python benchmarks/protocol.py --stages train eval --runs full --threads 1   # one run, e.g. in parallel
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, REPO, machine_line, markdown_table, update_results_section  # noqa: E402

from boxpromptiml.boxes.from_masks import make_boxes  # noqa: E402
from boxpromptiml.data import load_dataset, read_image, read_mask  # noqa: E402
from boxpromptiml.data.coco import attach_boxes, read_coco_boxes  # noqa: E402
from boxpromptiml.data.samples import Dataset  # noqa: E402
from boxpromptiml.deployment.predictor import load_predictor  # noqa: E402
from boxpromptiml.deployment.shipped import ship_model  # noqa: E402
from boxpromptiml.evaluation import evaluate_prediction_dir, evaluate_predictor  # noqa: E402
from boxpromptiml.fileio import write_json_atomic  # noqa: E402
from boxpromptiml.pseudo_labels.generate import generate_pseudo_labels  # noqa: E402
from boxpromptiml.student.model import StudentConfig  # noqa: E402
from boxpromptiml.synthesis import SynthesisConfig, synthesize  # noqa: E402
from boxpromptiml.teachers import create_teacher  # noqa: E402
from boxpromptiml.training.config import DataConfig, OptimConfig, TrainConfig, TrainSource  # noqa: E402
from boxpromptiml.training.loop import read_metrics, train  # noqa: E402

log = logging.getLogger("protocol")
PAPER_F1 = {"CASIA v1": 0.552, "COVERAGE": 0.403}  # the paper's box-supervised pixel F1


@dataclass(frozen=True)
class Sizes:
    synth_tampered: int
    synth_authentic: int
    val_tampered: int
    val_authentic: int
    coverage_train: int | None  # None: all 70
    epochs: int
    input_size: int
    batch_size: int
    test_limit: int | None  # None: the whole test sets


FULL = Sizes(400, 100, 80, 20, None, 8, 256, 8, None)
QUICK = Sizes(8, 2, 4, 2, 4, 1, 64, 4, 8)


@dataclass(frozen=True)
class RunSpec:
    what: str
    supervision: str = "pseudo"
    teacher: str = "litemedsam"
    overrides: tuple[str, ...] = ()


# The protocol's student, pinned so that the rows stay comparable whatever the library's default is.
PROTOCOL_STUDENT = ("student.encoder=tinyvit5m",)
RUNS = {
    "method": RunSpec("box supervision through the SAM teacher (the method)"),
    "full": RunSpec("full supervision, ground-truth masks (upper bound)", supervision="full"),
    "box": RunSpec("filled boxes as targets (no teacher)", supervision="box"),
    "grabcut": RunSpec("GrabCut teacher instead of SAM", teacher="grabcut"),
    "mgfm-off": RunSpec("plain FPN fusion (no MGFM)", overrides=("student.fusion=fpn",)),
    "memory-off": RunSpec("MGFM without the memory bank", overrides=("student.use_memory=false",)),
    "gates-off": RunSpec("MGFM without the gates", overrides=("student.use_gates=false",)),
    "effnet": RunSpec("efficientnet_lite0 encoder", overrides=("student.encoder=efficientnet_lite0",)),
}
TEST_SETS = {  # name -> (tampered list, authentic list, first authentic id kept)
    "CASIA v1": ("casia1_dev/test.json", "casia1_dev/authentic.json", None),
    # COVERAGE's authentic.json holds the originals of all 100 images; only 71-100 belong to the test split.
    "COVERAGE": ("coverage/test.json", "coverage/authentic.json", 71),
}


class Paths:
    def __init__(self, work: Path, data: Path, record: Path) -> None:
        self.work, self.data, self.record = work, data, record
        self.synth_train = work / "synth_train"
        self.synth_val = work / "synth_val"
        self.coverage_train = work / "coverage_train.json"  # COVERAGE train.json (first n in --quick)
        self.coverage_boxes = work / "coverage_train_boxes.json"

    def pseudo(self, teacher: str, source: str) -> Path:
        return self.work / "pseudo_labels" / teacher / source

    def run(self, name: str) -> Path:
        return self.work / "runs" / name


def _limit(dataset: Dataset, n: int | None) -> Dataset:
    return dataset if n is None else dataset.replace_samples(dataset.samples[:n])


def coverage_train(paths: Paths) -> Dataset:
    dataset = load_dataset(paths.coverage_train)
    return attach_boxes(dataset, read_coco_boxes(paths.coverage_boxes), source=str(paths.coverage_boxes))


def stage_data(paths: Paths, sizes: Sizes) -> None:
    bsds = paths.data / "bsds500"
    if not (paths.synth_train / "synthesis.json").is_file():
        synthesize(bsds, paths.synth_train, SynthesisConfig(n_tampered=sizes.synth_tampered,
                                                            n_authentic=sizes.synth_authentic, seed=0),
                   splits=("train", "val"), prefix="syn")
    if not (paths.synth_val / "synthesis.json").is_file():
        synthesize(bsds, paths.synth_val, SynthesisConfig(n_tampered=sizes.val_tampered,
                                                          n_authentic=sizes.val_authentic, seed=1),
                   splits=("test",), prefix="val")
    if not paths.coverage_train.is_file():
        dataset = _limit(load_dataset(paths.data / "coverage" / "train.json"), sizes.coverage_train)
        write_json_atomic(paths.coverage_train, [[str(s.image.resolve()), str(s.mask.resolve())] for s in dataset])
    if not paths.coverage_boxes.is_file():
        run = make_boxes(load_dataset(paths.coverage_train), paths.coverage_boxes)
        if run.failures:
            raise SystemExit(f"COVERAGE boxes failed: {run.summary()}")


def training_sources(paths: Paths, teacher: str) -> tuple[TrainSource, ...]:
    return (
        TrainSource(str(paths.synth_train / "dataset.json"), str(paths.synth_train / "boxes.json"),
                    str(paths.pseudo(teacher, "synth"))),
        TrainSource(str(paths.coverage_train), str(paths.coverage_boxes), str(paths.pseudo(teacher, "coverage"))),
    )


def stage_pseudo(paths: Paths, sizes: Sizes, runs: list[str]) -> dict[str, dict]:
    """Pseudo masks for every teacher the runs need; returns their quality against the exact masks."""
    quality = {}
    for teacher_name in sorted({RUNS[r].teacher for r in runs if RUNS[r].supervision == "pseudo"}):
        teacher = create_teacher(teacher_name)
        synth = load_dataset(paths.synth_train / "dataset.json")
        synth = attach_boxes(synth, read_coco_boxes(paths.synth_train / "boxes.json"))
        for source, dataset in (("synth", synth), ("coverage", coverage_train(paths))):
            out = paths.pseudo(teacher_name, source)
            run = generate_pseudo_labels(dataset, teacher, out)
            if run.failures:
                log.warning("pseudo labels %s/%s: %s", teacher_name, source, run.summary())
            tampered = dataset.replace_samples([s for s in dataset.tampered if (out / f"{s.name}.png").is_file()])
            report, _ = evaluate_prediction_dir(tampered, out)
            quality[f"{teacher_name}|{source}"] = {"f1": report.pixel_f1, "iou": report.pixel_iou,
                                                   "n": report.n_tampered}
            log.info("pseudo masks %s on %s: F1 %.3f IoU %.3f", teacher_name, source, report.pixel_f1,
                     report.pixel_iou)
    write_json_atomic(paths.work / "pseudo_quality.json",
                      {**_read_json(paths.work / "pseudo_quality.json"), **quality})
    return quality


def run_config(name: str, paths: Paths, sizes: Sizes, threads: int, workers: int) -> TrainConfig:
    spec = RUNS[name]
    config = TrainConfig(
        data=DataConfig(train=training_sources(paths, spec.teacher), val=(str(paths.synth_val / "dataset.json"),),
                        supervision=spec.supervision),
        optim=replace(OptimConfig(), epochs=sizes.epochs, batch_size=sizes.batch_size, threads=threads,
                      workers=workers),
    )
    return config.override([f"student.input_size={sizes.input_size}", *PROTOCOL_STUDENT, *spec.overrides])


def stage_train(paths: Paths, sizes: Sizes, runs: list[str], threads: int, workers: int) -> None:
    for name in runs:
        log.info("training run %s: %s", name, RUNS[name].what)
        train(run_config(name, paths, sizes, threads, workers), paths.run(name))


def test_datasets(data: Path, limit: int | None) -> dict[str, Dataset]:
    out = {}
    for name, (tampered, authentic, first_id) in TEST_SETS.items():
        tp = _limit(load_dataset(data / tampered), limit)
        au = load_dataset(data / authentic)
        if first_id is not None:
            au = au.replace_samples([s for s in au if int(s.name) >= first_id])
        au = _limit(au, None if limit is None else max(2, limit // 2))
        out[name] = tp.replace_samples(tp.samples + au.samples)
    return out


def _finished(run_dir: Path, epochs: int) -> bool:
    rows = _metrics(run_dir)
    return len(rows) >= epochs


def _metrics(run_dir: Path) -> list[dict]:
    return read_metrics(run_dir / "metrics.csv")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def stage_eval(paths: Paths, sizes: Sizes, runs: list[str], threads: int) -> None:
    torch.set_num_threads(threads)
    tests = test_datasets(paths.data, sizes.test_limit)
    for name in runs:
        run_dir = paths.run(name)
        out = run_dir / "test_scores.json"
        if not _finished(run_dir, sizes.epochs) or out.is_file():
            continue
        predictor = load_predictor(run_dir / "best")
        scores = {}
        for test_name, dataset in tests.items():
            started = time.perf_counter()
            report, run = evaluate_predictor(dataset, predictor.predict, desc=f"{name} on {test_name}")
            scores[test_name] = {**report.to_dict(), "seconds": round(time.perf_counter() - started, 1),
                                 "failures": run.failures}
            log.info("%s on %s: pixel F1 %.3f", name, test_name, report.pixel_f1)
        write_json_atomic(out, scores)


def stage_ship(paths: Paths, sizes: Sizes) -> str | None:
    """Ship the run with the best *validation* F1 among those that need only boxes (teacher pseudo masks or
    filled boxes; not ground-truth masks). Test sets never choose anything.

    Runs recorded in earlier sessions compete with their recorded validation F1; only a run whose checkpoint is
    in the work folder can replace the shipped model, so a better recorded run keeps its place."""
    recorded = collect_record(paths)["runs"]
    candidates = {}
    for name, spec in RUNS.items():
        state = _read_json(paths.run(name) / "best" / "state.json")
        if spec.supervision in ("pseudo", "box") and state.get("best_val_f1") is not None and _finished(paths.run(name),
                                                                                              sizes.epochs):
            candidates[name] = state["best_val_f1"]
        elif spec.supervision in ("pseudo", "box") and recorded.get(name, {}).get("best_val_f1") is not None:
            candidates[name] = recorded[name]["best_val_f1"]
    history = json.loads(SHIPPED_HISTORY.read_text()) if SHIPPED_HISTORY.is_file() else []
    if not candidates:
        log.warning("nothing to ship: no finished run trained from boxes")
        return None
    best = max(candidates, key=candidates.get)
    if history and history[-1]["run"] == best and history[-1]["val_f1"] >= candidates[best]:
        log.info("the shipped model (%s, validation F1 %.3f) is still the best of %s; nothing replaced", best,
                 history[-1]["val_f1"], {k: round(v, 3) for k, v in candidates.items()})
        return best
    if not (paths.run(best) / "best").is_dir():
        log.warning("the best run by validation F1, %s, has no checkpoint here; nothing replaced", best)
        return None
    scores = _read_json(paths.run(best) / "test_scores.json")
    note = {
        "summary": f"run '{best}' of benchmarks/protocol.py ({RUNS[best].what}); chosen among "
                   f"{sorted(candidates)} by validation pixel F1 {candidates[best]:.3f} on synthetic BSDS-test images",
        "trained_on": f"{sizes.synth_tampered} + {sizes.synth_authentic} synthetic images from BSDS500 train+val "
                      "(bpiml synthesize, seed 0) and the 70 COVERAGE train images; boxes simulated from masks; "
                      "targets: " + (f"{RUNS[best].teacher} pseudo masks" if RUNS[best].supervision == "pseudo"
                                     else "the filled boxes"),
        "config": _read_json(paths.run(best) / "config.json"),
        "test_scores": {t: {k: v for k, v in sc.items() if k in ("pixel_f1", "pixel_iou", "pixel_auc", "image_auc")}
                        for t, sc in scores.items()},
        "command": "python benchmarks/protocol.py",
    }
    out = ship_model(paths.run(best) / "best", note)
    log.info("shipped %s to %s", best, out)
    record_shipment(best, candidates, scores)
    return best


SHIPPED_HISTORY = REPO / "docs" / "shipped_models.json"


def record_shipment(run: str, candidates: dict[str, float], scores: dict) -> None:
    """Append the replacement to docs/shipped_models.json and rewrite the results section from it."""
    history = json.loads(SHIPPED_HISTORY.read_text()) if SHIPPED_HISTORY.is_file() else []
    history.append({"date": time.strftime("%Y-%m-%d %H:%M"), "run": run, "what": RUNS[run].what,
                    "val_f1": candidates[run], "candidates": candidates,
                    "test_f1": {t: sc.get("pixel_f1") for t, sc in scores.items()}})
    write_json_atomic(SHIPPED_HISTORY, history)
    rows = [[h["date"], f"`{h['run']}`", h["what"], h["val_f1"]] + [h["test_f1"].get(t) for t in TEST_SETS]
            + [", ".join(f"{k} {v:.3f}" for k, v in h["candidates"].items())] for h in history]
    update_results_section("shipped", "\n".join([
        "## The shipped model and its replacements", "",
        "Written by `python benchmarks/protocol.py --stages ship`: of the finished runs trained from boxes only, "
        "the one with the best validation pixel F1 (synthetic BSDS-test images) is shipped as fp16 safetensors "
        "in `src/boxpromptiml/deployment/shipped_model/`. Newest last.", "",
        markdown_table(["date", "run", "what", "val F1"] + [f"{t} test F1" for t in TEST_SETS]
                       + ["candidates (val F1)"], rows), ""]))


# -- the run record ------------------------------------------------------------------------------

RUN_RECORD = REPO / "docs" / "protocol_runs.json"
EARLIER_CURVES = REPO / "docs" / "figures" / "protocol_curves_earlier.png"  # runs recorded before metrics were kept


def _number(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def run_summary(paths: Paths, name: str) -> dict | None:
    """What the report needs of one evaluated run in the work folder, small enough to commit."""
    run_dir = paths.run(name)
    scores_file = run_dir / "test_scores.json"
    if not scores_file.is_file():
        return None
    metrics = [{"epoch": int(r["epoch"]), "train_loss": _number(r["train_loss"]),
                "val_pixel_f1": _number(r["val_pixel_f1"]), "seconds": _number(r["seconds"])}
               for r in _metrics(run_dir)]
    return {
        "what": RUNS[name].what,
        "evaluated": time.strftime("%Y-%m-%d %H:%M", time.gmtime(scores_file.stat().st_mtime)),
        "machine": machine_line(threads=False),
        "config": json.loads((run_dir / "config.json").read_text().replace(f"{REPO}/", "")),
        "best_val_f1": _read_json(run_dir / "best" / "state.json").get("best_val_f1"),
        "train_minutes": round(sum(m["seconds"] or 0.0 for m in metrics) / 60, 1) if metrics else None,
        "metrics": metrics,
        "test_scores": _read_json(scores_file),
    }


def _headline(summary: dict) -> dict:
    return {"evaluated": summary.get("evaluated"), "train_minutes": summary.get("train_minutes"),
            "best_val_f1": summary.get("best_val_f1"),
            "test_f1": {t: s.get("pixel_f1") for t, s in summary["test_scores"].items()}}


def collect_record(paths: Paths) -> dict:
    """The record of every evaluated run: the committed file, updated from the runs in the work folder.

    Run folders (checkpoints, pseudo masks) are too big to commit and do not survive a new machine; the record
    does, so the report can show runs made in earlier sessions next to new ones. A run evaluated again with
    different test scores keeps its earlier headline numbers under ``earlier``."""
    record = json.loads(paths.record.read_text()) if paths.record.is_file() else {}
    runs, quality = record.get("runs", {}), record.get("pseudo_quality", {})
    quality.update(_read_json(paths.work / "pseudo_quality.json"))
    for name in RUNS:
        summary = run_summary(paths, name)
        if summary is None:
            continue
        old = runs.get(name)
        if old is not None:
            earlier = old.get("earlier", [])
            if old["test_scores"] != summary["test_scores"]:
                earlier = earlier + [_headline(old)]
            if earlier:
                summary["earlier"] = earlier
        runs[name] = summary
    return {"pseudo_quality": dict(sorted(quality.items())),
            "runs": {name: runs[name] for name in RUNS if name in runs}}


# -- report -------------------------------------------------------------------------------------


def plot_curves(runs: dict[str, dict], out: Path) -> list[str]:
    """Training loss and validation F1 per epoch of the recorded runs that kept them; returns their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(10, 3.6))
    shown = [name for name, summary in runs.items() if summary.get("metrics")]
    for name in shown:
        rows = runs[name]["metrics"]
        epochs = [r["epoch"] + 1 for r in rows]
        ax_loss.plot(epochs, [r["train_loss"] for r in rows], marker="o", label=name)
        ax_f1.plot(epochs, [np.nan if r["val_pixel_f1"] is None else r["val_pixel_f1"] for r in rows], marker="o",
                   label=name)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss (BCE + 0.5 Dice)")
    ax_f1.set(xlabel="epoch", ylabel="pixel F1", title="validation (synthetic, BSDS test)")
    ax_f1.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return shown


def qualitative_figure(paths: Paths, out: Path, per_set: int = 3) -> None:
    """image | ground truth | pseudo mask (default teacher, simulated box) | method's prediction."""
    import cv2

    from boxpromptiml.boxes.simulate import BoxSimulationConfig, rng_for, simulate_boxes

    predictor = load_predictor(paths.run("method") / "best")
    teacher = create_teacher("litemedsam")
    rows = []
    for tampered, _, _ in TEST_SETS.values():
        dataset = load_dataset(paths.data / tampered)
        for sample in dataset.tampered[:per_set]:
            image, mask = read_image(sample.image), read_mask(sample.mask)
            boxes = simulate_boxes(mask, BoxSimulationConfig(), rng_for(sample.name, 0))
            pseudo = teacher.segment(image, boxes)
            pred = predictor.predict(image).probability
            boxed = image.copy()
            for b in boxes:
                cv2.rectangle(boxed, (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2)), (255, 255, 0), 2)
            tiles = [boxed] + [np.repeat((m * 255).astype(np.uint8)[..., None], 3, axis=2) for m in
                               (mask.astype(np.float32), pseudo, pred)]
            tiles = [cv2.resize(t, (192, int(192 * image.shape[0] / image.shape[1]))) for t in tiles]
            height = max(t.shape[0] for t in tiles)
            tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0)), constant_values=255) for t in tiles]
            rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                           for r in rows])
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), grid[..., ::-1])


ABLATIONS = {"mgfm-off": "the whole MGFM", "memory-off": "the memory bank", "gates-off": "the gates"}


def interpret(means: dict[str, float], runs: dict[str, dict]) -> list[str]:
    """The paper's claims against these rows, in words computed from the numbers."""
    out = []
    paper = float(np.mean(list(PAPER_F1.values())))
    if "method" in means:
        out.append(f"- The method's mean F1 is {means['method']:.3f}, {paper - means['method']:.3f} below the paper's "
                   f"{paper:.3f}: the claim of matching the paper does not hold on this CPU protocol.")
    if "method" in means and means.get("full"):
        verdict = "holds" if means["method"] >= 0.9 * means["full"] else "does not hold"
        out.append(f"- Box supervision through the teacher reaches {means['method'] / means['full']:.2f}x full "
                   f"supervision: the claim that it rivals full supervision {verdict} here (both are weak).")
    if "method" in means and "box" in means:
        diff = means["method"] - means["box"]
        out.append(f"- The teacher against filled-box targets: {diff:+.3f} mean F1. "
                   + ("The teacher helps." if diff > 0 else
                      "Here the teacher does not help: with an under-trained student, box targets push it to mark "
                      "larger areas, which the 0.5-threshold F1 rewards; pseudo masks are far more accurate "
                      "(see the pseudo-mask table) but the student cannot yet use the precision."))
    for name, label in (("grabcut", "GrabCut teacher"), ("mgfm-off", "plain FPN instead of MGFM"),
                        ("memory-off", "no memory"), ("gates-off", "no gates"), ("effnet", "efficientnet_lite0")):
        if name in means and "method" in means:
            diff = means[name] - means["method"]
            verdict = ""
            if name in ABLATIONS:
                verdict = (f" The paper's claim that {ABLATIONS[name]} helps "
                           + ("holds" if diff < 0 else "does not hold") + " here (one run each).")
            out.append(f"- {label}: {diff:+.3f} mean F1 against the method.{verdict}")
    vals = {n: runs[n].get("best_val_f1") for n in means}
    vals = {n: v for n, v in vals.items() if v is not None and RUNS[n].supervision != "full"}
    if len(vals) > 1:
        by_val, by_test = max(vals, key=vals.get), max(vals, key=lambda n: means[n])
        if by_val != by_test:
            out.append(f"- Validation on synthetic images picks `{by_val}` (val F1 {vals[by_val]:.3f}), "
                       f"but `{by_test}` is best on the test sets ({means[by_test]:.3f} against {means[by_val]:.3f}): "
                       "the synthetic validation set is a weak stand-in for real forgeries.")
    out += default_configuration(vals)
    if out:
        out += ["- What limits these numbers: the training data (500 synthetic BSDS forgeries + 70 COVERAGE images, "
                "against the paper's 12k CASIA v2 images whose style matches CASIA v1), 8 epochs at 256 px on a "
                "2-core CPU (validation F1 was noisy and, with full supervision, still rising), "
                "and (for `tinyvit5m`) an encoder "
                "pretrained on medical images, not "
                "ImageNet. The qualitative figure shows the student marking salient objects: synthetic splices "
                "of whole objects teach it saliency more than manipulation traces.", ""]
    return out


def default_configuration(vals: dict[str, float]) -> list[str]:
    """Which run's configuration should be the default (best validation F1 of the box-trained runs), and whether
    the library's default student is that configuration."""
    if not vals:
        return []
    best = max(vals, key=vals.get)
    student = TrainConfig().override([*PROTOCOL_STUDENT, *RUNS[best].overrides]).student
    default = StudentConfig()
    differs = [f"{k} {getattr(default, k)} (best run: {getattr(student, k)})" for k in
               ("encoder", "fusion", "use_gates", "use_memory") if getattr(student, k) != getattr(default, k)]
    return [f"- Default configuration: `{best}` ({RUNS[best].what}) has the best validation F1 of the runs trained "
            f"from boxes ({vals[best]:.3f}; " + ", ".join(f"{n} {v:.3f}" for n, v in vals.items() if n != best)
            + "). It is the shipped model (`bpiml predict`, `evaluate`, `robustness`, `demo`); "
            + ("`bpiml train`'s default student is the same configuration." if not differs else
               "`bpiml train`'s default student differs: " + "; ".join(differs) + ".")]


def render(record: dict, sizes: Sizes, curves: list[str]) -> str:
    quality, runs = record["pseudo_quality"], record["runs"]
    lines = ["## Reference protocol: synthetic + COVERAGE training, real test sets", "",
             f"Measured with `python benchmarks/protocol.py` on {machine_line(threads=False)}. Training: "
             f"{sizes.synth_tampered} synthetic forgeries + {sizes.synth_authentic} authentic images from BSDS500 "
             "train+val (`bpiml synthesize`, seed 0) and the 70 COVERAGE train copy-moves, boxes simulated from the "
             "masks (10% margin, 5% jitter), targets from the run's teacher. Validation (checkpoint choice only): "
             f"{sizes.val_tampered} + {sizes.val_authentic} synthetic images from BSDS test. Student "
             f"`tinyvit5m` + MGFM at {sizes.input_size} px unless the row says otherwise, {sizes.epochs} epochs, "
             f"batch {sizes.batch_size}, AdamW + cosine. Test sets, never used to choose anything: CASIA v1 dev "
             "`test.json` (200) + `authentic.json` (100); COVERAGE `test.json` (30) + the authentic originals "
             "71-100. Pixel F1 / IoU at 0.5, mean over tampered images; pixel AUC per image; image AUC from the "
             "max of the map.", ""]
    if quality:
        lines += ["Pseudo-mask quality on the training images (against their exact masks):", "",
                  markdown_table(["teacher", "training source", "F1", "IoU", "images"],
                                 [[t.split("|")[0], t.split("|")[1], q["f1"], q["iou"], q["n"]]
                                  for t, q in sorted(quality.items())]), ""]
    headers = ["run", "what", "train min"] + [f"{t} {m}" for t in TEST_SETS for m in ("F1", "IoU", "pAUC", "iAUC")] \
        + ["mean F1"]
    rows = [["paper (box-supervised)", "Guo et al. 2026, TinyViT + MGFM, CASIA v2 training", None]
            + [v for t in TEST_SETS for v in (PAPER_F1[t], None, None, None)]
            + [float(np.mean(list(PAPER_F1.values())))]]
    means = {}
    for name, summary in runs.items():
        scores = summary["test_scores"]
        row = [f"`{name}`", RUNS[name].what, summary.get("train_minutes")]
        for t in TEST_SETS:
            s = scores.get(t, {})
            row += [s.get("pixel_f1"), s.get("pixel_iou"), s.get("pixel_auc"), s.get("image_auc")]
        means[name] = float(np.mean([scores[t]["pixel_f1"] for t in TEST_SETS]))
        rows.append(row + [means[name]])
    lines += [markdown_table(headers, rows), ""]
    if means.get("method") is not None and means.get("full"):
        lines += [f"Ratio of box supervision (method) to full supervision in mean pixel F1: "
                  f"**{means['method'] / means['full']:.3f}** (target >= 0.9).", ""]
    lines += interpret(means, runs)
    for name, summary in runs.items():
        for old in summary.get("earlier", []):
            then = float(np.mean([old["test_f1"][t] for t in TEST_SETS]))
            lines.append(f"- `{name}` was trained and evaluated again ({summary['evaluated']}, on the data the same "
                         f"seeds regenerate): mean F1 {means[name]:.3f}; its earlier run ({old['evaluated']}) gave "
                         f"{then:.3f}: how far two runs of the same row can differ.")
    dates = sorted({summary["evaluated"][:10] for summary in runs.values()})
    multi_threaded = {n: (s.get("config") or {}).get("optim", {}).get("threads", 1) for n, s in runs.items()}
    multi_threaded = {n: t for n, t in multi_threaded.items() if t != 1}
    lines += ["", "Each row: `python benchmarks/protocol.py --runs NAME`; its config, per-epoch metrics and scores are "
              "kept in `docs/protocol_runs.json` (the run folders under `runs/protocol/` are not committed); train "
              "min = wall time of all epochs, each run on 1 thread beside another run on the second core"
              + "".join(f", except `{n}` (alone on {t} threads)" for n, t in multi_threaded.items()) + ". "
              f"Runs evaluated on {', '.join(dates)}.", "",
              f"Training curves of the runs whose per-epoch metrics were kept ({', '.join(curves)}):", "",
              "![training curves](figures/protocol_curves.png)", ""]
    without = [name for name, summary in runs.items() if not summary.get("metrics")]
    if without and EARLIER_CURVES.is_file():
        lines += [f"Curves of {', '.join(without)}, drawn by the report on the machine that trained them (their "
                  "per-epoch metrics were not kept then):", "",
                  f"![earlier training curves](figures/{EARLIER_CURVES.name})", ""]
    lines += [
              "Test images, first three of each set (CASIA v1, then COVERAGE): image with its simulated box | "
              "ground truth | pseudo mask of the default teacher | prediction of the `method` student.", "",
              "![qualitative](figures/protocol_examples.png)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--work", type=Path, help="working folder (default: runs/protocol, runs/protocol-quick)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the whole protocol in a few minutes")
    parser.add_argument("--stages", nargs="+", default=["data", "pseudo", "train", "eval", "report"],
                        choices=["data", "pseudo", "train", "eval", "report", "ship"],
                        help="ship (not by default): copy the run trained from boxes only (teacher or filled "
                             "boxes) with the best validation F1 into the package as its shipped model")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="data-loading worker processes (default 1)")
    parser.add_argument("--epochs", type=int, help="override the number of epochs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not (args.data / "bsds500").is_dir():
        raise SystemExit(f"no shared data at {args.data}")
    sizes = QUICK if args.quick else FULL
    if args.epochs:
        sizes = replace(sizes, epochs=args.epochs)
    work = args.work or REPO / "runs" / ("protocol-quick" if args.quick else "protocol")
    paths = Paths(work, args.data, work / "protocol_runs.json" if args.quick else RUN_RECORD)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if "data" in args.stages:
        stage_data(paths, sizes)
    if "pseudo" in args.stages:
        stage_pseudo(paths, sizes, args.runs)
    if "train" in args.stages:
        stage_train(paths, sizes, args.runs, args.threads, args.workers)
    if "eval" in args.stages:
        stage_eval(paths, sizes, args.runs, args.threads)
    if "ship" in args.stages and not args.quick:
        stage_ship(paths, sizes)
    if "report" in args.stages:
        record = collect_record(paths)
        write_json_atomic(paths.record, record)
        figures = REPO / "docs" / "figures" if not args.quick else work / "figures"
        curves = plot_curves(record["runs"], figures / "protocol_curves.png")
        if (paths.run("method") / "best").is_dir():
            qualitative_figure(paths, figures / "protocol_examples.png")
        markdown = render(record, sizes, curves)
        print(markdown)
        if not args.quick:
            update_results_section("protocol", markdown)
    log.info("protocol stages %s done in %.1f min", " ".join(args.stages), (time.perf_counter() - started) / 60)


if __name__ == "__main__":
    main()
