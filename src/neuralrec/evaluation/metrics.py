"""Metric functions on plain arrays: rating error, classification, and top-K ranking.

Everything here is a pure function of numpy arrays, so each definition can be checked by hand
and against independent implementations. The formulas are written out in docs/evaluation.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from neuralrec.errors import ConfigError

#: top-K metrics computed from a hit matrix (one row per user, one column per rank position)
TOPK_METRICS = ("precision", "recall", "ndcg", "hit", "map", "mrr")


# ---------------------------------------------------------------------------- rating error
def rmse(truth: np.ndarray, pred: np.ndarray) -> float:
    """Root mean squared error: sqrt(mean((pred - truth)^2)); NaN for empty input."""
    err = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return float(np.sqrt(np.mean(err**2))) if err.size else float("nan")


def mae(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute error: mean(|pred - truth|); NaN for empty input."""
    err = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return float(np.mean(np.abs(err))) if err.size else float("nan")


# ---------------------------------------------------------------------------- classification
def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative).

    Ties count one half (Mann-Whitney U with average ranks). NaN when a class is missing.
    """
    y = np.asarray(labels, dtype=bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def grouped_roc_auc(
    groups: np.ndarray, labels: np.ndarray, scores: np.ndarray, n_groups: int
) -> np.ndarray:
    """ROC AUC within each group (e.g. per user): an array of length ``n_groups``.

    Groups lacking positives or negatives get NaN. Vectorised: average ranks within each
    group come from one lexsort plus tie-run boundaries.
    """
    g = np.asarray(groups, np.int64)
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, np.float64)
    order = np.lexsort((s, g))
    gs, ss = g[order], s[order]
    n = len(gs)
    # runs of equal (group, score) share the average of their 1-based positions
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = (gs[1:] != gs[:-1]) | (ss[1:] != ss[:-1])
    run_id = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    run_end = np.append(run_start[1:], n)
    avg_pos = (run_start + run_end + 1) / 2.0
    group_start = np.zeros(n_groups + 1, dtype=np.int64)
    np.add.at(group_start, gs + 1, 1)
    group_start = np.cumsum(group_start)
    rank_in_group = avg_pos[run_id] - group_start[gs]
    ys = y[order]
    n_pos = np.bincount(gs, weights=ys, minlength=n_groups)
    n_all = np.bincount(gs, minlength=n_groups).astype(np.float64)
    n_neg = n_all - n_pos
    rank_sum = np.bincount(gs, weights=rank_in_group * ys, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Binary cross-entropy -mean(y log p + (1-y) log(1-p)), p clipped to [eps, 1-eps]."""
    y = np.asarray(labels, np.float64)
    p = np.asarray(probs, np.float64)
    if p.size and ((p < 0).any() or (p > 1).any() or np.isnan(p).any()):
        raise ConfigError("log loss needs probabilities in [0, 1]")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))) if y.size else float("nan")


# ---------------------------------------------------------------------------- top-K ranking
def discounts(n: int) -> np.ndarray:
    """1 / log2(rank + 1) for ranks 1..n."""
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def topk_metrics(
    hits: np.ndarray,
    n_rel: np.ndarray,
    ks: Sequence[int],
    metrics: Sequence[str] = TOPK_METRICS,
) -> dict[str, np.ndarray]:
    """Per-user top-K metrics from a hit matrix.

    ``hits[u, j]`` says whether the item at rank ``j + 1`` of user ``u``'s list is relevant;
    lists may be shorter than K (missing positions are misses). ``n_rel[u] >= 1`` is the number
    of relevant candidates of user ``u``. Returns ``{"ndcg@10": array, ...}`` with:

    - precision@K = hits@K / K;  recall@K = hits@K / n_rel;  hit@K = [hits@K > 0]
    - ndcg@K = Σ_{j<=K} rel_j / log2(j+1)  /  Σ_{j<=min(n_rel,K)} 1 / log2(j+1)
    - map@K = Σ_{j<=K} P@j · rel_j / min(n_rel, K)
    - mrr@K = 1 / rank of the first relevant item if it is within K, else 0 (cut at K)
    """
    bad = set(metrics) - set(TOPK_METRICS)
    if bad:
        raise ConfigError(f"unknown top-K metric(s) {sorted(bad)}; use {', '.join(TOPK_METRICS)}")
    hits = np.asarray(hits, dtype=bool)
    if hits.ndim != 2 or len(hits) != len(n_rel):
        raise ConfigError(f"hits must be (n_users, L), got {hits.shape} for {len(n_rel)} users")
    n_rel = np.asarray(n_rel, np.float64)
    if len(n_rel) and n_rel.min() < 1:
        raise ConfigError("every evaluated user needs at least one relevant item")
    length = hits.shape[1]
    kmax = max(ks)
    disc = discounts(max(kmax, 1))
    ideal = np.concatenate([[0.0], np.cumsum(disc)])  # ideal[m] = IDCG with m relevant at top
    cum_hits = np.cumsum(hits, axis=1, dtype=np.float64)
    positions = np.arange(1, length + 1, dtype=np.float64)
    # first hit position (1-based), or +inf
    any_hit = hits.any(axis=1)
    first = np.where(any_hit, hits.argmax(axis=1) + 1, np.inf)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        kk = min(k, length)
        nh = cum_hits[:, kk - 1] if kk > 0 else np.zeros(len(hits))
        if "precision" in metrics:
            out[f"precision@{k}"] = nh / k
        if "recall" in metrics:
            out[f"recall@{k}"] = nh / n_rel
        if "hit" in metrics:
            out[f"hit@{k}"] = (nh > 0).astype(np.float64)
        if "ndcg" in metrics:
            dcg = hits[:, :kk] @ disc[:kk]
            out[f"ndcg@{k}"] = dcg / ideal[np.minimum(n_rel, k).astype(np.int64)]
        if "map" in metrics:
            prec_at = cum_hits[:, :kk] / positions[:kk]
            ap = (prec_at * hits[:, :kk]).sum(axis=1)
            out[f"map@{k}"] = ap / np.minimum(n_rel, k)
        if "mrr" in metrics:
            out[f"mrr@{k}"] = np.where(first <= k, 1.0 / first, 0.0)
    return out


def sampled_metrics(
    ranks: np.ndarray, ks: Sequence[int], metrics: Sequence[str] = ("hit", "ndcg", "mrr")
) -> dict[str, np.ndarray]:
    """Metrics of one positive ranked in a short list, from its 1-based rank.

    hit@K = [rank <= K]; ndcg@K = [rank <= K] / log2(rank + 1) (one relevant item, so the
    ideal DCG is 1); precision@K = hit@K / K; recall@K = hit@K; mrr = 1 / rank over the whole
    list (not cut at K).
    """
    allowed = {"hit", "ndcg", "mrr", "precision", "recall"}
    bad = set(metrics) - allowed
    if bad:
        raise ConfigError(f"unknown sampled metric(s) {sorted(bad)}; use {sorted(allowed)}")
    r = np.asarray(ranks, np.float64)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        inside = r <= k
        if "precision" in metrics:
            out[f"precision@{k}"] = inside / k
        if "recall" in metrics:
            out[f"recall@{k}"] = inside.astype(np.float64)
        if "hit" in metrics:
            out[f"hit@{k}"] = inside.astype(np.float64)
        if "ndcg" in metrics:
            out[f"ndcg@{k}"] = np.where(inside, 1.0 / np.log2(r + 1.0), 0.0)
    if "mrr" in metrics:
        out["mrr"] = 1.0 / r
    return out


def catalog_coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the catalog that appears in at least one list: |∪ lists| / n_items."""
    rec = np.asarray(recommended, np.int64).ravel()
    rec = rec[rec >= 0]
    return float(len(np.unique(rec)) / n_items) if n_items else float("nan")
