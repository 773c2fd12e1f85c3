"""Data-parallel training under torchrun: rank and world size from its environment, nothing home-made.

Launched with ``torchrun --nproc-per-node N -m flairseg train ...`` the same command
trains on N processes (gloo on CPU, nccl on GPU); launched plainly it is one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int
    size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def init(device: torch.device) -> World:
    """Join the process group torchrun set up (if any) and return this process's World."""
    if not launched_by_torchrun():
        return World(0, 1, 0)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def all_sum(values: list[float], world: World) -> list[float]:
    """Sum numbers over all processes (e.g. confusion counts), returned on every rank."""
    if world.size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
