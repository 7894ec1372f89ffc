"""Stage ``report``: the v2 table, training curves (fit next to validation) and what moved F1."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common import REPO, markdown_table
from .layout import PAPER_F1, TEST_SETS
from .runs import RUNS

CURVES = REPO / "docs" / "figures" / "protocol_v2_curves.png"
# (row, reference row, lever): each difference of mean test F1 the report states in words
LEVERS = [("method-srm", "method", "the SRM noise-residual branch"),
          ("method-synth", "method", "30% on-the-fly forgeries"),
          ("traces", "method", "SRM branch + 30% on-the-fly forgeries"),
          ("box", "method", "filled boxes instead of the teacher"),
          ("grabcut", "method", "GrabCut instead of the SAM teacher"),
          ("mgfm-off", "method", "plain FPN instead of MGFM"),
          ("memory-off", "method", "removing the memory bank"), ("gates-off", "method", "removing the gates"),
          ("tinyvit", "method", "TinyViT-5M instead of EfficientNet-Lite0"),
          ("resize", "method", "squeezing images to 256 px instead of native crops"),
          ("method-objects", "method-synth", "half of the forgeries object-shaped"),
          ("method-synth-short", "method-synth", "a 10,000-sample budget with a weight average (against 20,000)"),
          ("method-objects-short", "method-synth-short", "half of the forgeries object-shaped (10,000 samples)"),
          ("full-synth", "full", "30% on-the-fly forgeries under full supervision"),
          ("method-synth-fallback", "method-synth", "the teacher keeping SAM alone where GrabCut marks nothing"),
          ("method-synth-head", "method-synth", "an image-level score head"),
          ("copymove-nofa", "method-synth", "the copy-move branch, plain clones and JPEG on every sample (10,000 "
                                            "samples against 20,000)"),
          ("copymove", "copymove-nofa", "the false-alarm term (ramped in)"),
          ("finetune-fa", "method-synth", "fine-tuning the shipped method-synth with the false-alarm term at 0.1 and "
                                          "JPEG on every sample (6,000 samples)"),
          ("finetune-nofa", "finetune-fa", "the false-alarm term in the fine-tuning"),
          ("method-synth-bf16", "method-synth", "bf16 autocast instead of fp32"),
          ("copymove-nofa-long", "copymove-nofa", "20,000 samples instead of 10,000 for the copy-move recipe"),
          ("synth-grid", "method-synth-bf16", "no colour jitter, crops on the JPEG grid, 14,000 samples (bf16 both)"),
          ("jpeg-ghost", "synth-grid", "the JPEG compression-history branch"),
          ("jpeg-ghost-seed1", "synth-grid-seed1", "the JPEG compression-history branch (seed 1)"),
          ("jpeg-ghost-copymove", "jpeg-ghost", "the copy-move branch and plain clones on top of the JPEG branch")]
# (box-supervised row, its fully-supervised twin): the same recipe with the teacher's targets or the true masks
SUPERVISION_PAIRS = [("method", "full"), ("method-synth", "full-synth"), ("method-synth-short", "full-synth-short"),
                     ("jpeg-ghost", "jpeg-ghost-full")]


def plot_curves(runs: dict[str, dict], out: Path) -> list[str]:
    """One panel per run (small multiples, same axes): pixel F1 on the training targets (dashed) and on
    validation (solid) against samples seen, the best validation epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [name for name, summary in runs.items() if summary.get("metrics")]
    columns = min(4, max(1, len(shown)))
    rows_of_panels = max(1, -(-len(shown) // columns))
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(3.2 * columns, 2.4 * rows_of_panels), sharex=True,
                             sharey=True, squeeze=False)
    for ax, name in zip(axes.flat, shown, strict=False):
        rows = runs[name]["metrics"]
        seen = [r["samples_seen"] / 1000 for r in rows]
        val = [np.nan if r["val_pixel_f1"] is None else r["val_pixel_f1"] for r in rows]
        ax.plot(seen, val, color="C0", marker="o", markersize=2, label="validation")
        ax.plot(seen, [np.nan if r["fit_pixel_f1"] is None else r["fit_pixel_f1"] for r in rows], color="C1",
                linestyle="--", label="training fit")
        if not np.all(np.isnan(val)):
            best = int(np.nanargmax(val))
            ax.plot([seen[best]], [val[best]], marker="*", color="C3", markersize=8)
        ax.set_title(name, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for index in range(len(shown), axes.size):  # empty panels; the panel above carries the column's x axis
        axes.flat[index].axis("off")
    for column in range(min(columns, len(shown))):
        lowest = axes[(len(shown) - 1 - column) // columns, column]
        lowest.xaxis.set_tick_params(labelbottom=True)
        lowest.set_xlabel("samples seen (thousands)", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("pixel F1", fontsize=7)
    axes.flat[0].legend(fontsize=6)
    fig.suptitle("fit to the training targets (dashed) and validation (solid; star: the checkpoint kept)",
                 fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return shown


def mean_f1(summary: dict, key: str = "test_scores") -> float | None:
    """Mean test pixel F1 of a run (``key``: test_scores as trained, test_scores_calibrated with the pixel
    threshold set on validation); None when not measured."""
    scores = summary.get(key)
    return float(np.mean([scores[t]["pixel_f1"] for t in TEST_SETS])) if scores else None


def calibrated_threshold(summary: dict) -> float | None:
    scores = summary.get("test_scores_calibrated")
    return scores["pixel_calibration"]["threshold"] if scores else None


def interpret(runs: dict[str, dict]) -> list[str]:
    """The levers, and the paper's claims, in words computed from the numbers."""
    means = {name: mean_f1(s) for name, s in runs.items()}
    out = []
    for box_row, full_row in SUPERVISION_PAIRS:
        for key, how in (("test_scores", "at 0.5"), ("test_scores_calibrated", "each with its validation-set "
                                                                                "pixel threshold")):
            box_mean, full_mean = (mean_f1(runs[r], key) if r in runs else None for r in (box_row, full_row))
            if not box_mean or not full_mean:
                continue
            ratio = box_mean / full_mean
            per_set = ", ".join(f"{t} {runs[box_row][key][t]['pixel_f1'] / full_f1:.2f}"
                                for t in TEST_SETS if (full_f1 := runs[full_row][key][t]["pixel_f1"]))
            out.append(f"- Box supervision through the teacher (`{box_row}`) reaches {ratio:.2f}x full supervision "
                       f"(`{full_row}`) in mean pixel F1 {how} ({per_set}; target >= 0.9: "
                       f"{'met' if ratio >= 0.9 else 'not met'}).")
    for row, reference, lever in LEVERS:
        if row in means and reference in means:
            diff = means[row] - means[reference]
            val = [runs[n].get("best_val_f1") for n in (row, reference)]
            val_text = f", validation F1 {val[0] - val[1]:+.3f}" if None not in val else ""
            calibrated = [mean_f1(runs[n], "test_scores_calibrated") for n in (row, reference)]
            cal_text = f" ({calibrated[0] - calibrated[1]:+.3f} calibrated)" if None not in calibrated else ""
            out.append(f"- {lever}: {diff:+.3f} mean test F1 at 0.5{cal_text}{val_text} (one run each).")
    return out


def group_value(scores: dict, name: str, key: str = "pixel_f1") -> float | None:
    """One number of a named group row of an evaluation's JSON (None when the group is absent)."""
    return next((g[key] for g in scores.get("groups", []) if g["group"] == name), None)


def by_type_table(runs: dict[str, dict]) -> list[str]:
    """Per manipulation type and false alarms, for the rows whose scores have groups (measured since issue 23)."""
    rows = []
    for name, summary in runs.items():
        for key, how in (("test_scores", "0.5"), ("test_scores_calibrated", "cal.")):
            scores = summary.get(key) or {}
            casia = scores.get("CASIA v1") or {}
            if not casia.get("groups"):
                continue
            coverage = scores.get("COVERAGE") or {}
            rows.append([f"`{name}`", how, casia["pixel_f1"], group_value(casia, "spliced"),
                         group_value(casia, "copy-moved"),
                         group_value(casia, "copy-moved", "missed_rate"), casia.get("authentic_marked_rate"),
                         casia.get("authentic_marked_area_median"), coverage.get("pixel_f1"),
                         coverage.get("authentic_marked_rate")])
    if not rows:
        return []
    return ["Per manipulation type (`casia1_dev`: `Sp_D_*` spliced, `Sp_S_*` copied within the photo; missed = F1 "
            "< 0.1) and false alarms (authentic = share of authentic photos with any pixel marked, median area = "
            "median share of an authentic photo marked), at 0.5 and with the row's calibrated pixel threshold:", "",
            markdown_table(["run", "threshold", "CASIA v1 F1", "spliced", "copy-moved", "copy-moved missed",
                            "authentic marked", "median area", "COVERAGE F1", "COVERAGE authentic marked"], rows), ""]


def render(record: dict, curves: list[str]) -> str:
    quality, runs = record["pseudo_quality"], record["runs"]
    lines = ["## Reference protocol v2: in-domain box training (CASIA v1 train + COVERAGE train)", "",
             "Measured with `python -m benchmarks.protocol` (config `benchmarks/configs/v2_base.yaml` plus each "
             "row's change). Training: `casia1_train` minus a source-disjoint validation part (`bpiml split`, 15%, "
             "seed 0: 409 tampered + 250 authentic for training, 70 + 51 for validation), boxes simulated from the "
             "masks (10% margin, 5% jitter), targets from the row's teacher; COVERAGE train (70, simulated boxes) "
             "and its 70 authentic originals. Student: EfficientNet-Lite0 + MGFM on 256 px crops at native "
             "resolution, predicting whole images; 20 epochs of 1,000 samples (20,000 samples), batch 8, AdamW + "
             "one cosine schedule (rows named `-short`: 10 epochs, 10,000 samples, and the weights' exponential "
             "moving average, decay 0.995, validated and kept; rows named `copymove*`: 10 epochs, 10,000 samples, "
             "see their description). Checkpoint: best validation pixel F1. "
             "Test sets, never used to choose anything: "
             "`casia1_dev` (203 tampered + 165 authentic) and COVERAGE test (30 + originals 71-100). Pixel F1 / IoU "
             "at 0.5, mean over tampered images; image AUC from the map's maximum. Columns `cal.`: the same "
             "checkpoint with its pixel threshold chosen on the validation split (`bpiml calibrate`, from 0.05 to "
             "0.7; `pixel thr.`), as the shipped model is.", ""]
    if quality:
        lines += ["Pseudo-mask quality on the training images (against their exact masks):", "",
                  markdown_table(["teacher", "training source", "F1", "IoU", "images"],
                                 [[*key.split("|"), q["f1"], q["iou"], q["n"]] for key, q in quality.items()]), ""]
    headers = ["run", "what", "train min", "val F1"] + [f"{t} {m}" for t in TEST_SETS
                                                        for m in ("F1", "IoU", "iAUC")] + ["mean F1"] \
        + ["pixel thr."] + [f"{t} F1 cal." for t in TEST_SETS] + ["mean F1 cal."]
    rows = [["paper (box-supervised)", "Guo et al. 2026, TinyViT + MGFM, CASIA v2 training", None, None]
            + [v for t in TEST_SETS for v in (PAPER_F1[t], None, None)] + [float(np.mean(list(PAPER_F1.values())))]
            + [None] * (len(TEST_SETS) + 2)]
    for name, summary in runs.items():
        scores, calibrated = summary["test_scores"], summary.get("test_scores_calibrated") or {}
        rows.append([f"`{name}`", RUNS[name].what, summary.get("train_minutes"), summary.get("best_val_f1")]
                    + [scores[t].get(k) for t in TEST_SETS for k in ("pixel_f1", "pixel_iou", "image_auc")]
                    + [mean_f1(summary), calibrated_threshold(summary)]
                    + [calibrated[t]["pixel_f1"] if calibrated else None for t in TEST_SETS]
                    + [mean_f1(summary, "test_scores_calibrated")])
    threads = {n: (s.get("config") or {}).get("optim", {}).get("threads") for n, s in runs.items()}
    lines += [markdown_table(headers, rows), "", *by_type_table(runs), *interpret(runs), "",
              "Each row: `python -m benchmarks.protocol --stages train eval --runs NAME`; its config, per-epoch "
              "metrics and scores are kept in `docs/protocol_v2_runs.json` (run folders under `runs/v2/` are not "
              "committed). train min = wall time of all epochs; threads per run: "
              + ", ".join(f"`{n}` {t}" for n, t in threads.items()) + " (two 1-thread runs shared the 2 cores).", "",
              f"Training curves ({', '.join(curves)}): the fit to the training targets next to validation.", "",
              f"![training curves](figures/{CURVES.name})", ""]
    return "\n".join(lines)
