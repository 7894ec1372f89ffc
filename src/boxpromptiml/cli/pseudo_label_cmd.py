"""`bpiml pseudo-label`: turn boxes into soft pseudo masks with a frozen teacher."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from ..data.coco import attach_boxes, read_coco_boxes
from ..devices import DEVICE_HELP, resolve_device  # resolve_device imports torch only when called
from ..errors import ConfigError
from ..outputs import check_not_an_input, claim_output_dir, folder_lock
from ..pseudo_labels.generate import MANIFEST_NAME, generate_pseudo_labels
from ..runner import SampleRun
from ..sharding import resolve_shard
from ..teachers import (
    ENCODER_BACKENDS,
    TEACHERS,
    Normalize,
    OutputKind,
    Resize,
    Teacher,
    TeacherOptions,
    create_teacher,
    default_settings,
)
from .common import (
    add_dataset_option,
    add_overwrite_option,
    add_processes_option,
    add_shard_option,
    dataset_from_args,
    input_files,
    merged_runs,
    processes_for,
    report_failures,
    run_shards_here,
)


def _crop_context(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def add_teacher_options(p: argparse.ArgumentParser) -> None:
    """Options that choose and tune a teacher (shared by the commands that run one)."""
    listing = "; ".join(f"{name}: {summary}" for name, summary in TEACHERS.summaries().items())
    p.add_argument("--teacher", default="litemedsam", help=f"teacher to run (default: litemedsam). {listing}")
    p.add_argument("--checkpoint", metavar="FILE",
                   help="weights file for mobilesam / sam-vit-* (for litemedsam: replaces the embedded weights)")
    p.add_argument("--clip-to-box", action=argparse.BooleanOptionalAction, default=True,
                   help="zero the mask outside its box (default: on)")
    p.add_argument("--output", choices=[k.value for k in OutputKind], default=OutputKind.SOFT.value,
                   help="soft probabilities or hard 0/1 masks (default: soft)")
    sam = p.add_argument_group("SAM-family settings (unset: the teacher's defaults, see docs/results.md)")
    sam.add_argument("--resize", choices=[r.value for r in Resize], help="how the image is fitted to the input")
    sam.add_argument("--normalize", choices=[n.value for n in Normalize], help="pixel normalisation")
    sam.add_argument("--multimask", action=argparse.BooleanOptionalAction, default=None,
                     help="decode 3 masks per box and keep the one with the best predicted IoU")
    sam.add_argument("--refine-steps", type=int, help="extra decoding passes with the previous mask as prompt")
    sam.add_argument("--grabcut-weight", type=float, metavar="W",
                     help="blend each box's SAM mask with GrabCut: (1-W)*sam + W*grabcut (0: SAM alone)")
    sam.add_argument("--grabcut-iterations", type=int, metavar="N", help="GrabCut rounds (default teacher: 3)")
    sam.add_argument("--grabcut-context", type=_crop_context, default=argparse.SUPPRESS, metavar="F|none",
                     help="GrabCut cuts the box grown by F x its longer side (default teacher: 0.5); 'none': the "
                          "whole photo (photos over 1 MP are still cut within a crop)")
    sam.add_argument("--crop-context", type=_crop_context, default=argparse.SUPPRESS, metavar="F|none",
                     help="encode a crop around each box, grown by F x its longer side; 'none': the whole image")
    sam.add_argument("--encoder-backend", choices=list(ENCODER_BACKENDS), default="openvino",
                     help="what runs the image encoder on the CPU (default: openvino, bf16 where the CPU has it; "
                          "the same pseudo-mask F1 as torch, docs/results.md)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="torch CPU threads (default: all cores, %(default)s)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def teacher_from_args(args: argparse.Namespace) -> Teacher:
    """Build the teacher the options describe (and set torch's thread count)."""
    import torch

    torch.set_num_threads(max(1, args.threads))
    overrides = {name: value for name, value in (
        ("resize", args.resize and Resize(args.resize)),
        ("normalize", args.normalize and Normalize(args.normalize)),
        ("multimask", args.multimask),
        ("refine_steps", args.refine_steps),
        ("grabcut_weight", args.grabcut_weight),
        ("grabcut_iterations", args.grabcut_iterations),
    ) if value is not None}
    for name in ("crop_context", "grabcut_context"):  # None is a value of their own: "the whole photo"
        if name in args:
            overrides[name] = getattr(args, name)
    settings = default_settings(args.teacher)
    if overrides and settings is None:
        raise ConfigError(f"the {args.teacher} teacher takes no SAM settings ({', '.join(overrides)})")
    settings = replace(settings, **overrides) if settings is not None else None
    options = TeacherOptions(clip_to_box=args.clip_to_box, output=OutputKind(args.output))
    from ..teachers.sam_teacher import SamTeacher

    teacher = create_teacher(args.teacher, args.checkpoint, options, settings).to(resolve_device(args.device))
    if args.encoder_backend != "openvino" and not isinstance(teacher, SamTeacher):
        raise ConfigError(f"the {args.teacher} teacher has no image encoder (drop --encoder-backend)")
    return teacher.use_encoder_backend(args.encoder_backend) if isinstance(teacher, SamTeacher) else teacher


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pseudo-label", help="run a frozen box-prompted teacher to get soft pseudo masks",
        description="Writes OUT/<image stem>.png (8-bit soft mask) for every tampered image with boxes, and "
                    "OUT/manifest.json. Resumable: run the same command again to continue. Unreadable "
                    "images are reported and skipped.",
    )
    add_dataset_option(p)
    p.add_argument("--boxes", required=True, metavar="COCO_JSON", help="box annotations (e.g. from bpiml boxes)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    add_teacher_options(p)
    add_processes_option(p, "images")
    add_shard_option(p)
    add_overwrite_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..sharding import under_launcher

    dataset = attach_boxes(dataset_from_args(args), read_coco_boxes(args.boxes), source=args.boxes)
    check_not_an_input(Path(args.out), input_files(args, dataset), "output folder")
    claim_output_dir(Path(args.out), "pseudo-label", args.overwrite, evidence=(MANIFEST_NAME,))
    with_boxes = sum(1 for sample in dataset.tampered if sample.boxes)
    on_cpu = resolve_device(args.device).type == "cpu"
    processes = processes_for(args.processes, with_boxes, on_cpu, bool(args.shard) or under_launcher())
    if processes == 1:
        name, result = _pseudo_label_share(args, dataset)
        shard = resolve_shard(args.shard)
        part = f" (shard {shard})" if shard else ""
    else:
        parts = run_shards_here(_pseudo_label_worker, args, processes)
        name, result, part = parts[0][0], merged_runs([run for _, run in parts]), f" ({processes} processes)"
    print(f"pseudo-label ({name}){part}: {result.summary()}; masks in {args.out}")
    return report_failures(result, "pseudo-label")


def _pseudo_label_share(args: argparse.Namespace, dataset) -> tuple[str, SampleRun]:
    """This process's share of the images (all, ``--shard``'s part, or its rank's under a launcher): the
    teacher's name and the run."""
    teacher = teacher_from_args(args)
    shard = resolve_shard(args.shard)
    with folder_lock(Path(args.out), f"pseudo-label-{shard.tag}" if shard else "pseudo-label"):
        return teacher.name, generate_pseudo_labels(dataset, teacher, args.out, boxes_source=str(args.boxes),
                                                    shard=shard)


def _pseudo_label_worker(args: argparse.Namespace) -> tuple[str, SampleRun]:
    """One of ``bpiml pseudo-label --processes N``'s processes, into the folder the parent claimed."""
    dataset = attach_boxes(dataset_from_args(args), read_coco_boxes(args.boxes), source=args.boxes)
    return _pseudo_label_share(args, dataset)
