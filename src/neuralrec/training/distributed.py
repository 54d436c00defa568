"""Data-parallel training on torch.distributed: DistributedDataParallel under torchrun.

Every rank loads the same data and split (both are deterministic), trains on its shard of each
epoch's shuffle, and DDP averages gradients (sparse embedding gradients too, on gloo). Rank 0
alone validates, logs, checkpoints and writes artifacts; its early-stopping decision is
broadcast so all ranks stop together. ``neuralrec train --nproc N`` starts N local processes
through ``torch.distributed.run`` (torchrun); for several machines run torchrun yourself
(docs/distributed.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from neuralrec.errors import ConfigError
from neuralrec.training.trainer import DistContext


def env_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(device: str = "cpu") -> DistContext | None:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); None when alone."""
    rank, world, local_rank = env_world()
    if world <= 1:
        return None
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
    return DistContext(rank=rank, world_size=world)


def shutdown() -> None:
    """Leave the process group (after training, before exit)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class LossModule(nn.Module):
    """The model's network with its loss as ``forward``, so DDP sees the forward pass it syncs."""

    def __init__(self, module: nn.Module, loss_fn: Callable[[Any], torch.Tensor]) -> None:
        super().__init__()
        self.module = module
        self._loss_fn = loss_fn

    def forward(self, batch: Any) -> torch.Tensor:
        return self._loss_fn(batch)


def wrap(
    module: nn.Module, loss_fn: Callable[[Any], torch.Tensor], device: torch.device
) -> nn.Module:
    """DDP around ``loss_fn``'s network. Parameters a step does not touch are allowed.

    Embedding tables switch to dense gradients: DDP's sparse all-reduce over gloo corrupted the
    heap about one run in six here (torch 2.13, "malloc(): unaligned tcache chunk" in the
    backward pass), while dense buckets are reduced by the well-trodden path. The tables are
    marked so that the optimizer still updates only the rows a step touched, as in one process.
    """
    from torch.nn.parallel import DistributedDataParallel

    from neuralrec.training.optim import LAZY_ROWS

    for m in module.modules():
        if isinstance(m, nn.Embedding | nn.EmbeddingBag) and m.sparse:
            m.sparse = False
            setattr(m.weight, LAZY_ROWS, True)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(
        LossModule(module, loss_fn),
        device_ids=ids,
        # buffers (moving averages, constants) evolve identically on every rank: no per-step
        # broadcast (torch 2.13 renamed broadcast_buffers to this)
        forward_sync_buffers=False,
        find_unused_parameters=True,
    )


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Re-run this command as ``nproc`` local processes under torchrun; returns its exit code."""
    if nproc < 1:
        raise ConfigError("--nproc must be >= 1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "neuralrec",
        *argv,
    ]
    return subprocess.call(cmd)
