"""`bpiml serve`: the local web app (annotate boxes, inspect images)."""

from __future__ import annotations

import argparse
import os

from ..teachers.zoo import TEACHERS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="local web app: draw boxes with the teacher's pseudo mask, inspect heat maps",
                       description="Starts a web server and prints its URL. Inspect: open or drop a photo and see "
                                   "the student's heat map, mask and verdict; export a one-page report. Annotate "
                                   "(with --dataset and --boxes): draw boxes on the dataset's images, see the "
                                   "teacher's pseudo mask for them, and save each accepted image at once to the "
                                   "COCO file (which bpiml pseudo-label and bpiml train read).")
    p.add_argument("--dataset", "-d", action="append", metavar="D",
                   help="dataset whose images to annotate or inspect (JSON list or folder; repeat to combine)")
    p.add_argument("--boxes", metavar="OUT.json",
                   help="COCO box file to read and write (created if missing; kept entries are preserved)")
    p.add_argument("--model", "-m", metavar="RUN_DIR", help="student for heat maps and box proposals "
                                                             "(default: the shipped model)")
    p.add_argument("--teacher", default="litemedsam", choices=TEACHERS.names(),
                   help="teacher that turns boxes into pseudo masks (default: %(default)s)")
    p.add_argument("--checkpoint", metavar="FILE", help="the teacher's weights (for teachers that need a file)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default: %(default)s)")
    p.add_argument("--allow-host", action="append", metavar="NAME", default=[],
                   help="a host name requests may address the server by, besides localhost, 127.0.0.1, [::1] and "
                        "--host (repeatable; e.g. this machine's name when serving with --host 0.0.0.0). Requests "
                        "naming any other host are refused, against DNS-rebinding pages")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest upload (default: %(default)s MB)")
    p.add_argument("--max-pixels", type=int, default=60_000_000,
                   help="largest image, in pixels, checked before decoding (default: %(default)s)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: %(default)s)")
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import torch

    from ..app.server import ServeSettings, serve
    from ..deployment.shipped import SHIPPED
    from ..errors import ConfigError

    if args.boxes and not args.dataset:
        raise ConfigError("--boxes needs --dataset: the box file annotates a dataset's images")
    torch.set_num_threads(max(1, args.threads))
    model = None if args.model == SHIPPED else args.model
    serve(ServeSettings(dataset=tuple(args.dataset or ()), boxes=args.boxes, model=model, teacher=args.teacher,
                        checkpoint=args.checkpoint, host=args.host, port=args.port,
                        allow_hosts=tuple(args.allow_host), max_upload_mb=args.max_upload_mb,
                        max_pixels=args.max_pixels))
    return 0
