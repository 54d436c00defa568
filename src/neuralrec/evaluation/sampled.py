"""Sampled ranking as in the NCF paper: each held-out positive against sampled negatives.

He et al., "Neural Collaborative Filtering" (WWW 2017), section 4.1: every test positive is
ranked among 100 items the user did not interact with; HR@K and NDCG@K of that single positive
are averaged over the test cases. Results of this protocol are labelled ``sampled-N`` (or
``sampled-N-file`` for the NCF files) and are not comparable with full ranking.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from neuralrec.data.idmap import IdMap
from neuralrec.errors import ConfigError, DataError
from neuralrec.evaluation.metrics import sampled_metrics
from neuralrec.evaluation.ranking import Scorer, _as_scores, _auto_batch, _canonical
from neuralrec.evaluation.result import ProtocolResult
from neuralrec.evaluation.ties import check_ties

SAMPLED_METRICS = ("hit", "ndcg", "mrr", "precision", "recall")


@dataclass(frozen=True)
class SampledCases:
    """Ranking cases: ``users[j]`` ranks ``positives[j]`` among ``negatives[j]`` (dense indices).

    Rows of ``negatives`` may be padded with -1 when fewer negatives were available.
    """

    users: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    source: str = "sampled"

    @property
    def n_negatives(self) -> int:
        return int(self.negatives.shape[1])


def sample_negatives(
    train: sp.spmatrix,
    test: sp.spmatrix,
    *,
    n_negatives: int = 100,
    relevance_threshold: float | None = None,
    seed: int = 0,
) -> SampledCases:
    """One case per relevant test pair, with ``n_negatives`` distinct negatives drawn uniformly
    from the items the user interacted with neither in ``train`` nor in ``test``.

    Cases are ordered by (user, item) and drawn from ``numpy.random.default_rng(seed)``, so the
    same split and seed give the same negatives for every model (a paired comparison).
    """
    if n_negatives < 1:
        raise ConfigError("n_negatives must be >= 1")
    train, test = _canonical(train), _canonical(test)
    n_users, n_items = train.shape
    seen = _canonical(train + test)
    seen_keys = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(seen.indptr)) * n_items
    seen_keys += seen.indices
    users = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(test.indptr))
    items = test.indices.astype(np.int64)
    keep = (
        np.ones(len(users), bool)
        if relevance_threshold is None
        else test.data >= relevance_threshold
    )
    users, items = users[keep], items[keep]
    rng = np.random.default_rng(seed)
    negatives = np.full((len(users), n_negatives), -1, dtype=np.int64)
    for start in range(0, len(users), 65536):  # chunks keep the oversampled draw small
        rows = slice(start, start + 65536)
        negatives[rows] = _draw(users[rows], seen_keys, n_items, n_negatives, rng)
    for j in np.flatnonzero((negatives < 0).any(axis=1)):
        # rare: the user saw most of the catalogue; draw exactly from what is left
        row_seen = seen.indices[seen.indptr[users[j]] : seen.indptr[users[j] + 1]]
        left = np.setdiff1d(np.arange(n_items), row_seen)
        take = rng.choice(left, min(n_negatives, len(left)), replace=False)
        negatives[j] = -1
        negatives[j, : len(take)] = take
    return SampledCases(users, items, negatives, source=f"sampled-{n_negatives}")


def _draw(
    users: np.ndarray, seen_keys: np.ndarray, n_items: int, n_neg: int, rng: np.random.Generator
) -> np.ndarray:
    """Oversample uniformly, drop items the user has seen and repeats within a row; -1 pads
    rows that did not get ``n_neg`` distinct negatives."""
    cand = rng.integers(0, n_items, size=(len(users), n_neg * 2 + 16), dtype=np.int64)
    keys = users[:, None] * n_items + cand
    if len(seen_keys):
        pos = np.minimum(np.searchsorted(seen_keys, keys), len(seen_keys) - 1)
        ok = seen_keys[pos] != keys
    else:
        ok = np.ones(cand.shape, bool)
    order = np.argsort(cand, axis=1, kind="stable")
    sorted_c = np.take_along_axis(cand, order, axis=1)
    repeat = np.zeros(cand.shape, bool)
    repeat[:, 1:] = sorted_c[:, 1:] == sorted_c[:, :-1]
    dup = np.zeros(cand.shape, bool)
    np.put_along_axis(dup, order, repeat, axis=1)  # later draws of a repeated item are dropped
    ok &= ~dup
    rank = np.cumsum(ok, axis=1) - 1
    sel = ok & (rank < n_neg)
    out = np.full((len(users), n_neg), -1, dtype=np.int64)
    r, c = np.nonzero(sel)
    out[r, rank[r, c]] = cand[r, c]
    return out


def read_ncf_test(
    negative_path: str | Path,
    rating_path: str | Path | None = None,
    *,
    user_ids: IdMap | None = None,
    item_ids: IdMap | None = None,
) -> SampledCases:
    """Read the NCF repository's ``*.test.negative`` (and optionally ``*.test.rating``) as-is.

    Each line of the negative file is ``(user,item)\\tneg1\\tneg2...``; the rating file has
    ``user\\titem\\trating\\ttimestamp`` on the same line numbers and must name the same pairs.
    Ids are the files' own integers; pass ``user_ids``/``item_ids`` (the vocabularies of the
    training data) to map them to dense indices, otherwise they are used as indices directly.
    """
    users, items, negs = [], [], []
    pair = re.compile(r"^\((\d+),\s*(\d+)\)$")
    with open(negative_path) as fh:
        for lineno, line in enumerate(fh, 1):
            fields = line.split()
            if not fields:
                continue
            m = pair.match(fields[0])
            if not m:
                raise DataError(
                    "expected '(user,item)' first", source=str(negative_path), line=lineno
                )
            users.append(int(m.group(1)))
            items.append(int(m.group(2)))
            negs.append([int(x) for x in fields[1:]])
    if len({len(n) for n in negs}) > 1:
        raise DataError("lines have different numbers of negatives", source=str(negative_path))
    u, i = np.array(users, np.int64), np.array(items, np.int64)
    neg = np.array(negs, np.int64).reshape(len(u), -1)
    if rating_path is not None:
        rt = pd.read_csv(rating_path, sep="\t", header=None, usecols=[0, 1])
        if len(rt) != len(u) or not (
            np.array_equal(rt[0].to_numpy(), u) and np.array_equal(rt[1].to_numpy(), i)
        ):
            raise DataError(f"{rating_path} and {negative_path} do not list the same test pairs")
    if user_ids is not None:
        u = user_ids.to_index(u)
    if item_ids is not None:
        i = item_ids.to_index(i)
        neg = item_ids.to_index(neg.ravel()).reshape(neg.shape)
    return SampledCases(u, i, neg, source=f"sampled-{neg.shape[1]}-file")


def sampled_ranking(
    scorer: Scorer,
    cases: SampledCases,
    *,
    ks: Sequence[int] = (10,),
    metrics: Sequence[str] = ("hit", "ndcg", "mrr"),
    ties: str = "pessimistic",
    seed: int = 0,
    batch_size: int | None = None,
    n_items: int | None = None,
) -> ProtocolResult:
    """Rank each case's positive among its negatives.

    rank = 1 + #(negatives scoring higher) + tie term: pessimistic counts every tied negative
    as ranked above the positive, random a uniform share of them. Summary values are means over
    cases (as in the paper); per-user values are means over each user's cases. ``n_items``
    (the vocabulary size), when given, is checked against the width of the scores.
    """
    ties = check_ties(ties)
    ks = tuple(sorted({int(k) for k in ks}))
    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(cases.users, return_inverse=True)
    ranks = np.empty(len(cases.users), dtype=np.float64)
    top_id = int(max(cases.positives.max(initial=0), cases.negatives.max(initial=0)))
    batch = batch_size or _auto_batch(n_items or top_id + 1)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(0, len(uniq) + batch, batch))
    for b, start in enumerate(range(0, len(uniq), batch)):
        block = uniq[start : start + batch]
        with torch.no_grad():
            raw = torch.as_tensor(scorer(block))
            width = n_items or raw.shape[-1]
            if width <= top_id:
                raise ConfigError(f"scores cover {width} items but the cases name item {top_id}")
            scores, _ = _as_scores(raw, len(block), width)
        rows = order[bounds[b] : bounds[b + 1]]
        local = torch.from_numpy(inv[rows] - start)
        pos = scores[local, torch.from_numpy(cases.positives[rows])].double().numpy()
        neg_idx = cases.negatives[rows]
        neg = scores[local[:, None], torch.from_numpy(np.maximum(neg_idx, 0))].double().numpy()
        if np.isnan(pos).any() or np.isnan(neg).any():
            raise ConfigError("the model returned NaN scores; cannot rank")
        real = neg_idx >= 0
        greater = ((neg > pos[:, None]) & real).sum(axis=1)
        equal = ((neg == pos[:, None]) & real).sum(axis=1)
        extra = equal if ties == "pessimistic" else rng.integers(0, equal + 1)
        ranks[rows] = 1 + greater + extra
    per_case = sampled_metrics(ranks, ks, metrics)
    per_user = {
        key: np.bincount(inv, weights=v, minlength=len(uniq)) / np.bincount(inv)
        for key, v in per_case.items()
    }
    cases_frame = pd.DataFrame({"user": cases.users, "item": cases.positives, "rank": ranks})
    for key, v in per_case.items():
        cases_frame[key] = v
    return ProtocolResult(
        protocol=cases.source,
        ks=ks,
        users=uniq,
        per_user=per_user,
        values={key: float(v.mean()) for key, v in per_case.items()},
        cases=cases_frame,
        notes={"ties": ties, "n_cases": len(ranks), "n_negatives": cases.n_negatives},
    )
