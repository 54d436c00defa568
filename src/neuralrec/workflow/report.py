"""Comparison reports: Markdown, a self-contained HTML page, JSON, and PNG charts."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

from neuralrec.utils.atomic import write_json, write_text

if TYPE_CHECKING:
    from neuralrec.workflow.compare import Comparison

_BARS = ("rating/rmse", "rating/auc", "full/precision@10", "full/ndcg@10")


def write_report(comparison: Comparison, out: Path) -> dict[str, Path]:
    """Write compare.md, compare.html, compare.json, metrics.png and (when a model recorded a
    training loss or a validation metric) curves.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "markdown": out / "compare.md",
        "html": out / "compare.html",
        "json": out / "compare.json",
    }
    md = comparison.to_markdown()
    write_text(files["markdown"], md)
    table = comparison.table()
    write_json(
        files["json"],
        {
            "dataset": comparison.dataset.name,
            "split": comparison.split.spec,
            "seed": comparison.split.seed,
            "rows": [
                {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in table.to_dict("records")
            ],
            "histories": {e.label: e.history for e in comparison.entries},
        },
    )
    files["bars"] = _bar_chart(table, out / "metrics.png")
    curves = _curves(comparison, out / "curves.png")
    if curves is not None:
        files["curves"] = curves
    curves_html = (
        '<h2>Learning curves</h2><img src="curves.png" alt="learning curves">' if curves else ""
    )
    body = table.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="", border=0)
    note = html.escape(md.strip().splitlines()[-1])
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>neuralrec comparison</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}</style></head>
<body><h1>Model comparison</h1>{body}<p>{note}</p>
<h2>Metrics</h2><img src="metrics.png" alt="metric bar chart">
{curves_html}</body></html>
"""
    write_text(files["html"], page)
    return files


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bar_chart(table, path: Path) -> Path:
    plt = _plt()
    cols = [c for c in _BARS if c in table.columns]
    fig, axes = plt.subplots(
        1, max(len(cols), 1), figsize=(3.2 * max(len(cols), 1), 3.2), squeeze=False
    )
    for ax, col in zip(axes[0], cols, strict=False):
        vals = table[col]
        ax.bar(table["model"], vals.fillna(0), color="#4c72b0")
        ax.set_title(col)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _curves(comparison: Comparison, path: Path) -> Path | None:
    """Training loss and validation metric per epoch; None (no file) when no model recorded
    either (closed forms, and Gibbs sampling without a validation part)."""
    plt = _plt()
    trained = [e for e in comparison.entries if e.history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for e in trained:
        epochs = [h["epoch"] for h in e.history]
        if "train_loss" in e.history[0]:  # Gibbs sampling records sweeps without a loss
            axes[0].plot(epochs, [h["train_loss"] for h in e.history], label=e.label)
        metric = next((k for k in ("rmse", "ndcg@10") if k in e.history[0]), None)
        if metric:
            axes[1].plot(epochs, [h[metric] for h in e.history], label=f"{e.label} ({metric})")
    axes[0].set_title("training loss")
    axes[1].set_title("validation metric")
    if not any(ax.get_lines() for ax in axes):
        plt.close(fig)
        return None
    for ax in axes:
        ax.set_xlabel("epoch (sweep for Gibbs sampling)")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
