"""EASE: embarrassingly shallow autoencoder (Steck, "Embarrassingly Shallow Autoencoders for
Sparse Data", WWW 2019).

An item-item weight matrix B with a zero diagonal minimising ‖X − XB‖² + λ‖B‖², in closed form:
P = (XᵀX + λI)⁻¹, B = I − P·diag(1/diag(P)), i.e. B_ij = −P_ij / P_jj off the diagonal.
Scores of a user are x_u B (one matrix product per batch of users). The cost is one dense
n_items x n_items inverse: seconds up to ~20k items, so it is the cheap strong baseline every
top-N model should be compared with.

Three options beyond the formula above (set to 0 for plain EASE; defaults chosen on
validation, docs/implicit.md):

- ``dropout_l2`` ρ adds ρ·diag(XᵀX) to the diagonal, the frequency-scaled penalty of DLAE /
  EDLAE (Steck, "Autoencoders that don't overfit towards the Identity", NeurIPS 2020), which is
  the closed form of training with input dropout at rate p = ρ / (1 + ρ).
- ``user_weight`` α weights user u's squared error by (n_u / n̄)^−α (n_u the user's interactions,
  n̄ their mean), so that a few heavy users do not dominate the Gram matrix; XᵀWX replaces XᵀX.
- ``popularity_exponent`` γ multiplies the scores of item i by (c_i + 1)^γ, c_i its training
  count: γ < 0 discounts popular items at ranking time (the model is unchanged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from neuralrec.data.dataset import Dataset
from neuralrec.data.interactions import Interactions
from neuralrec.errors import ConfigError
from neuralrec.models.base import Recommender
from neuralrec.models.registry import register
from neuralrec.training.config import ModelConfig

#: beyond this many items the dense n x n solve needs more than ~3 GiB of float64
_MAX_ITEMS = 20_000


class EASEConfig(ModelConfig):
    """Hyperparameters of :class:`EASE` (defaults: docs/implicit.md, validation search)."""

    l2: float = Field(336.0, gt=0, description="λ added to the diagonal of the Gram matrix XᵀX")
    dropout_l2: float = Field(
        0.25, ge=0, description="ρ: adds ρ·diag(XᵀX) to the diagonal (DLAE's dropout penalty)"
    )
    user_weight: float = Field(
        0.25, ge=0, description="α: user u's error weighted by (n_u / mean n)^-α in the Gram matrix"
    )
    popularity_exponent: float = Field(
        -0.1, description="γ: scores of item i multiplied by (training count + 1)^γ"
    )
    implicit_threshold: float | None = Field(
        None, description="use only ratings >= this as interactions (default: all of them)"
    )


class _ItemItem(Recommender):
    """Shared parts of closed-form item-item models: X from training, scores = x_u W."""

    task: ClassVar[str] = "ranking"

    def _fit(
        self,
        train: Interactions,
        valid: Interactions | None,
        *,
        dataset: Dataset | None,
        checkpoint_dir: str | Path | None,
        quiet: bool,
    ) -> None:
        threshold = getattr(self.config, "implicit_threshold", None)
        if threshold is not None:
            if train.ratings is None:
                raise ConfigError(f"{self.name}: implicit_threshold needs rated data")
            train = train.subset(train.ratings >= threshold)
        self.X_ = train.tocsr("ones")
        self._fit_items(self.X_)

    def _fit_items(self, X: sp.csr_matrix) -> None:
        raise NotImplementedError

    def _score_rows(self, rows: sp.csr_matrix) -> torch.Tensor:
        """Scores of every item for users given as rows of X."""
        raise NotImplementedError

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        return self._score_rows(self.X_[np.asarray(users, dtype=np.int64)])

    def score_history(self, items: np.ndarray, ratings: np.ndarray | None = None) -> torch.Tensor:
        """A visitor's items as one more row of X: scored as a training user would be, no refit
        (with ``implicit_threshold``, rated items below it are left out, as in training)."""
        items = np.asarray(items, dtype=np.int64)
        threshold = getattr(self.config, "implicit_threshold", None)
        if threshold is not None and ratings is not None:
            items = items[np.asarray(ratings) >= threshold]
        idx = np.unique(items)
        row = sp.csr_matrix(
            (np.ones(len(idx), dtype=np.float32), idx, [0, len(idx)]), shape=(1, self.n_items)
        )
        return self._score_rows(row)[0]


@register
class EASE(_ItemItem):
    """Closed-form linear item-item autoencoder with a zero-diagonal constraint."""

    name = "ease"
    Config = EASEConfig

    def _fit_items(self, X: sp.csr_matrix) -> None:
        n = X.shape[1]
        if n > _MAX_ITEMS:
            raise ConfigError(
                f"ease inverts a dense {n} x {n} matrix; above {_MAX_ITEMS} items use item-knn "
                "or filter rare items (Interactions.filter_min_counts)"
            )
        cfg = self.config
        if cfg.user_weight:
            n_u = np.asarray(X.sum(axis=1)).ravel()
            w = (np.maximum(n_u, 1.0) / n_u[n_u > 0].mean()) ** -cfg.user_weight
            gram_sp = X.T @ sp.diags(w) @ X
        else:
            gram_sp = X.T @ X
        gram = torch.from_numpy(gram_sp.toarray().astype(np.float64))
        gram.diagonal().mul_(1.0 + cfg.dropout_l2).add_(cfg.l2)
        # Cholesky: the regularised Gram matrix is symmetric positive definite
        p = torch.cholesky_inverse(torch.linalg.cholesky(gram))
        b = p / (-p.diagonal()).unsqueeze(0)
        b.diagonal().zero_()
        self.B_ = b.float()
        self.score_scale_ = _popularity_scale(X, cfg.popularity_exponent)

    def _score_rows(self, rows: sp.csr_matrix) -> torch.Tensor:
        scores = _sparse_rows(rows) @ self.B_
        return scores if self.score_scale_ is None else scores * self.score_scale_

    def item_similarities(self, items: np.ndarray) -> torch.Tensor:
        # B_ij: how much item i predicts item j; symmetrised so "similar to i" reads both ways
        idx = torch.from_numpy(np.asarray(items, dtype=np.int64))
        return 0.5 * (self.B_[idx] + self.B_[:, idx].T)

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        meta = {"popularity_exponent": self.config.popularity_exponent}
        return {"B": self.B_, **_csr_tensors(self.X_)}, meta

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.B_ = tensors["B"]
        self.X_ = _csr_from(tensors, (self.n_users, self.n_items))
        # artifacts saved before the option existed score without it, whatever the default now
        self.score_scale_ = _popularity_scale(self.X_, meta.get("popularity_exponent", 0.0))


def _popularity_scale(X: sp.csr_matrix, exponent: float) -> torch.Tensor | None:
    """(c_i + 1)^γ per item from the training matrix, or None when γ = 0."""
    if not exponent:
        return None
    counts = np.asarray(X.sum(axis=0), dtype=np.float64).ravel()
    return torch.from_numpy((counts + 1.0) ** exponent).float()


def _sparse_rows(rows: sp.csr_matrix) -> torch.Tensor:
    """A users x items CSR block as a dense float32 tensor (blocks are a few thousand rows)."""
    return torch.from_numpy(rows.toarray().astype(np.float32, copy=False))


def _csr_tensors(X: sp.csr_matrix, prefix: str = "X") -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.indptr": torch.from_numpy(X.indptr.astype(np.int64)),
        f"{prefix}.indices": torch.from_numpy(X.indices.astype(np.int64)),
        f"{prefix}.data": torch.from_numpy(X.data.astype(np.float32)),
    }


def _csr_from(
    tensors: dict[str, torch.Tensor], shape: tuple[int, int], prefix: str = "X"
) -> sp.csr_matrix:
    return sp.csr_matrix(
        (
            tensors[f"{prefix}.data"].numpy(),
            tensors[f"{prefix}.indices"].numpy(),
            tensors[f"{prefix}.indptr"].numpy(),
        ),
        shape=shape,
    )
