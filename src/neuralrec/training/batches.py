"""Mini-batch sources: each epoch a fresh, seeded shuffle (and fresh negatives, where sampled).

The order of epoch ``e`` depends only on ``(seed, e)``, so a run resumed from a checkpoint sees
exactly the batches an uninterrupted run would. With several processes, each rank takes its
own contiguous shard of the epoch's permutation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import torch

Batch = tuple[torch.Tensor, ...]


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A torch generator for one epoch, independent of anything run before it."""
    return torch.Generator().manual_seed(
        (int(seed) * 1_000_003 + int(epoch) * 7919 + stream) % (2**63)
    )


class BatchSource(Protocol):
    """What the trainer iterates: batches of one epoch, for one rank of ``world_size``."""

    def epoch(
        self, epoch: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> Iterator[Batch]: ...

    def num_batches(self, world_size: int = 1) -> int: ...


class TensorBatches:
    """Shuffled mini-batches over parallel tensors (rows of equal length).

    ``make_epoch`` (optional) builds the epoch's tensors from a seeded generator, e.g. to draw new
    negative samples every epoch; otherwise the fixed ``tensors`` are reshuffled.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor] | None = None,
        *,
        batch_size: int,
        make_epoch: Callable[[torch.Generator], Sequence[torch.Tensor]] | None = None,
        length: int | None = None,
        shuffle: bool = True,
    ) -> None:
        if tensors is None and make_epoch is None:
            raise ValueError("give tensors or make_epoch")
        self.tensors = None if tensors is None else tuple(tensors)
        self.make_epoch = make_epoch
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        if length is None:
            if self.tensors is None:
                raise ValueError("length is required with make_epoch")
            length = len(self.tensors[0])
        self.length = int(length)

    def num_batches(self, world_size: int = 1) -> int:
        return max(1, -(-self.length // (self.batch_size * world_size)))

    def epoch(self, epoch: int, seed: int, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        gen = epoch_generator(seed, epoch)
        tensors = (
            self.tensors
            if self.make_epoch is None
            else tuple(self.make_epoch(epoch_generator(seed, epoch, 1)))
        )
        n = len(tensors[0])
        # drawn on the CPU whatever the data's device, so a seed gives the same order everywhere
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        order = order.to(tensors[0].device)
        if world_size == 1:
            # gathering whole columns once per epoch is cheaper than indexing every batch
            shuffled = [t.index_select(0, order) for t in tensors]
            for start in range(0, n, self.batch_size):
                yield tuple(t[start : start + self.batch_size] for t in shuffled)
            return
        # Each global batch of batch_size * world_size rows is split across the ranks, so the
        # ranks together see exactly the batches of one process with that batch size. The last
        # global batch is split evenly, wrapping around to the epoch's first rows when the
        # count does not divide, so every rank takes the same number of steps.
        glob = self.batch_size * world_size
        for start in range(0, n, glob):
            size = min(glob, n - start)
            share = -(-size // world_size)
            pos = (
                torch.arange(start + rank * share, start + (rank + 1) * share, device=order.device)
                % n
            )
            rows = order[pos]
            yield tuple(t[rows] for t in tensors)
