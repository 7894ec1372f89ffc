"""Data-parallel training under ``torchrun``, on PyTorch's own engine (torch.distributed).

``torchrun --nproc_per_node=N -m boxpromptiml train ...`` starts N processes; each reads its
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``, joins the process group (NCCL on GPUs, Gloo on CPUs)
and trains on its slice of every global batch. The configured batch size is the global one:
each process takes ``batch_size / N`` samples of each batch, so a run gives the same updates
on any number of processes (up to stochastic layers and batch-norm statistics, which are per
process; see ``optim.freeze_batchnorm``). Only rank 0 writes the run folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..devices import resolve_device
from ..errors import ConfigError


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, value: float, device: torch.device) -> float:
        """``value`` summed over all processes."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def from_main(self, value: bool, device: torch.device) -> bool:
        """Rank 0's ``value`` on every process (e.g. the decision to stop at a time limit)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([float(value)], device=device)
        dist.broadcast(tensor, src=0)
        return bool(tensor.item())


def setup(device_spec: str) -> tuple[Distributed, torch.device]:
    """Join the torchrun job if there is one; returns this process's place and its device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_spec)
    if world <= 1:
        return Distributed(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ConfigError(f"data-parallel training runs on CUDA (NCCL) or the CPU (Gloo), not {device.type}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank, world, local_rank), device


def local_batch_size(global_batch: int, ctx: Distributed) -> int:
    if global_batch % ctx.world:
        raise ConfigError(f"optim.batch_size={global_batch} is the global batch: it must divide evenly over the "
                          f"{ctx.world} processes")
    return global_batch // ctx.world
