"""Helpers shared by CLI commands: option parsing and output."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from neuralrec.errors import ConfigError


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON (numbers, true/false, null, lists, quoted strings) or a bare string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.strip().lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        return text


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``["factors=64", "lr=0.01"]`` -> ``{"factors": 64, "lr": 0.01}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip().replace("-", "_")] = parse_value(value.strip())
    return out


def echo_json(obj: Any) -> None:
    """Print one JSON object on stdout (nothing else goes there with --json)."""
    sys.stdout.write(json.dumps(obj, default=_default) + "\n")
    sys.stdout.flush()


def _default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def err(message: str) -> None:
    """A line on stderr (progress and notes never go to stdout)."""
    typer.echo(message, err=True)
