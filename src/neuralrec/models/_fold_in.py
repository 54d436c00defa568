"""Fold-in of a visitor for models trained on user rows: fit a new row, everything else fixed.

A visitor known by some items (and maybe ratings) gets the user row that minimises the model's
own training objective on them, loss + λ‖p‖² per positive, with the item side held fixed. For
the implicit losses the loss is taken in expectation over the negative sampler's distribution
(every item the visitor did not touch, uniform or ∝ popularity^α; ``negatives`` draws per
positive), so the answer does not depend on a random draw; for mse it is the squared error on
the ratings. L-BFGS, from the mean training user row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from neuralrec.utils.numeric import flush_denormals

#: L-BFGS iterations: the objective is one row's, so it converges in a few (tests/test_ncf.py)
MAX_ITER = 20


def fit_row(
    scores_of: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    items: torch.Tensor,
    *,
    loss: str,
    l2: float,
    negatives: int = 1,
    neg_weights: torch.Tensor | None = None,
    ratings: torch.Tensor | None = None,
    max_iter: int = MAX_ITER,
) -> torch.Tensor:
    """The row minimising the training objective for positives ``items``.

    ``scores_of(row)`` gives every item's score for a (1, d) row; ``neg_weights`` is one
    probability per item (zero on the visitor's own) for bce/bpr; ``ratings`` the targets of
    mse. Only the row gets a gradient: the model's parameters and their ``.grad`` are left as
    they were.
    """
    user = start.detach().clone().reshape(1, -1).requires_grad_(True)

    def objective() -> torch.Tensor:
        s = scores_of(user)
        sp = s[items]
        if loss == "mse":
            obj = (sp - ratings).square().mean()
        elif loss == "bce":  # pointwise_bce's mean over 1 + k logits per positive
            expected_neg = negatives * (neg_weights * F.softplus(s)).sum()
            obj = (F.softplus(-sp).mean() + expected_neg) / (1 + negatives)
        else:  # bpr: every (positive, negative) pair, weighted by the negative's probability
            obj = (F.softplus(s.unsqueeze(0) - sp.unsqueeze(1)) * neg_weights).sum(1).mean()
        return obj + l2 * user.square().sum()

    opt = torch.optim.LBFGS([user], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        with torch.enable_grad():
            obj = objective()
            # only the row's gradient: backward() would also fill the model's .grad
            (user.grad,) = torch.autograd.grad(obj, [user])
        return obj.detach()

    with flush_denormals():  # saturated softplus gradients go subnormal: 6x slower without
        opt.step(closure)
    return user.detach()[0]


def implicit_visitor(
    model: Any, items: np.ndarray, ratings: np.ndarray | None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Positives and negative distribution of a visitor of ``model`` (an implicit-loss model:
    ``implicit_threshold``, ``neg_sampling``, ``neg_alpha`` in its config), on its device; None
    when there is nothing to fit (no positive, or no item left to be a negative)."""
    cfg = model.config
    idx, r = last_rating_per_item(items, ratings, 0.0)
    pos = idx
    if cfg.implicit_threshold is not None and ratings is not None:
        pos = idx[r >= cfg.implicit_threshold]
    weights = np.ones(model.n_items)
    if cfg.neg_sampling == "popularity":
        counts = model.item_popularity_.astype(np.float64)
        weights = counts**cfg.neg_alpha * (counts > 0)
    weights[idx] = 0.0
    if len(pos) == 0 or weights.sum() <= 0:
        return None
    dev = model.device
    return torch.from_numpy(pos).to(dev), torch.from_numpy(weights / weights.sum()).float().to(dev)


def last_rating_per_item(
    items: np.ndarray, ratings: np.ndarray | None, default: float
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct items and one rating each (the last given; ``default`` without ratings)."""
    idx = np.unique(np.asarray(items, dtype=np.int64))
    if ratings is None:
        return idx, np.full(len(idx), default, dtype=np.float32)
    last = {int(i): float(v) for i, v in zip(items, ratings, strict=True)}
    return idx, np.array([last[int(i)] for i in idx], dtype=np.float32)


def mean_user_row(model: Any, table: torch.Tensor) -> torch.Tensor:
    """The mean row of the users seen in training: where a visitor's fit starts."""
    known = torch.from_numpy(model.user_counts_ > 0).to(table.device)
    return table[known].mean(0) if bool(known.any()) else torch.zeros_like(table[0])
