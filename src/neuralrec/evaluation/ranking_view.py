"""The lectures' "ranking view": order each user's own rated test items by predicted score.

Only the items a user rated in the test set are ranked, so there is no unseen-item problem:
the question is whether the model puts the user's liked items (rating >= threshold) above the
disliked ones. Two normalisations are reported, as the lectures do:

- normal: precision@K = hits@K / min(K, n_u), ndcg@K = DCG@K / IDCG(min(K, n_rel_u));
- strict: precision_strict@K = hits@K / K, ndcg_strict@K = DCG@K / IDCG(K), i.e. a user with
  fewer than K test items (or fewer than K liked ones) cannot reach 1.

n_u is the number of the user's test items, n_rel_u the number of relevant ones. Users without a
relevant test item are skipped and counted. Ties in the predictions follow the tie policy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuralrec.errors import ConfigError
from neuralrec.evaluation.metrics import discounts
from neuralrec.evaluation.result import ProtocolResult
from neuralrec.evaluation.ties import check_ties

TEST_ITEMS_METRICS = ("precision", "ndcg", "precision_strict", "ndcg_strict", "recall", "hit")


def rank_test_items(
    users: np.ndarray,
    ratings: np.ndarray,
    scores: np.ndarray,
    *,
    ks: Sequence[int] = (10,),
    threshold: float = 4.0,
    metrics: Sequence[str] = ("precision", "ndcg", "precision_strict", "ndcg_strict"),
    ties: str = "pessimistic",
    seed: int = 0,
    protocol: str = "test-items",
) -> ProtocolResult:
    """Per-user ranking metrics over each user's test items, ordered by ``scores``.

    ``users``, ``ratings`` and ``scores`` are parallel arrays of test pairs. Relevant means
    rating >= ``threshold``. recall@K = hits@K / n_rel_u and hit@K = [hits@K > 0] are offered too.
    """
    ties = check_ties(ties)
    bad = set(metrics) - set(TEST_ITEMS_METRICS)
    if bad:
        raise ConfigError(f"unknown test-items metric(s) {sorted(bad)}; use {TEST_ITEMS_METRICS}")
    ks = tuple(sorted({int(k) for k in ks}))
    users = np.asarray(users, np.int64)
    scores = np.asarray(scores, np.float64)
    if np.isnan(scores).any():
        raise ConfigError("the model returned NaN predictions; cannot rank")
    rel = np.asarray(ratings, np.float64) >= threshold
    if ties == "pessimistic":
        tiebreak = rel.astype(np.float64)  # among equal scores, relevant items go last
    else:
        tiebreak = np.random.default_rng(seed).random(len(users))
    order = np.lexsort((tiebreak, -scores, users))
    u_sorted, rel_sorted = users[order], rel[order]
    uniq, start, n_u = np.unique(u_sorted, return_index=True, return_counts=True)
    position = np.arange(len(order)) - np.repeat(start, n_u)  # 0-based rank within the user
    group = np.repeat(np.arange(len(uniq)), n_u)
    n_rel = np.bincount(group, weights=rel_sorted, minlength=len(uniq))
    disc = discounts(max(ks))
    ideal = np.concatenate([[0.0], np.cumsum(disc)])
    per_user: dict[str, np.ndarray] = {}
    for k in ks:
        inside = position < k
        w = rel_sorted & inside
        hits = np.bincount(group, weights=w, minlength=len(uniq))
        dcg = np.bincount(group[w], weights=disc[position[w]], minlength=len(uniq))
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = {
                "precision": hits / np.minimum(k, n_u),
                "precision_strict": hits / k,
                "ndcg": dcg / ideal[np.minimum(n_rel, k).astype(np.int64)],
                "ndcg_strict": dcg / ideal[k],
                "recall": hits / n_rel,
                "hit": (hits > 0).astype(np.float64),
            }
        for name in metrics:
            per_user[f"{name}@{k}"] = vals[name]
    keep = n_rel > 0
    return ProtocolResult(
        protocol=protocol,
        ks=ks,
        users=uniq[keep],
        per_user={key: v[keep] for key, v in per_user.items()},
        n_skipped=int((~keep).sum()),
        notes={"ties": ties, "threshold": threshold},
    )
