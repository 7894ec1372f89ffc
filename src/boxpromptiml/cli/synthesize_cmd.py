"""`bpiml synthesize`: splicing / copy-move / removal training images from segmented photos."""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..boxes.simulate import BoxSimulationConfig
from ..synthesis import KINDS, PostProcessing, SynthesisConfig, synthesize


def _kind_weights(text: str) -> dict[str, float]:
    weights = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        weights[name.strip()] = float(value)
    return weights


def add_parsers(sub: argparse._SubParsersAction) -> None:
    defaults = SynthesisConfig()
    post = PostProcessing()
    p = sub.add_parser(
        "synthesize", help="make tampered training images with exact masks and boxes from BSDS500-style data",
        description="Cuts object-shaped regions (from the segmentations) and splices them into other images, "
                    "moves them inside the same image, or erases them by inpainting; then resizes / blurs / adds "
                    "noise / JPEG-compresses at random. Writes OUT/Tp, OUT/Gt, OUT/Au, OUT/dataset.json "
                    "(IMDL-BenCo), OUT/boxes.json (COCO, simulated from the exact masks) and OUT/synthesis.json "
                    "(settings and what was done to each image). Same seed, same images.",
    )
    p.add_argument("--bsds", required=True, metavar="DIR", help="BSDS500 folder (images/<split>/, segments/<split>/)")
    p.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val", "test"],
                   help="BSDS splits to take images and regions from (default: train val; keep test for validation)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    p.add_argument("--tampered", type=int, default=defaults.n_tampered, help="tampered images (default: %(default)s)")
    p.add_argument("--authentic", type=int, default=defaults.n_authentic,
                   help="authentic images, post-processed like the tampered ones (default: %(default)s)")
    p.add_argument("--kinds", type=_kind_weights, default=defaults.kind_weights, metavar="K=W,...",
                   help=f"relative frequency of each forgery kind ({', '.join(KINDS)}; default: "
                        + ",".join(f"{k}={v}" for k, v in defaults.kind_weights.items()) + ")")
    p.add_argument("--jpeg-probability", type=float, default=post.jpeg_probability,
                   help="share of images saved as JPEG at quality 65-100, the rest as PNG (default: %(default)s)")
    p.add_argument("--prefix", default="syn", help="file name prefix (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = SynthesisConfig(n_tampered=args.tampered, n_authentic=args.authentic, kind_weights=args.kinds,
                             post=replace(PostProcessing(), jpeg_probability=args.jpeg_probability),
                             boxes=BoxSimulationConfig(seed=args.seed), seed=args.seed)
    dataset = synthesize(args.bsds, args.out, config, tuple(args.splits), args.prefix)
    print(f"wrote {len(dataset.tampered)} tampered + {len(dataset.authentic)} authentic images; dataset list: "
          f"{dataset.source}; boxes: {args.out}/boxes.json")
    return 0
