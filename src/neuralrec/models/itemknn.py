"""ItemKNN: item-based collaborative filtering with cosine similarity (Sarwar et al.,
"Item-based collaborative filtering recommendation algorithms", WWW 2001; Deshpande & Karypis,
"Item-based top-N recommendation algorithms", TOIS 2004), as RecBole's ItemKNN computes it.

s_ij = x_iᵀx_j / (‖x_i‖‖x_j‖ + shrink) over the users' interaction columns; for each target item
j only its ``k`` most similar items i keep W_ij; the score of j for user u is Σ_i x_ui W_ij.
The similarity is computed a block of target items at a time, so memory stays at
n_items x block, and W is stored sparse (n_items x k non-zeros).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from neuralrec.models.ease import _csr_from, _csr_tensors, _ItemItem
from neuralrec.models.registry import register
from neuralrec.training.config import ModelConfig

#: target items per similarity block (n_items x block float32 scores at a time)
_BLOCK = 1024


class ItemKNNConfig(ModelConfig):
    """Hyperparameters of :class:`ItemKNN` (defaults: docs/implicit.md, validation search)."""

    k: int = Field(300, ge=1, description="neighbours kept per target item")
    shrink: float = Field(
        10.0, ge=0, description="added to the cosine denominator (damps rare items)"
    )
    implicit_threshold: float | None = Field(
        None, description="use only ratings >= this as interactions (default: all of them)"
    )


@register
class ItemKNN(_ItemItem):
    """Top-k cosine item-item neighbourhood model."""

    name = "item-knn"
    Config = ItemKNNConfig

    def _fit_items(self, X: sp.csr_matrix) -> None:
        cfg = self.config
        n = X.shape[1]
        self._Xc = Xc = X.tocsc().astype(np.float32)
        norms = np.sqrt(np.asarray(Xc.multiply(Xc).sum(axis=0)).ravel())
        self.norms_ = norms.astype(np.float32)
        k = min(cfg.k, max(n - 1, 1))
        rows, cols, vals = [], [], []
        for start in range(0, n, _BLOCK):
            stop = min(start + _BLOCK, n)
            sims = self._cosine(Xc, np.arange(start, stop))  # (block, n): row = target item j
            val, idx = torch.topk(sims, k, dim=1)
            keep = val > 0  # zero similarity means no co-occurrence: not a neighbour
            j = torch.arange(start, stop).unsqueeze(1).expand_as(idx)
            rows.append(idx[keep].numpy())
            cols.append(j[keep].numpy())
            vals.append(val[keep].numpy())
        self.W_ = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )

    def _cosine(self, Xc: sp.csc_matrix, items: np.ndarray) -> torch.Tensor:
        """Shrunk cosine of each item in ``items`` to every item, own entry zeroed."""
        co = (Xc[:, items].T @ Xc).toarray().astype(np.float32)
        denom = self.norms_[items][:, None] * self.norms_[None, :] + self.config.shrink + 1e-6
        sims = torch.from_numpy(co / denom)
        sims[torch.arange(len(items)), torch.from_numpy(items)] = 0.0
        return sims

    def _score_rows(self, rows: sp.csr_matrix) -> torch.Tensor:
        scores = (rows @ self.W_).toarray()
        return torch.from_numpy(scores.astype(np.float32, copy=False))

    def item_similarities(self, items: np.ndarray) -> torch.Tensor:
        if self._Xc is None:  # once, not per request of a server
            self._Xc = self.X_.tocsc().astype(np.float32)
        return self._cosine(self._Xc, np.asarray(items, np.int64))

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {**_csr_tensors(self.X_), **_csr_tensors(self.W_.tocsr(), "W")}
        tensors["norms"] = torch.from_numpy(self.norms_)
        return tensors, {}

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.X_ = _csr_from(tensors, (self.n_users, self.n_items))
        self.W_ = _csr_from(tensors, (self.n_items, self.n_items), "W")
        self.norms_ = tensors["norms"].numpy()
        self._Xc = None  # built from X_ at the first similarity query
