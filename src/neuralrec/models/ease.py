"""EASE: embarrassingly shallow autoencoder (Steck, "Embarrassingly Shallow Autoencoders for
Sparse Data", WWW 2019).

An item-item weight matrix B with a zero diagonal minimising ‖X − XB‖² + λ‖B‖², in closed form:
P = (XᵀX + λI)⁻¹, B = I − P·diag(1/diag(P)), i.e. B_ij = −P_ij / P_jj off the diagonal.
Scores of a user are x_u B (one matrix product per batch of users). The cost is one dense
n_items x n_items inverse: seconds up to ~20k items, so it is the cheap strong baseline every
top-N model should be compared with.
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
    """Hyperparameters of :class:`EASE` (default λ: docs/implicit.md, validation search)."""

    l2: float = Field(300.0, gt=0, description="λ added to the diagonal of the Gram matrix XᵀX")
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

    def _user_rows(self, users: np.ndarray) -> sp.csr_matrix:
        return self.X_[np.asarray(users, dtype=np.int64)]


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
        gram = torch.from_numpy((X.T @ X).toarray().astype(np.float64))
        gram.diagonal().add_(self.config.l2)
        # Cholesky: the regularised Gram matrix is symmetric positive definite
        p = torch.cholesky_inverse(torch.linalg.cholesky(gram))
        b = p / (-p.diagonal()).unsqueeze(0)
        b.diagonal().zero_()
        self.B_ = b.float()

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        rows = self._user_rows(users)
        return _sparse_rows(rows) @ self.B_

    def item_similarities(self, items: np.ndarray) -> torch.Tensor:
        # B_ij: how much item i predicts item j; symmetrised so "similar to i" reads both ways
        idx = torch.from_numpy(np.asarray(items, dtype=np.int64))
        return 0.5 * (self.B_[idx] + self.B_[:, idx].T)

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {"B": self.B_, **_csr_tensors(self.X_)}, {}

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.B_ = tensors["B"]
        self.X_ = _csr_from(tensors, (self.n_users, self.n_items))


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
