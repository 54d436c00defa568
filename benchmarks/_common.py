"""Shared helpers for benchmark scripts: machine info, JSON output, tables, side-by-side venvs."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the figures were measured on (cores, load, versions)."""
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (None,)
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": load[0],
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (merging with existing sections).

    Each new section records the machine it ran on: sections of one file are often run
    on different days, so the file-level ``machine`` only says where the latest one ran.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    here = machine()
    for value in payload.values():
        if isinstance(value, dict):
            value.setdefault("machine", here)
    old.update(payload)
    old["machine"] = here
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(old, indent=2, default=_jsonable) + "\n")
    tmp.replace(path)
    return path


def _jsonable(value: Any) -> Any:
    """numpy and torch scalars as numbers; anything else JSON lacks as its text."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def print_table(rows: list[dict[str, Any]], title: str = "") -> None:
    """A plain fixed-width table on stdout."""
    if not rows:
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    if title:
        print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    sys.stdout.flush()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def run_json(cmd: list[str], *, timeout: float = 3600, env: dict[str, str] | None = None) -> Any:
    """Run a side-by-side script in another interpreter; it prints one JSON object last."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
