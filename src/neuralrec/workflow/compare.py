"""Train several models on one split and compare them, with paired significance tests."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from neuralrec.data.dataset import Dataset
from neuralrec.data.splits import Split
from neuralrec.errors import ConfigError
from neuralrec.workflow.runs import RunConfig, evaluate_split, load_run_data

#: columns of the comparison table, in order, when present
HEADLINE = (
    "rating/rmse",
    "rating/mae",
    "rating/auc",
    "full/precision@10",
    "full/recall@10",
    "full/ndcg@10",
    "full/hit@10",
    "full/mrr@10",
)
#: short column names for printed tables
DISPLAY = {
    "rating/rmse": "RMSE",
    "rating/mae": "MAE",
    "rating/auc": "AUC",
    "full/precision@10": "P@10",
    "full/recall@10": "R@10",
    "full/ndcg@10": "NDCG@10",
    "full/hit@10": "HR@10",
    "full/mrr@10": "MRR@10",
    "fit_s": "fit s",
    "p(ndcg@10)": "p NDCG",
    "p(rmse)": "p RMSE",
}
#: (metric, protocol) pairs tested against the first model
SIGNIFICANCE = (("ndcg@10", "full"), ("rmse", "rating"))


@dataclass
class Entry:
    """One compared model: the fitted model, its evaluation and its training record."""

    label: str
    model: Any
    result: Any
    fit_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Comparison:
    """Models evaluated on the same split; :meth:`table` is what ``neuralrec compare`` prints."""

    dataset: Dataset
    split: Split
    config: RunConfig
    entries: list[Entry]

    def table(self) -> pd.DataFrame:
        """One row per model: headline metrics, fit seconds, and p-values against the first model."""
        from neuralrec.evaluation import paired_test

        rows = []
        first = self.entries[0]
        for e in self.entries:
            summary = e.result.summary()
            row: dict[str, Any] = {"model": e.label}
            row.update({k: summary[k] for k in HEADLINE if k in summary})
            row["fit_s"] = e.fit_seconds
            for metric, protocol in SIGNIFICANCE:
                key = f"p({metric})"
                if (
                    e is first
                    or protocol not in e.result.results
                    or protocol not in first.result.results
                ):
                    row[key] = math.nan
                    continue
                if metric == "rmse" and not (_rates(e.model) and _rates(first.model)):
                    row[key] = math.nan
                    continue
                row[key] = paired_test(
                    e.result, first.result, metric, protocol=protocol
                ).wilcoxon_pvalue
            rows.append(row)
        frame = pd.DataFrame(rows)
        return frame.dropna(axis=1, how="all")

    def to_markdown(self) -> str:
        """The table as GitHub Markdown, with the protocol spelled out."""
        t = self.table()
        cols = list(t.columns)
        lines = [
            "| " + " | ".join(DISPLAY.get(c, c) for c in cols) + " |",
            "|" + "---|" * len(cols),
        ]
        for _, r in t.iterrows():
            lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
        rel = self.config.relevance_threshold
        relevance = (
            f"test rating >= {rel:g}"
            if rel is not None and self.split.test.ratings is not None
            else "every test interaction"
        )
        note = (
            f"\n{self.dataset.name}, split {self.split.spec} (seed {self.split.seed}): "
            f"{len(self.split.train)} train / {len(self.split.test)} test rows. Ranking: full ranking over all "
            f"items unseen in training, relevant = {relevance}. p(...): paired Wilcoxon signed-rank test over "
            f"users against {self.entries[0].label}."
        )
        return "\n".join(lines) + "\n" + note + "\n"


def _rates(model: Any) -> bool:
    return bool(getattr(model, "predicts_ratings", False))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"
    return str(v)


def compare(
    models: list[str],
    dataset: str,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    out: str | Path | None = None,
    quiet: bool = True,
    **options: Any,
) -> Comparison:
    """Fit each of ``models`` on one split of ``dataset`` and evaluate them identically.

    ``options`` are :class:`RunConfig` fields (split, seed, valid_fraction, ...); ``params`` maps a
    model name to its hyperparameters. With ``out``, writes compare.md, compare.html,
    compare.json and PNG charts there.
    """
    from neuralrec.models import create

    if not models:
        raise ConfigError("compare needs at least one model")
    params = params or {}
    unknown = set(params) - set(models)
    if unknown:
        raise ConfigError(f"parameters given for models not compared: {sorted(unknown)}")
    cfg = RunConfig(model=models[0], dataset=str(dataset), **options)
    ds, sp = load_run_data(cfg)
    entries = []
    for name in models:
        model = create(name, **{"seed": cfg.seed, **params.get(name, {})})
        start = time.perf_counter()
        model.fit(sp.train, sp.valid, dataset=ds, quiet=quiet)
        seconds = time.perf_counter() - start
        result = evaluate_split(model, sp, cfg.relevance_threshold)
        entries.append(Entry(name, model, result, seconds, list(getattr(model, "history_", []))))
    comparison = Comparison(ds, sp, cfg, entries)
    if out is not None:
        from neuralrec.workflow.report import write_report

        write_report(comparison, Path(out))
    return comparison
