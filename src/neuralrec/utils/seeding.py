"""Seeding and thread control. Nothing here touches global RNGs unless asked."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global generators (used by the trainer, not by constructors)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count; ``None`` or 0 leaves the default (one per core)."""
    if threads:
        torch.set_num_threads(int(threads))


def default_threads() -> int:
    """Threads to use by default: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
