"""neuralrec: neural-network recommender systems on PyTorch.

The top-level names are imported lazily, so ``neuralrec datasets ...`` and other light commands
start without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from neuralrec._version import __version__

_LAZY = {
    "Dataset": "neuralrec.data",
    "IdMap": "neuralrec.data",
    "Interactions": "neuralrec.data",
    "Split": "neuralrec.data",
    "load_dataset": "neuralrec.data",
    "split": "neuralrec.data",
    "Recommender": "neuralrec.models",
    "available_models": "neuralrec.models",
    "create": "neuralrec.models",
    "train": "neuralrec.workflow",
    "evaluate": "neuralrec.workflow",
    "load": "neuralrec.workflow",
    "RunConfig": "neuralrec.workflow",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'neuralrec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
