"""`bpiml train`: train the student from pseudo masks (or ground truth / boxes for baselines)."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..training.config import Supervision, TrainConfig, load_config
from ..training.loop import run_summary, train


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
    p.add_argument("--train", action="append", default=[], metavar="D",
                   help="training dataset (repeatable; each may have its own --boxes / --pseudo-labels, in order)")
    p.add_argument("--boxes", action="append", default=[], metavar="COCO_JSON",
                   help="boxes of the matching --train dataset (box supervision, outside-box penalty)")
    p.add_argument("--pseudo-labels", action="append", default=[], metavar="DIR",
                   help="bpiml pseudo-label folder of the matching --train dataset")
    p.add_argument("--val", action="append", default=[], metavar="D", help="validation dataset (repeatable)")
    p.add_argument("--supervision", choices=[s.value for s in Supervision],
                   help="targets: pseudo (teacher masks, default), full (ground truth), box (filled boxes)")
    p.set_defaults(run=run)


def _aligned(values: list[str], n: int, what: str) -> list[str | None]:
    if values and len(values) != n:
        raise ConfigError(f"give one {what} per --train dataset ({n}), got {len(values)}")
    return values or [None] * n


def run(args: argparse.Namespace) -> int:
    settings = load_config(args.config, args.set).to_dict()
    data = settings["data"]
    if args.train:
        boxes = _aligned(args.boxes, len(args.train), "--boxes")
        pseudo = _aligned(args.pseudo_labels, len(args.train), "--pseudo-labels")
        data["train"] = [{"dataset": d, "boxes": b, "pseudo_labels": p}
                         for d, b, p in zip(args.train, boxes, pseudo, strict=True)]
    if args.val:
        data["val"] = args.val
    if args.supervision:
        data["supervision"] = args.supervision
    print(run_summary(train(TrainConfig.from_dict(settings), args.out)))
    return 0
