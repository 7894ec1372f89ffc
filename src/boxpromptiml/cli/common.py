"""Options shared by several subcommands, defined once."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..data.readers import load_datasets
from ..data.samples import Dataset
from ..outputs import dataset_inputs
from ..runner import SampleRun

# --processes auto: items per core that pay for starting the processes (a few seconds). One process per core beat
# one process with every thread on 2 cores by 1.2x on pseudo-labels (docs/results.md)
AUTO_ITEMS_PER_PROCESS = 24
# ... and photos of 1024 x 768 per core for `bpiml predict`. With its copy-move search beside the network, one
# process of 2 threads takes 0.36 s a photo and two of one thread 0.32-0.33 s, but the second start costs ~3.6 s
# more: 100 photos were a tie on 2 cores (2.56 photos/s both ways, two runs; docs/results.md)
AUTO_PHOTOS_PER_PROCESS = 50


def add_processes_option(parser: argparse.ArgumentParser, items: str,
                         per_process: int = AUTO_ITEMS_PER_PROCESS) -> None:
    parser.add_argument(
        "--processes", default="auto", metavar="N|auto",
        help=f"processes on this machine, each doing its share of the {items} with --threads / N threads (started "
             "by PyTorch's elastic launcher, as torchrun does). auto: one per core when there are at least "
             f"{per_process} {items} per core (large photos count as several), on the CPU, outside "
             "--shard and torchrun; else 1 (default: auto)")


def processes_for(requested: str, items: int, on_cpu: bool, sharded: bool, work: float | None = None,
                  per_process: int = AUTO_ITEMS_PER_PROCESS) -> int:
    """How many processes ``--processes`` runs: a number as given (at most one per item); ``auto``: one per core
    for at least ``per_process`` items per core when the work runs on the CPU, else 1. ``work``: the
    job's size in items of the common size when its items differ (photos: ``photo_work``; default ``items``).
    Inside a shard (``--shard``, torchrun) the job is split already: 1."""
    from ..errors import ConfigError

    cores = os.cpu_count() or 1
    if requested == "auto":
        size = items if work is None else work
        wanted = cores if on_cpu and size >= per_process * cores else 1
    else:
        try:
            wanted = int(requested)
        except ValueError:
            raise ConfigError(f"--processes takes a number or 'auto', got {requested!r}") from None
        if wanted < 1:
            raise ConfigError(f"--processes must be at least 1, got {wanted}")
    return 1 if sharded else max(1, min(wanted, items))


def run_shards_here(worker, args: argparse.Namespace, processes: int) -> list:
    """``worker(args)`` in ``processes`` local processes (``--processes N``), each with ``--threads / N`` threads
    and quiet logs, each taking its shard from the launcher's RANK; their return values by rank."""
    from ..sharding import run_in_processes

    shard_args = argparse.Namespace(**{**vars(args), "threads": max(1, args.threads // processes)})
    return run_in_processes(_quiet_shard, (worker, shard_args), processes)


def _quiet_shard(worker, args: argparse.Namespace):
    """One process of :func:`run_shards_here`: warnings only, so that N processes do not repeat the progress log."""
    import logging

    logging.getLogger("boxpromptiml").setLevel(logging.WARNING)
    return worker(args)


def merged_runs(parts: list[SampleRun]) -> SampleRun:
    """One run from the runs of several processes (each did its own items)."""
    merged: SampleRun = SampleRun()
    for part in parts:
        merged.results.update(part.results)
        merged.failures.update(part.failures)
        merged.skipped.extend(part.skipped)
    return merged


def add_dataset_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", "-d", action="append", required=True, metavar="D",
        help="dataset: an IMDL-BenCo or ForensicHub JSON list, or a folder with Tp/ Gt/ [Au/]; "
             "repeat to combine (e.g. test.json and authentic.json)",
    )


def add_resize_masks_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resize-masks", action="store_true",
        help="resize masks whose size differs from their image (nearest neighbour) instead of failing",
    )


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an output folder (or over a file) that bpiml did not make; outputs that "
                             "are, hold or lie inside an input are refused even so")


def input_files(args: argparse.Namespace, dataset: Dataset) -> list[Path]:
    """Everything a command reads: the dataset's images and masks, its list files, and --boxes."""
    specs = [Path(d) for d in getattr(args, "dataset", None) or []]
    boxes = [Path(args.boxes)] if isinstance(getattr(args, "boxes", None), str) else []
    return dataset_inputs(dataset) + specs + boxes


def add_shard_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard", metavar="K/N",
        help="do only part K of N (0-based) of the images, e.g. to run N processes or machines on one shared "
             "output folder; under torchrun each rank takes its part without this flag",
    )


def dataset_from_args(args: argparse.Namespace) -> Dataset:
    return load_datasets(args.dataset)


def report_failures(run: SampleRun, what: str) -> int:
    """Print the failed samples (if any). Exit code 1 when some failed, 2 when every one did (nothing was done:
    that is an error, as for every command that stops on its inputs), else 0."""
    if not run.failures:
        return 0
    nothing_done = not run.results and not run.skipped
    print(f"bpiml {what}: error: no image could be processed ({len(run.failures)} failed):" if nothing_done else
          f"bpiml {what}: {len(run.failures)} image(s) failed and were skipped:", file=sys.stderr)
    for name, why in run.failures.items():
        print(f"  {name}: {why}", file=sys.stderr)
    return 2 if nothing_done else 1
