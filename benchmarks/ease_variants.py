"""EASE variants tried against the defaults on validation (issue 5's EASE target; docs/implicit.md).

MovieLens 100K, ``user-random:0.1`` with ``valid_fraction=0.1`` (80/10/10), seeds 0-2: each
variant solves for B on the training part and is scored by full-ranking NDCG@10 on the
validation part (the test part is never scored). Every variant starts from the library's
defaults (λ 336, ρ 0.25, α 0.25, γ −0.1) and changes one thing:

- ``free_diagonal``: DLAE (Steck 2020) without EASE's zero diagonal, B = I − P·Λ;
- ``column_scale`` β: columns of X scaled by (count + 1)^−β before the solve, B mapped back;
- ``rating_input`` κ: the *input* rows weighted by rating, x_ui = 1 + κ(r_ui − 3), while the
  target stays binary; the zero-diagonal solve for separate input and target is
  B = P(AᵀX − diagMat(μ)), μ_j = (P AᵀX)_jj / P_jj.

    PYTHONPATH=src python benchmarks/ease_variants.py
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from _common import print_table, write_results
from neuralrec.data import load_dataset
from neuralrec.data.splits import split
from neuralrec.evaluation import evaluate
from neuralrec.models import create

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "free_diagonal": {"zero_diagonal": False},
    "free_diagonal ρ 0.5": {"zero_diagonal": False, "rho": 0.5},
    "free_diagonal ρ 1, λ 200": {"zero_diagonal": False, "rho": 1.0, "l2": 200.0},
    "column_scale 0.1": {"beta": 0.1},
    "column_scale 0.25": {"beta": 0.25},
    "column_scale -0.1": {"beta": -0.1},
    "rating_input 0.1": {"kappa": 0.1},
    "rating_input 0.2": {"kappa": 0.2},
    "rating_input 0.3": {"kappa": 0.3},
    "rating_input -0.1": {"kappa": -0.1},
}


def solve(
    X: sp.csr_matrix,
    R: sp.csr_matrix,
    l2: float = 336.0,
    rho: float = 0.25,
    alpha: float = 0.25,
    zero_diagonal: bool = True,
    beta: float = 0.0,
    kappa: float = 0.0,
) -> tuple[torch.Tensor, sp.csr_matrix]:
    """B and the input rows it is applied to, for one variant (X binary, R its ratings)."""
    n_u = np.asarray(X.sum(axis=1)).ravel()
    weights = sp.diags((np.maximum(n_u, 1.0) / n_u[n_u > 0].mean()) ** -alpha)
    scale = (np.asarray(X.sum(axis=0)).ravel() + 1.0) ** -beta
    target = X @ sp.diags(scale)
    weighted = R.copy()
    weighted.data = 1.0 + kappa * (R.data - 3.0)
    inputs = weighted @ sp.diags(scale)
    lam = l2 * float(np.mean(scale)) ** 2  # λ on the scale of the scaled columns
    gram = torch.from_numpy((inputs.T @ weights @ inputs).toarray())
    diag = gram.diagonal().clone()
    gram.diagonal().mul_(1.0 + rho).add_(lam)
    p = torch.cholesky_inverse(torch.linalg.cholesky(gram))
    if zero_diagonal:
        pc = p @ torch.from_numpy((inputs.T @ weights @ target).toarray())
        b = pc - p * (pc.diagonal() / p.diagonal()).unsqueeze(0)
        b.diagonal().zero_()
    else:
        b = torch.eye(len(diag), dtype=torch.float64) - p * (rho * diag + lam).unsqueeze(0)
    # scores of the scaled target, mapped back to the original columns
    return b * torch.from_numpy(1.0 / scale).unsqueeze(0), sp.csr_matrix(inputs)


def main() -> None:
    data = load_dataset("ml-100k").interactions
    scores: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for seed in (0, 1, 2):
        parts = split(data, "user-random:0.1", seed=seed, valid_fraction=0.1)
        valid = type(parts)(parts.train, parts.valid, None, spec=parts.spec, seed=parts.seed)
        model = create("ease").fit(parts.train)
        X = model.X_.astype(np.float64)
        R = parts.train.tocsr("ratings").astype(np.float64)
        gamma = model.score_scale_  # the default popularity exponent's factor, kept throughout
        for name, params in VARIANTS.items():
            b, inputs = solve(X, R, **params)
            bf = b.float()

            def score_users(
                users: np.ndarray, inputs: Any = inputs, bf: Any = bf, gamma: Any = gamma
            ) -> Any:
                rows = torch.from_numpy(inputs[np.asarray(users)].toarray()).float()
                return (rows @ bf) * gamma

            model.score_users = score_users
            ndcg = evaluate(model, valid, metrics=["ndcg"]).value("ndcg", 10, "full")
            scores[name].append(round(float(ndcg), 5))
    rows = [
        {"variant": name, "valid ndcg@10": float(np.mean(v)), "seeds 0/1/2": str(v)}
        for name, v in scores.items()
    ]
    print_table(rows, "EASE variants, validation NDCG@10, ML-100K user-random:0.1 80/10/10")
    write_results("ease_variants", {"validation": {"variants": VARIANTS, "scores": scores}})


if __name__ == "__main__":
    main()
