"""The backends side by side: the pixel F1 each gives and how fast each is (docs/results.md).

    python -m benchmarks.backends --stages f1            # any time: the F1 does not depend on the load
    python -m benchmarks.backends --stages speed report  # idle machine only: wall-clock times

``openvino-int8`` is OpenVINO on an int8 model made by NNCF post-training quantisation (stage ``int8``:
calibrated on 80 images of the protocol's CASIA training part, never the test sets; the JPEG branch's DCT and
rounding are left in float, as int8 would erase the lattice it compares with; the graph is made again only with
``--redo``). The stage then makes the graph's folder a complete model: the source model's settings beside it, with
the map gate and the verdict threshold fitted again on the int8 graph's own scores (CASIA validation split).
It is measured here only: it needs calibration images of the user's kind, and it does not hold F1 within the
tolerance (see the table).

F1: the shipped model (or ``--model``) through each backend on `casia1_dev` and COVERAGE test, as it ships (its
calibrated pixel threshold), with the share of authentic photos marked. Speed: `Predictor.predict` on synthetic
photos of three sizes (median of repeated calls after a warm-up; decoding and writing are not included: see
``benchmarks.predict_profile`` for the whole of `bpiml predict`). Rows are kept in ``docs/backends_runs.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from boxpromptiml.deployment.backends import BACKENDS
from boxpromptiml.deployment.predictor import load_predictor
from boxpromptiml.evaluation import evaluate_predictor

from .common import DEFAULT_DATA, REPO, ResultStore, machine_line, markdown_table, update_results_section
from .predict_speed import photo
from .protocol.layout import test_datasets

RECORD = REPO / "docs" / "backends_runs.json"
SIZES = [(1024, 768), (1920, 1080), (4000, 3000)]  # width x height
TOLERANCE = 0.005  # a backend may be the default if its F1 is within this of PyTorch float32 on both sets
INT8 = "openvino-int8"
INT8_MODEL = REPO / "runs" / "bench" / "int8" / "student.xml"
CALIBRATION_IMAGES = 80


def network_f1(compiled, items) -> tuple[float, list[float]]:
    """Mean per-image pixel F1 at 0.5 of a graph's raw maps (no copy-move search, no gate) over (image, mask)
    pairs: the metric NNCF's accuracy control keeps within its allowed drop, with the per-image values it ranks
    layers by."""
    from boxpromptiml.evaluation.metrics import confusion, f1

    values = []
    for image, mask in items:
        probability = compiled(image)[0][0, 0, :mask.shape[0], :mask.shape[1]]
        values.append(f1(confusion(probability, mask)))
    return float(np.mean(values)), values


def quantize_int8(model: str | None, data_split: Path, out: Path, validation: Path | None = None,
                  max_drop: float | None = None) -> None:
    """NNCF post-training int8 quantisation of the model's OpenVINO graph, calibrated on training images. With
    ``max_drop``, NNCF's accuracy control puts layers back in float, the most harmful first, until the network's
    own pixel F1 on ``validation`` (tampered images with masks; the CASIA validation split, never a test set) is
    within ``max_drop`` of the float graph's."""
    import nncf
    import openvino as ov

    from boxpromptiml.data import load_dataset
    from boxpromptiml.data.images import read_image, read_mask
    from boxpromptiml.deployment.graph import openvino_model
    from boxpromptiml.deployment.openvino_backend import openvino_core
    from boxpromptiml.deployment.shipped import shipped_model_dir
    from boxpromptiml.student.inference import pad_to_multiple, to_tensor

    source = openvino_core().read_model(str(openvino_model(model or shipped_model_dir())))
    train = load_dataset(data_split)
    step = max(1, len(train) // CALIBRATION_IMAGES)
    images = [to_tensor(pad_to_multiple(read_image(s.image)))[None].numpy()
              for s in train.samples[::step][:CALIBRATION_IMAGES]]
    kept: set[str] = set()  # the JPEG branch: everything a Round reads from stays in float
    stack = [op for op in source.get_ordered_ops() if op.get_type_name() == "Round"]
    while stack:
        node = stack.pop()
        if node.get_friendly_name() not in kept:
            kept.add(node.get_friendly_name())
            stack += [port.get_source_output().get_node() for port in node.inputs()]
    ignored = nncf.IgnoredScope(names=sorted(kept), validate=False)
    if max_drop is None:
        quantized = nncf.quantize(source, nncf.Dataset(images), subset_size=len(images), ignored_scope=ignored)
    else:
        assert validation is not None, "accuracy control needs validation images"
        pairs = []
        for sample in load_dataset(validation).tampered:
            image = read_image(sample.image)
            mask = read_mask(sample.mask, expected_hw=image.shape[:2], image_path=sample.image, resize=True)
            pairs.append((to_tensor(pad_to_multiple(image))[None].numpy(), mask))
        quantized = nncf.quantize_with_accuracy_control(
            source, nncf.Dataset(images), nncf.Dataset(pairs), network_f1, max_drop=max_drop,
            subset_size=len(images), ignored_scope=ignored)
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out))


SETTINGS = ("student.json", "pixel_calibration.json", "verdict.json", "copy_move.json", "decision.json",
            "map_gate.json")


def calibrate_int8_folder(model: str | None, graph: Path, validation: Path) -> list[str]:
    """Make ``graph``'s folder a complete model: the source model's settings beside the int8 graph, then its map
    gate and verdict threshold fitted again on the int8 graph's own image scores, by the procedures and on the
    split the shipped model's were (the protocol's CASIA v1 validation split; never a test set). Int8 moves the
    image scores, so gates chosen for float32 scores damp the wrong maps. Returns what was set."""
    import shutil

    from boxpromptiml.data import load_dataset
    from boxpromptiml.deployment.calibrate import calibrate_model
    from boxpromptiml.deployment.map_gate import calibrate_map_gate
    from boxpromptiml.deployment.shipped import shipped_model_dir

    source = Path(model) if model else shipped_model_dir()
    for name in SETTINGS:
        if (source / name).is_file():
            shutil.copyfile(source / name, graph.parent / name)
    dataset = load_dataset(validation)
    lines = []
    if (source / "map_gate.json").is_file():
        cap = json.loads((source / "map_gate.json").read_text())["max_authentic_marked"]
        gate = calibrate_map_gate(load_predictor(graph, "openvino", map_gate=False), graph.parent, dataset, cap,
                                  source="the protocol's CASIA v1 validation split, through the int8 graph")
        lines.append(f"map gate: {gate.describe()}")
    if (source / "decision.json").is_file():
        decision = json.loads((source / "decision.json").read_text())
        chosen = calibrate_model(load_predictor(graph, "openvino"), graph.parent, dataset,
                                 decision["target_false_alarm_rate"], resave_jpeg=90,
                                 source="the protocol's CASIA v1 validation split, through the int8 graph")
        lines.append(f"verdict threshold {chosen.threshold:.4f} ({chosen.false_alarm_rate:.1%} of authentic flagged)")
    return lines


def predictor_for(model: str | None, backend: str):
    if backend == INT8:
        return load_predictor(INT8_MODEL, "openvino")
    return load_predictor(model, backend)


def measure_f1(model: str | None, backend: str, data: Path) -> dict:
    predictor = predictor_for(model, backend)
    row: dict = {"description": predictor.description}
    for name, dataset in test_datasets(data).items():
        report, _ = evaluate_predictor(dataset, predictor.predict, desc=f"{backend} on {name}")
        row[name] = {"pixel_f1": report.pixel_f1, "authentic_marked": report.authentic_marked_rate,
                     "image_auc": report.image_auc}
    return row


def measure_speed(model: str | None, backend: str, repeats: int) -> dict:
    predictor = predictor_for(model, backend)
    row: dict = {"machine": machine_line()}
    for width, height in SIZES:
        image = photo(width, height)
        predictor.predict(image)  # warm-up (OpenVINO compiles its kernels for the shape here)
        times = []
        for _ in range(repeats if width * height < 4e6 else max(2, repeats // 2)):
            started = time.perf_counter()
            predictor.predict(image)
            times.append(time.perf_counter() - started)
        row[f"{width}x{height}"] = statistics.median(times)
        print(backend, width, height, f"{row[f'{width}x{height}']:.3f} s", flush=True)
    return row


def render(store: ResultStore) -> str:
    reference = store.get("f1:torch")
    rows, missing = [], []
    for backend in [*BACKENDS, INT8]:
        f1, speed = store.get(f"f1:{backend}"), store.get(f"speed:{backend}")
        if f1 is None and speed is None:
            missing.append(f"`{backend}`")
            continue
        row: list = [f"`{backend}`"]
        for test in ("CASIA v1", "COVERAGE"):
            row.append(f1[test]["pixel_f1"] if f1 else None)
        row.append(f1["CASIA v1"]["authentic_marked"] if f1 else None)
        within = (f1 is not None and reference is not None and all(
            abs(f1[t]["pixel_f1"] - reference[t]["pixel_f1"]) <= TOLERANCE for t in ("CASIA v1", "COVERAGE")))
        row.append("yes" if within else ("no" if f1 and reference else "n/a"))
        row += [speed.get(f"{w}x{h}") if speed else None for w, h in SIZES]
        rows.append(row)
    machines = sorted({r["machine"] for k, r in store.rows.items() if k.startswith("speed:")})
    return "\n".join([
        "## Backends side by side", "",
        "Measured with `python -m benchmarks.backends --stages f1` and, on an idle machine, `--stages speed` "
        f"({'; '.join(machines) or 'speed not measured yet'}). The shipped model through each backend as it ships "
        "(calibrated pixel threshold): pixel F1 on `casia1_dev` (CASIA v1) and COVERAGE test, share of CASIA "
        f"authentic photos marked; 'holds F1' = within {TOLERANCE} of PyTorch float32 on both sets; seconds per "
        "`Predictor.predict` on a synthetic photo (median after a warm-up; no decoding or writing). Rows in "
        "`docs/backends_runs.json`.", "",
        markdown_table(["backend", "CASIA v1 F1", "COVERAGE F1", "authentic marked", "holds F1",
                        *(f"{w} x {h} s" for w, h in SIZES)], rows), "",
        *([f"Not measured for the model as it is now: {', '.join(missing)}.", ""] if missing else [])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="+", default=["f1", "report"], choices=["int8", "f1", "speed", "report"])
    parser.add_argument("--backends", nargs="+", default=[*BACKENDS, INT8], choices=[*BACKENDS, INT8])
    parser.add_argument("--model", help="run or checkpoint folder (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--redo", action="store_true", help="measure again rows already recorded")
    parser.add_argument("--int8-max-drop", type=float,
                        help="stage int8: NNCF accuracy control, keeping the network's pixel F1 on the CASIA "
                             "validation split within this of float (default: plain post-training quantisation)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    store = ResultStore(RECORD)
    if "int8" in args.stages:
        split = REPO / "runs" / "v2" / "casia1_split"  # the protocol's CASIA training part and validation split
        if args.redo or not INT8_MODEL.is_file():
            quantize_int8(args.model, split / "train.json", INT8_MODEL, split / "val.json", args.int8_max_drop)
        for line in calibrate_int8_folder(args.model, INT8_MODEL, split / "val.json"):
            print(line, flush=True)
        store.rows.pop(f"f1:{INT8}", None)
    for backend in args.backends:
        if backend == INT8 and not INT8_MODEL.is_file():
            continue
        if "f1" in args.stages and (args.redo or not store.has(f"f1:{backend}")):
            store.put(f"f1:{backend}", measure_f1(args.model, backend, args.data))
        if "speed" in args.stages:
            store.put(f"speed:{backend}", measure_speed(args.model, backend, args.repeats))
    if "report" in args.stages:
        markdown = render(store)
        print(markdown)
        update_results_section("backends", markdown)


if __name__ == "__main__":
    main()
