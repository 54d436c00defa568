"""Checkpoints as one safetensors file: weights, optimizer tensors and a JSON header.

No pickle: tensors go into safetensors, everything else (epoch, history, early-stopping state,
optimizer hyperparameters) into its JSON metadata. The file is written atomically, so a run
killed at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from neuralrec.errors import ArtifactError, NeuralrecError
from neuralrec.utils.atomic import atomic_path

CHECKPOINT_FORMAT = 1


def flatten_state(prefix: str, obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Move tensors out of a nested structure into ``tensors``; return a JSON-able skeleton."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {
            "__dict__": [
                [_key(k), flatten_state(f"{prefix}.{k}", v, tensors)] for k, v in obj.items()
            ]
        }
    if isinstance(obj, list | tuple):
        return {"__list__": [flatten_state(f"{prefix}.{i}", v, tensors) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot checkpoint {type(obj).__name__} at {prefix}")


def _key(k: Any) -> Any:
    return k if isinstance(k, int | str) else str(k)


def unflatten_state(skel: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skel, dict):
        if "__tensor__" in skel:
            return tensors[skel["__tensor__"]]
        if "__dict__" in skel:
            return {k: unflatten_state(v, tensors) for k, v in skel["__dict__"]}
        if "__list__" in skel:
            return [unflatten_state(v, tensors) for v in skel["__list__"]]
    return skel


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts/lists of tensors and JSON scalars) atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skel = flatten_state("s", state, tensors)
    meta = {"format": str(CHECKPOINT_FORMAT), "state": json.dumps(skel)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def state_fingerprint(*parts: Any) -> str:
    """A short hash of JSON-able parts (configuration, shapes, data sizes): what a checkpoint
    has to match before a run may continue from it."""
    text = json.dumps(list(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_matching_checkpoint(path: str | Path, expected: str) -> dict[str, Any]:
    """:func:`load_checkpoint`, refusing a checkpoint whose ``fingerprint`` is not ``expected``
    (another configuration, model shape or data) rather than silently continuing it."""
    data = load_checkpoint(path)
    if data.get("fingerprint") != expected:
        raise NeuralrecError(
            f"{path}: this checkpoint belongs to a different configuration, model shape or "
            "data; remove it or train into another directory"
        )
    return data


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open API
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"{path}: unreadable checkpoint ({exc})") from exc
    if meta.get("format") != str(CHECKPOINT_FORMAT):
        raise ArtifactError(
            f"{path}: checkpoint format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT}"
        )
    return unflatten_state(json.loads(meta["state"]), tensors)
