"""Floating-point settings shared by training and inference."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat subnormal floats as zero on the CPU inside the block, off again afterwards.

    Weights that a penalty shrinks towards zero (dead ReLU units under ``dense_l2``, say) turn
    subnormal, and so do the gradients of saturated losses; x86 arithmetic on subnormals is
    many times slower: a NeuMF epoch went from 0.33 s to 4.5 s once they appeared, and a NeuMF
    visitor's fold-in took 161 ms instead of 29 ms (README, ``bench_ncf.py --only foldin``).
    """
    changed = torch.set_flush_denormal(True)  # False where the CPU cannot (then a no-op)
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(False)
