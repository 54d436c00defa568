"""Full-ranking evaluation: every item the user has not interacted with in training is a candidate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

Scorer = Callable[[np.ndarray], torch.Tensor]
RANKING_METRICS = ("precision", "recall", "ndcg", "hit", "map", "mrr")


@dataclass
class RankingResult:
    """Per-user metric values of one ranking protocol, and their means."""

    protocol: str
    ks: tuple[int, ...]
    users: np.ndarray
    per_user: dict[str, np.ndarray]
    skipped_users: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Mean of every metric over evaluated users, e.g. ``{"ndcg@10": 0.31, ...}``."""
        out = {k: float(v.mean()) if len(v) else float("nan") for k, v in self.per_user.items()}
        out.update(self.extra)
        return out


def full_ranking(
    scorer: Scorer,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    *,
    ks: Sequence[int] = (10,),
    metrics: Sequence[str] = RANKING_METRICS,
    batch_size: int = 1024,
) -> RankingResult:
    """Rank all items not seen in ``train`` for each user with a test item; binary relevance."""
    ks = tuple(sorted(set(int(k) for k in ks)))
    kmax = max(ks)
    n_items = train.shape[1]
    test = test.tocsr()
    n_rel_all = np.diff(test.indptr)
    users = np.flatnonzero(n_rel_all > 0)
    skipped = int((np.diff(train.indptr) > 0).sum() - len(users)) if train.shape[0] else 0
    per_user: dict[str, list[np.ndarray]] = {f"{m}@{k}": [] for m in metrics for k in ks}
    discount = 1.0 / np.log2(np.arange(2, kmax + 2))
    for start in range(0, len(users), batch_size):
        block = users[start : start + batch_size]
        scores = scorer(block).float().clone()
        seen = train[block]
        rows = np.repeat(np.arange(len(block)), np.diff(seen.indptr))
        scores[torch.from_numpy(rows), torch.from_numpy(seen.indices.astype(np.int64))] = -torch.inf
        # a copy: scipy 1.17's fancy indexing fails ("cannot set WRITEABLE flag") on arrays whose
        # memory torch owns
        top = torch.topk(scores, min(kmax, n_items), dim=1).indices.numpy().copy()
        rel = test[block]
        hits = (
            np.asarray(rel[np.arange(len(block))[:, None], top].todense()) > 0
            if rel.nnz
            else np.zeros(top.shape, bool)
        )
        n_rel = n_rel_all[block]
        for k in ks:
            h = hits[:, :k]
            nh = h.sum(axis=1)
            if "precision" in metrics:
                per_user[f"precision@{k}"].append(nh / k)
            if "recall" in metrics:
                per_user[f"recall@{k}"].append(nh / n_rel)
            if "hit" in metrics:
                per_user[f"hit@{k}"].append((nh > 0).astype(np.float64))
            if "ndcg" in metrics:
                dcg = (h * discount[: h.shape[1]]).sum(axis=1)
                ideal = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
                per_user[f"ndcg@{k}"].append(dcg / ideal)
            if "map" in metrics:
                prec_at = np.cumsum(h, axis=1) / np.arange(1, h.shape[1] + 1)
                per_user[f"map@{k}"].append((prec_at * h).sum(axis=1) / np.minimum(n_rel, k))
            if "mrr" in metrics:
                first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, np.inf)
                per_user[f"mrr@{k}"].append(1.0 / first)
    return RankingResult(
        protocol="full",
        ks=ks,
        users=users,
        per_user={k: np.concatenate(v) if v else np.zeros(0) for k, v in per_user.items()},
        skipped_users=max(skipped, 0),
    )
