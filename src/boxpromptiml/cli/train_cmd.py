"""`bpiml train`: train the student from pseudo masks (or ground truth / boxes for baselines)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..devices import DEVICE_HELP
from ..outputs import check_not_an_input, claim_output_dir, removed_if_nothing_made
from ..training.config import Supervision, TrainConfig, load_config
from .common import add_overwrite_option


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train the lightweight student (resumable: rerun the same command to continue)",
        description="Settings come from the defaults (training/config.py), then --config YAML, then --set "
                    "overrides, then the data options below. The full config is saved in OUT/config.json.",
    )
    p.add_argument("--out", "-o", required=True, metavar="RUN_DIR", help="run folder (checkpoints, logs)")
    p.add_argument("--config", metavar="YAML", help="YAML file with any of the settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set optim.epochs=5 --set student.encoder=tinyvit5m")
    p.add_argument("--train", action=_NewSource, dest="sources", metavar="D",
                   help="training dataset (repeatable); --boxes and --pseudo-labels after it belong to it, so an "
                        "authentic-only dataset simply has neither")
    p.add_argument("--boxes", action=_SourceOption, dest="sources", metavar="COCO_JSON",
                   help="boxes of the preceding --train dataset (box supervision, outside-box penalty)")
    p.add_argument("--pseudo-labels", action=_SourceOption, dest="sources", metavar="DIR",
                   help="bpiml pseudo-label folder of the preceding --train dataset")
    p.add_argument("--val", action="append", default=[], metavar="D", help="validation dataset (repeatable)")
    p.add_argument("--supervision", choices=[s.value for s in Supervision],
                   help="targets: pseudo (teacher masks, default), full (ground truth), box (filled boxes)")
    p.add_argument("--resize-masks", action="store_true",
                   help="full supervision: resize masks whose size differs from their image (nearest neighbour); "
                        "without it such a sample is a failed draw, replaced by the next item and listed in "
                        "skipped_samples.json (too many stop the run)")
    p.add_argument("--init", metavar="MODEL",
                   help="fine-tune: start from this model's weights and architecture instead of ImageNet's: "
                        "'shipped', a run folder or a model folder (optim.init). Its calibrated pixel threshold "
                        "is not carried over: calibrate the result again (bpiml calibrate)")
    p.add_argument("--device", help=f"where to train (optim.device): {DEVICE_HELP}")
    add_overwrite_option(p)
    p.set_defaults(run=run)


class _NewSource(argparse.Action):
    """``--train D`` starts a new training source."""

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        sources = list(getattr(namespace, self.dest, None) or [])
        setattr(namespace, self.dest, sources + [{"dataset": value, "boxes": None, "pseudo_labels": None}])


class _SourceOption(argparse.Action):
    """``--boxes`` / ``--pseudo-labels`` fill in the most recent ``--train`` source."""

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        sources = getattr(namespace, self.dest, None)
        key = self.option_strings[0].lstrip("-").replace("-", "_")
        if not sources:
            parser.error(f"{option_string} must follow the --train dataset it belongs to")
        if sources[-1][key] is not None:
            parser.error(f"{option_string} given twice for --train {sources[-1]['dataset']}; put each after its "
                         "own --train")
        sources[-1][key] = value


def recalibrate_after_fine_tuning(config: TrainConfig, run_dir: Path) -> list[str]:
    """A fine-tuned model's thresholds: its start model's no longer apply (training reset the pixel threshold to
    0.5 and wrote no image threshold), so they are set again on the validation data, or the lines say plainly
    that there is none to set them on."""
    if not config.data.val:
        return ["fine-tuned without validation data: the model's pixel threshold is 0.5 and it has no image "
                "threshold (no verdict); the start model's thresholds do not apply to it. Set them with bpiml "
                f"calibrate --model {run_dir} -d VAL.json -d AUTHENTIC.json"]
    from ..data.readers import load_datasets
    from ..deployment.calibrate import calibrate_folder

    lines = calibrate_folder(run_dir, load_datasets(list(config.data.val)), device=config.optim.device,
                             require_authentic=False)
    return ["thresholds set again on the validation data (the start model's no longer apply):", *lines]


def run(args: argparse.Namespace) -> int:
    settings = load_config(args.config, args.set).to_dict()
    data = settings["data"]
    if args.sources:
        data["train"] = args.sources
    if args.val:
        data["val"] = args.val
    if args.supervision:
        data["supervision"] = args.supervision
    if args.resize_masks:
        data["resize_masks"] = True
    if args.init:
        settings["optim"]["init"] = args.init
    if args.device:
        settings["optim"]["device"] = args.device
    config = TrainConfig.from_dict(settings)
    inputs = [Path(p) for s in config.data.train for p in (s.dataset, s.boxes, s.pseudo_labels) if p]
    check_not_an_input(Path(args.out), inputs + [Path(v) for v in config.data.val], "run folder")
    from ..training.checkpoint import CHECKPOINTS
    from ..training.loop import train  # here: it imports torch, which --help does not need
    from ..training.run_folder import run_summary

    with removed_if_nothing_made(Path(args.out), made=(CHECKPOINTS,)):  # a refused start leaves no folder
        claim_output_dir(Path(args.out), "train", args.overwrite, evidence=("config.json",))
        result = train(config, args.out)
    print(run_summary(result))
    if config.optim.init is not None:
        for line in recalibrate_after_fine_tuning(config, Path(args.out)):
            print(line)
    # the README's rule: 1 = finished, but some inputs were skipped
    return 1 if result.skipped_images or result.skipped_samples else 0
