"""The ``bpiml`` command: each subcommand parses its options and calls one library function."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..errors import BPIMLError
from . import (
    boxes_cmd,
    check_cmd,
    demo_cmd,
    deploy_cmds,
    evaluate_cmd,
    pseudo_label_cmd,
    robustness_cmd,
    serve_cmd,
    split_cmd,
    synthesize_cmd,
    toy_cmd,
    train_cmd,
)

# In the order of the method's data flow.
COMMANDS = (toy_cmd, check_cmd, synthesize_cmd, split_cmd, boxes_cmd, pseudo_label_cmd, train_cmd, evaluate_cmd,
            robustness_cmd, deploy_cmds, serve_cmd, demo_cmd)


class _Formatter(logging.Formatter):
    """``bpiml: message`` for progress, ``bpiml: warning: message`` for problems."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        return f"bpiml: {level}{record.getMessage()}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpiml",
        description="BoxPromptIML: pixel-level image manipulation localization trained from coarse boxes.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bpiml``; returns the process exit code (0 ok, 1 some inputs failed, 2 error)."""
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("boxpromptiml").setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        return int(args.run(args) or 0)
    except BPIMLError as exc:
        print(f"bpiml {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # permission denied, read-only file system, disk full: one line, as for any error
        where = f" {exc.filename}" if exc.filename else ""
        print(f"bpiml {args.command}: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bpiml {args.command}: interrupted", file=sys.stderr)
        return 130
