"""`bpiml predict`, `bpiml calibrate`, `bpiml fit-verdict`, `bpiml export` and `bpiml bench`: using a trained
student."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..data.readers import load_datasets
from ..deployment.backends import AUTO, BACKEND_ALIASES, BACKENDS
from ..deployment.shipped import model_dir, shipped_model_dir
from ..devices import DEVICE_HELP
from ..errors import BPIMLError, ConfigError
from ..evaluation.evaluate import SCORES_FILE
from ..fileio import write_json_atomic
from ..outputs import check_not_an_input, claim_output_dir
from ..sharding import resolve_shard
from .common import (
    AUTO_PHOTOS_PER_PROCESS,
    add_overwrite_option,
    add_processes_option,
    add_shard_option,
    merged_runs,
    processes_for,
    report_failures,
    run_shards_here,
)

# The commands' work needs torch; it is imported in the functions below, so that `bpiml --help` stays fast.


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


MODEL_HELP = "run or checkpoint folder from bpiml train, or 'shipped' (default: the model shipped with the package)"


def backend_choices() -> list[str]:
    return [AUTO, *BACKENDS, *BACKEND_ALIASES]


def add_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", metavar="RUN_DIR", help=MODEL_HELP)
    p.add_argument("--backend", choices=backend_choices(), default="auto",
                   help="what runs the network: auto (openvino on the CPU when installed, else torch), "
                        + ", ".join(f"{name} ({about})" for name, about in BACKENDS.items())
                        + "; graph backends make their graph from the model's weights once, into "
                          "$BPIML_CACHE (default ~/.cache/boxpromptiml); --model may also be an .onnx file "
                          "(default: auto)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: %(default)s)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--no-copy-move", action="store_true",
                   help="the student's map alone: leave out the search for regions copied within a photo that "
                        "models with a copy_move.json (the shipped one among them) add to it")
    p.add_argument("--no-map-gate", action="store_true",
                   help="keep every map as made: do not damp the maps of photos scored under the gate that models "
                        "with a map_gate.json (the shipped one among them) apply")


def add_false_alarm_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--false-alarm-rate", type=float, default=0.05,
                   help="share of validation authentic images allowed above the image threshold (default: "
                        "%(default)s)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="tampering probability maps for images (files, folders, globs)",
                       description="Writes OUT/<stem>.png (8-bit probability, what bpiml evaluate reads) and "
                                   "OUT/scores.json (and OUT/verdicts.json when the model has a calibrated threshold); "
                                   "images are fitted to the model as its config says (native resolution or "
                                   "resized) and maps come back at each image's size.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    add_model_option(p)
    p.add_argument("--masks", action="store_true", help="also write binary masks to OUT/masks/")
    p.add_argument("--overlays", action="store_true",
                   help="also write overlay pictures to OUT/overlays/ (at most 4096 px on the longer side)")
    p.add_argument("--report", action="store_true",
                   help="also write a self-contained one-page HTML report per image to OUT/reports/")
    p.add_argument("--threshold", type=float, default=0.5, help="threshold of the binary masks (default: 0.5)")
    add_processes_option(p, "photos", AUTO_PHOTOS_PER_PROCESS)
    add_shard_option(p)
    add_overwrite_option(p)
    p.set_defaults(run=run_predict)

    p = sub.add_parser("calibrate", help="set a model's pixel threshold and its image-level threshold on "
                                         "validation images",
                       description="Runs the model on a validation dataset (never a test set). First, on its "
                                   "tampered images, picks the pixel threshold with the best mean pixel F1 (from "
                                   "0.05 to 0.7) and writes it into the model's student.json: the model then shifts "
                                   "its maps so that it comes out as 0.5. Then, on its authentic images, picks the "
                                   "image-score threshold that flags at most the given share of them and saves it "
                                   "as decision.json with the model; bpiml predict then gives each image a verdict.")
    p.add_argument("--model", "-m", metavar="RUN_DIR", help=MODEL_HELP)
    p.add_argument("--dataset", "-d", action="append", required=True, metavar="D",
                   help="validation dataset(s); repeat to add the authentic list")
    add_false_alarm_option(p)
    p.add_argument("--keep-pixel-threshold", action="store_true",
                   help="leave the model's pixel threshold as it is; calibrate the image-level threshold only")
    p.add_argument("--resave-jpeg", type=int, metavar="Q",
                   help="re-save every validation image as JPEG at quality Q before scoring it, so that the "
                        "image threshold does not rest on how each class was stored")
    p.add_argument("--max-authentic-marked", type=float, metavar="SHARE",
                   help="choose the best pixel threshold among those that mark any pixel in at most this share "
                        "of the validation authentic images (default: no cap; the shares are recorded anyway)")
    p.add_argument("--map-gate", type=float, metavar="SHARE",
                   help="also choose a map gate (map_gate.json): the lowest image score under which maps are damped "
                        "so that at most this share of the validation authentic images keep a marked pixel")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: %(default)s)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run_calibrate)

    p = sub.add_parser("fit-verdict", help="fit an image-level verdict on top of a frozen model",
                       description="Freezes the model's maps and fits its image-level score head (a logistic "
                                   "regression on the mean-pooled deepest features and the map's maximum) on "
                                   "training images, each re-saved as JPEG at random qualities so that the head "
                                   "cannot learn how each class was stored. Writes the model with its head to "
                                   "--out (the input model is left as it is). With --val, the image threshold is "
                                   "then calibrated on those images, re-saved at --val-quality.")
    p.add_argument("--model", "-m", metavar="RUN_DIR", help=MODEL_HELP)
    p.add_argument("--train", "-d", action="append", required=True, metavar="D",
                   help="training dataset(s) with tampered and authentic images (never a test set); repeatable")
    p.add_argument("--val", action="append", default=[], metavar="D",
                   help="validation dataset(s) for the image threshold (tampered and authentic); repeatable")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="folder for the model with its verdict")
    p.add_argument("--quality", type=int, nargs=2, default=(70, 100), metavar=("LOW", "HIGH"),
                   help="JPEG qualities the training images are re-saved at (default: 70 100)")
    p.add_argument("--copies", type=int, default=2, help="re-saved copies per training image (default: 2)")
    p.add_argument("--val-quality", type=int, default=90, help="JPEG quality of the validation re-save (default: 90)")
    add_false_alarm_option(p)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: %(default)s)")
    add_overwrite_option(p)
    p.set_defaults(run=run_fit_verdict)

    p = sub.add_parser("export", help="export a student to ONNX (dynamic batch), checked against PyTorch",
                       description="The graph takes B x 3 x S x S RGB in [0, 1] and returns probabilities.")
    p.add_argument("--model", "-m", metavar="RUN_DIR", help=MODEL_HELP)
    p.add_argument("--onnx", metavar="OUT.onnx",
                   help="file to write (default: student.onnx in the model's checkpoint folder, where "
                        "bpiml predict --model RUN --backend onnx finds it; needed for the shipped model)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default: 18)")
    p.set_defaults(run=run_export)

    p = sub.add_parser("bench", help="parameters, GMACs, CPU latency and peak memory of a student",
                       description="Without --model: the shipped model, or the default student configuration "
                                   "(random weights) when none ships. GMACs = FLOPs / 2 counted by "
                                   "torch.utils.flop_counter (convolutions and matrix products).")
    p.add_argument("--model", "-m", metavar="RUN_DIR", help="run or checkpoint folder")
    p.add_argument("--json", metavar="OUT", help="also write the numbers to this JSON file")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per setting (default: 10)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: %(default)s)")
    p.set_defaults(run=run_bench)


def run_predict(args: argparse.Namespace) -> int:
    from ..deployment.predict_files import expand_inputs, photo_work
    from ..deployment.predictor import load_predictor
    from ..sharding import under_launcher

    _set_threads(args.threads)
    inputs = expand_inputs(args.inputs)
    model_folder = [Path(args.model)] if args.model and Path(args.model).is_dir() else []  # never into the model
    check_not_an_input(Path(args.out), inputs + [Path(i) for i in args.inputs if Path(i).is_dir()] + model_folder,
                       "output folder")
    from ..devices import resolve_device

    on_cpu = resolve_device(args.device).type == "cpu"
    sharded = bool(args.shard) or under_launcher()
    # large photos weigh more (photo_work: by what a second process saves on them)
    work = (photo_work(inputs, AUTO_PHOTOS_PER_PROCESS * (os.cpu_count() or 1))
            if args.processes == "auto" and on_cpu and not sharded else None)
    processes = processes_for(args.processes, len(inputs), on_cpu, sharded, work, AUTO_PHOTOS_PER_PROCESS)
    # first: a bad model leaves no folder
    predictor = load_predictor(args.model, args.backend, args.device, copy_move=not args.no_copy_move,
                              map_gate=not args.no_map_gate)
    claim_output_dir(Path(args.out), "predict", args.overwrite, evidence=(SCORES_FILE,))
    if processes == 1:
        result = _predict_share(args, predictor)
    else:
        result = merged_runs(run_shards_here(_predict_worker, args, processes))
    if not result.results:  # nothing predicted: only the failures (or "already done") are news
        return report_failures(result, "predict")
    print(f"predicted {len(result.results)} image(s) into {args.out}"
          + (f" ({processes} processes)" if processes > 1 else ""))
    if predictor.decision is not None:
        flagged = sorted(name for name, score in result.results.items() if score > predictor.decision.threshold)
        print(f"{len(flagged)} of {len(result.results)} image(s) called tampered ({predictor.decision.describe()}; "
              f"verdicts in {args.out}/verdicts.json)" + (f": {', '.join(flagged[:10])}" if flagged else "")
              + (" ..." if len(flagged) > 10 else ""))
    else:
        print("this model has no calibrated image-level threshold (bpiml calibrate): scores.json holds raw scores")
    return report_failures(result, "predict")


def _predict_share(args: argparse.Namespace, predictor):
    """This process's share of the photos (all of them, ``--shard``'s part, or its rank's under a launcher)."""
    from ..deployment.predict_files import predict_files

    return predict_files(predictor, args.inputs, args.out, args.masks, args.overlays, args.threshold,
                         resolve_shard(args.shard), reports=args.report)


def _predict_worker(args: argparse.Namespace):
    """One of ``bpiml predict --processes N``'s processes: its rank's share, into the folder the parent claimed."""
    from ..deployment.predictor import load_predictor

    _set_threads(args.threads)
    predictor = load_predictor(args.model, args.backend, args.device, copy_move=not args.no_copy_move,
                               map_gate=not args.no_map_gate)
    return _predict_share(args, predictor)


def run_calibrate(args: argparse.Namespace) -> int:
    from ..deployment.calibrate import calibrate_folder

    _set_threads(args.threads)
    for line in calibrate_folder(model_dir(args.model), load_datasets(args.dataset),
                                 args.false_alarm_rate, keep_pixel_threshold=args.keep_pixel_threshold,
                                 device=args.device, max_authentic_marked=args.max_authentic_marked,
                                 resave_jpeg=args.resave_jpeg, map_gate_max_marked=args.map_gate):
        print(line)
    return 0


def run_fit_verdict(args: argparse.Namespace) -> int:
    from ..deployment.calibrate import calibrate_model
    from ..deployment.predictor import load_predictor
    from ..deployment.verdict import fit_verdict

    _set_threads(args.threads)
    source = model_dir(args.model)
    check_not_an_input(Path(args.out), [source], "output folder")
    claim_output_dir(Path(args.out), "fit-verdict", args.overwrite)
    fit = fit_verdict(source, load_datasets(args.train), args.out, tuple(args.quality), args.copies)
    print(fit.describe() + f"; model written to {args.out}")
    if fit.skipped:
        print(f"{len(fit.skipped)} unreadable training image(s) left out: {sorted(fit.skipped)[:10]}")
    if args.val:
        decision = calibrate_model(load_predictor(args.out), args.out, load_datasets(args.val), args.false_alarm_rate,
                                   resave_jpeg=args.val_quality)
        print(f"image threshold {decision.describe()}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..deployment.export import export_onnx
    from ..deployment.graph import ONNX_NAME, checkpoint_sha256
    from ..training.checkpoint import checkpoint_folder, load_student

    source = checkpoint_folder(model_dir(args.model))
    if args.onnx is None and source == shipped_model_dir():
        raise ConfigError("the shipped model lives inside the installed package: give --onnx OUT.onnx")
    out = Path(args.onnx) if args.onnx else source / ONNX_NAME
    model, _ = load_student(source)
    difference = export_onnx(model, out, args.opset, checkpoint_sha256=checkpoint_sha256(source))
    print(f"wrote {out}; max |ONNX - PyTorch| on probabilities: {difference:.2e}")
    if difference is not None and difference > 1e-4:
        raise ConfigError(f"ONNX output differs from PyTorch by {difference:.2e} (> 1e-4)")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from ..deployment.complexity import format_complexity, measure
    from ..student.model import StudentConfig, build_student
    from ..training.checkpoint import load_student

    _set_threads(args.threads)
    if args.model:
        model, name = load_student(model_dir(args.model))[0], str(args.model)
    else:
        try:
            model, name = load_student(shipped_model_dir())[0], "shipped model"
        except BPIMLError:
            model, name = build_student(StudentConfig()), "default student configuration (random weights)"
    complexity = measure(model, args.repeats)
    print(format_complexity(name, complexity))
    if args.json:
        write_json_atomic(args.json, {"model": name, **complexity.to_dict()})
    return 0
