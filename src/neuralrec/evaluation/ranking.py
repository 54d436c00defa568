"""Full-ranking evaluation: every item the user has not interacted with in training is a candidate.

Users are scored in batches (one ``scorer`` call, typically one matrix product, per batch), so
memory stays at ``batch_size x n_items`` scores whatever the number of users. Per batch: the
training items are set to -inf by index assignment, ``torch.topk`` picks the top ``K + 1``,
relevance is looked up by binary search in the sorted (user, item) keys of the relevant test
pairs, and ties are resolved explicitly (see :mod:`neuralrec.evaluation.ties`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from neuralrec.errors import ConfigError
from neuralrec.evaluation.metrics import TOPK_METRICS, topk_metrics
from neuralrec.evaluation.result import ProtocolResult, RankingResult
from neuralrec.evaluation.ties import check_ties, fix_tied_hits, tied_rank

Scorer = Callable[[np.ndarray], torch.Tensor]
#: metrics of the full protocol: top-K ones, full-rank MRR, coverage and popularity of lists
FULL_METRICS = (*TOPK_METRICS, "mrr_full", "coverage", "popularity")
DEFAULT_FULL_METRICS = (*TOPK_METRICS, "coverage", "popularity")
__all__ = ["DEFAULT_FULL_METRICS", "FULL_METRICS", "RankingResult", "Scorer", "full_ranking"]


def full_ranking(
    scorer: Scorer,
    train: sp.spmatrix,
    test: sp.spmatrix,
    *,
    ks: Sequence[int] = (10,),
    metrics: Sequence[str] = DEFAULT_FULL_METRICS,
    relevance_threshold: float | None = None,
    ties: str = "pessimistic",
    seed: int = 0,
    batch_size: int | None = None,
    item_popularity: np.ndarray | None = None,
    protocol: str = "full",
) -> ProtocolResult:
    """Rank every item outside each user's training items; score the top-K lists.

    ``train`` and ``test`` are users x items sparse matrices. A test entry is relevant when
    ``relevance_threshold`` is None (all test interactions) or its value is >= the threshold,
    and the item is not among the user's training items. Users with test entries but no
    relevant candidate are skipped and counted in ``n_skipped``. ``item_popularity`` (default:
    training counts) feeds the ``popularity`` metric.
    """
    ks, metrics = _check_args(ks, metrics, train, test)
    ties = check_ties(ties)
    rng = np.random.default_rng(seed)
    n_users, n_items = train.shape
    train, test = _canonical(train), _canonical(test)
    rel = _relevant_keys(train, test, relevance_threshold)
    n_rel_all = np.bincount(rel // n_items, minlength=n_users)
    has_test = np.diff(test.indptr) > 0
    users = np.flatnonzero(n_rel_all > 0)
    n_train = np.diff(train.indptr)
    pop = (
        np.bincount(train.indices, minlength=n_items).astype(np.float64)
        if item_popularity is None
        else np.asarray(item_popularity, np.float64)
    )
    kmax = max(ks)
    kcap = min(kmax, n_items)
    batch = batch_size or _auto_batch(n_items)
    per_user: dict[str, list[np.ndarray]] = {key: [np.zeros(0)] for key in _keys_of(ks, metrics)}
    covered = {k: np.zeros(n_items, dtype=bool) for k in ks}
    for start in range(0, len(users), batch):
        block = users[start : start + batch]
        ctx = _Batch(block, n_items, kcap, n_train[block], rel, ties, rng)
        with torch.no_grad():
            out = ctx.run(scorer, train, "mrr_full" in metrics)
        top_m = [m for m in metrics if m in TOPK_METRICS]
        vals = topk_metrics(out["hits"], n_rel_all[block], ks, top_m) if top_m else {}
        if "mrr_full" in metrics:
            vals["mrr_full"] = 1.0 / out["rank"]
        valid = np.arange(kcap)[None, :] < ctx.lengths[:, None]
        for k in ks:
            kk = min(k, kcap)
            if "coverage" in metrics:
                covered[k][out["idx"][:, :kk][valid[:, :kk]]] = True
            if "popularity" in metrics:
                p = (pop[out["idx"][:, :kk]] * valid[:, :kk]).sum(axis=1)
                vals[f"popularity@{k}"] = p / np.maximum(valid[:, :kk].sum(axis=1), 1)
        for key, v in vals.items():
            per_user[key].append(v)
    values = {f"coverage@{k}": float(covered[k].mean()) for k in ks if "coverage" in metrics}
    return ProtocolResult(
        protocol=protocol,
        ks=ks,
        users=users,
        per_user={k: np.concatenate(v) for k, v in per_user.items()},
        values=values,
        n_skipped=int((has_test & (n_rel_all == 0)).sum()),
        notes={"ties": ties, "relevance_threshold": relevance_threshold, "batch_size": batch},
    )


class _Batch:
    """One batch of users: score, mask, top-K, relevance lookup, tie resolution."""

    def __init__(
        self,
        block: np.ndarray,
        n_items: int,
        kcap: int,
        n_train: np.ndarray,
        rel: np.ndarray,
        ties: str,
        rng: np.random.Generator,
    ) -> None:
        self.block, self.n_items, self.kcap = block, n_items, kcap
        self.n_train, self.rel, self.ties, self.rng = n_train, rel, ties, rng
        self.lengths = np.minimum(kcap, n_items - n_train)  # real list length per user

    def run(self, scorer: Scorer, train: sp.csr_matrix, want_rank: bool) -> dict[str, np.ndarray]:
        scores, owned = _as_scores(scorer(self.block), len(self.block), self.n_items)
        rows, cols = _rows_of(train.indptr, train.indices, self.block)
        # masking through a flat numpy view: several times faster than torch's index_put_
        flat = scores.numpy().reshape(-1)
        pos = rows * self.n_items + cols
        saved = None if owned else flat[pos]
        flat[pos] = -np.inf
        try:
            return self._rank(scores, want_rank)
        finally:
            if saved is not None:  # leave a tensor the scorer may still hold as it was
                flat[pos] = saved

    def _rank(self, scores: torch.Tensor, want_rank: bool) -> dict[str, np.ndarray]:
        width = min(self.kcap + 1, self.n_items)  # one extra to see if the K-th score is tied
        vals_t, idx_t = torch.topk(scores, width, dim=1)
        vals, idx = vals_t.numpy().astype(np.float64), idx_t.numpy().astype(np.int64)
        if np.isnan(vals).any():  # topk ranks NaN first, so any NaN score shows up here
            raise ConfigError("the model returned NaN scores; cannot rank")
        hits = self._lookup(idx[:, : self.kcap])
        hits &= np.arange(self.kcap)[None, :] < self.lengths[:, None]
        pairs = min(width - 1, self.kcap)
        tied = np.zeros(len(self.block), dtype=bool)
        if pairs > 0:
            # a tie matters if it is inside the list or joins the K-th item to the (K+1)-th
            eq = vals[:, 1 : pairs + 1] == vals[:, :pairs]
            tied = (eq & (np.arange(pairs)[None, :] < self.lengths[:, None])).any(axis=1)
        if tied.any():
            hits[tied] = self._fix_ties(scores, vals, hits, np.flatnonzero(tied))
        out = {"hits": hits, "idx": idx[:, : self.kcap]}
        if want_rank:
            out["rank"] = self._best_rank(scores, hits)
        return out

    def _lookup(self, items: np.ndarray) -> np.ndarray:
        keys = self.block[:, None].astype(np.int64) * self.n_items + items
        pos = np.searchsorted(self.rel, keys)
        return self.rel[np.minimum(pos, len(self.rel) - 1)] == keys

    def _rel_scores(self, scores: torch.Tensor, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row position in ``rows``, score) of every relevant item of the given batch rows."""
        users = self.block[rows].astype(np.int64)
        lo = np.searchsorted(self.rel, users * self.n_items)
        hi = np.searchsorted(self.rel, (users + 1) * self.n_items)
        indptr = np.concatenate([[0], np.cumsum(hi - lo)])
        which, flat = _rows_of(indptr, np.arange(indptr[-1]), np.arange(len(rows)))
        items = self.rel[lo[which] + (flat - indptr[which])] % self.n_items
        flat = scores.numpy().reshape(-1)
        return which, flat[rows[which] * self.n_items + items].astype(np.float64)

    def _fix_ties(
        self, scores: torch.Tensor, vals: np.ndarray, hits: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        lengths = self.lengths[rows]
        t = vals[rows, np.maximum(lengths, 1) - 1]
        slots = ((vals[rows, : self.kcap] == t[:, None]) & _in_list(lengths, self.kcap)).sum(1)
        n_tied = slots.copy()
        # the boundary group may continue past the list: count its members in the whole row
        extend = (lengths < vals.shape[1]) & (
            vals[rows, np.minimum(lengths, vals.shape[1] - 1)] == t
        )
        if extend.any():
            # numpy counts matches ~10x faster than torch's sum over a bool tensor
            sub = _take_rows(scores.numpy(), rows[extend])
            n_tied[extend] = np.count_nonzero(sub == t[extend, None].astype(np.float32), axis=1)
            # masked training items sit at -inf too but are not candidates
            n_tied[extend] -= np.where(np.isneginf(t[extend]), self.n_train[rows[extend]], 0)
        which, s = self._rel_scores(scores, rows)
        n_rel_tied = np.bincount(which, weights=s == t[which], minlength=len(rows)).astype(int)
        return fix_tied_hits(
            vals[rows, : self.kcap], hits[rows], lengths, n_tied, n_rel_tied, self.ties, self.rng
        )

    def _best_rank(self, scores: torch.Tensor, hits: np.ndarray) -> np.ndarray:
        """Full-catalogue rank of each user's best-ranked relevant item (ties by policy)."""
        rank = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0).astype(np.float64)
        rows = np.flatnonzero(rank == 0)
        if len(rows):
            which, s = self._rel_scores(scores, rows)
            best = np.full(len(rows), -np.inf)
            np.maximum.at(best, which, s)
            sub = _take_rows(scores.numpy(), rows)
            b_t = best[:, None].astype(np.float32)
            greater = np.count_nonzero(sub > b_t, axis=1)
            n_tied = np.count_nonzero(sub == b_t, axis=1)
            n_tied -= np.where(np.isneginf(best), self.n_train[rows], 0)
            n_rel_tied = np.bincount(which, weights=s == best[which], minlength=len(rows))
            rank[rows] = tied_rank(greater, n_tied, n_rel_tied, self.ties, self.rng)
        return rank


# ---------------------------------------------------------------------------- helpers
def _check_args(
    ks: Sequence[int], metrics: Sequence[str], train: sp.spmatrix, test: sp.spmatrix
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ConfigError(f"ks must be positive integers, got {ks}")
    bad = set(metrics) - set(FULL_METRICS)
    if bad:
        raise ConfigError(f"unknown full-ranking metric(s) {sorted(bad)}; use {FULL_METRICS}")
    if train.shape != test.shape:
        raise ConfigError(f"train is {train.shape} but test is {test.shape}")
    return ks, tuple(metrics)


def _keys_of(ks: tuple[int, ...], metrics: tuple[str, ...]) -> list[str]:
    """Names of the per-user values, e.g. ``ndcg@10``, in a stable order."""
    keys = [f"{m}@{k}" for k in ks for m in metrics if m in TOPK_METRICS or m == "popularity"]
    return keys + (["mrr_full"] if "mrr_full" in metrics else [])


def _canonical(mat: sp.spmatrix) -> sp.csr_matrix:
    """CSR with sorted, de-duplicated indices (copied only when needed)."""
    mat = sp.csr_matrix(mat)
    if not mat.has_canonical_format:
        mat = mat.copy()
        mat.sum_duplicates()
    return mat


def _relevant_keys(
    train: sp.csr_matrix, test: sp.csr_matrix, threshold: float | None
) -> np.ndarray:
    """Sorted keys ``user * n_items + item`` of relevant test pairs not seen in training."""
    keep = test.data >= threshold if threshold is not None else np.ones(test.nnz, bool)
    # copies: eliminate_zeros compacts index arrays in place, and these are the caller's
    test = sp.csr_matrix((keep, test.indices.copy(), test.indptr.copy()), test.shape)
    test.eliminate_zeros()
    # the sparse elementwise product finds test pairs also seen in training, row by row,
    # without building keys for the (much larger) training matrix
    seen = sp.csr_matrix((np.ones(train.nnz, bool), train.indices, train.indptr), train.shape)
    both = test.multiply(seen).tocsr()
    both.eliminate_zeros()
    keys = _keys(test)
    if both.nnz:
        drop = _keys(both)
        pos = np.minimum(np.searchsorted(drop, keys), len(drop) - 1)
        keys = keys[drop[pos] != keys]
    return keys


def _keys(mat: sp.csr_matrix) -> np.ndarray:
    mat.sort_indices()
    rows = np.repeat(np.arange(mat.shape[0], dtype=np.int64), np.diff(mat.indptr))
    return rows * mat.shape[1] + mat.indices


def _rows_of(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray):
    """(position in ``rows``, column) of every stored entry of the given CSR rows."""
    starts = indptr[rows].astype(np.int64)
    lens = (indptr[rows + 1] - indptr[rows]).astype(np.int64)
    which = np.repeat(np.arange(len(rows), dtype=np.int64), lens)
    offs = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    return which, indices[np.repeat(starts, lens) + offs].astype(np.int64)


def _take_rows(arr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``arr[rows]`` for sorted distinct ``rows``, without a copy when they are all rows."""
    return arr if len(rows) == len(arr) else arr[rows]


def _in_list(lengths: np.ndarray, width: int) -> np.ndarray:
    return np.arange(width)[None, :] < lengths[:, None]


def _as_scores(raw, n_rows: int, n_items: int) -> tuple[torch.Tensor, bool]:
    """A float32 CPU (rows x items) tensor we may write into, and whether we own it."""
    t = torch.as_tensor(raw).detach()
    if t.shape != (n_rows, n_items):
        raise ConfigError(f"scorer returned shape {tuple(t.shape)}, expected ({n_rows}, {n_items})")
    owned = t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous()
    t = t.to(device="cpu", dtype=torch.float32).contiguous()
    return t, owned


def _auto_batch(n_items: int) -> int:
    """Users per batch so that one score block stays near 256 MB (float32)."""
    return int(np.clip((256 << 20) // (4 * max(n_items, 1)), 64, 8192))
