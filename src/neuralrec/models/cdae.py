"""CDAE (Wu, DuBois, Zheng and Ester, "Collaborative Denoising Auto-Encoders for Top-N
Recommender Systems", WSDM 2016).

For implicit feedback: a user's binary interaction vector y_u is corrupted (each observed entry
dropped with probability q, the rest scaled by 1/(1-q)), encoded together with a per-user input
node V_u, and the whole vector is reconstructed::

    z_u = h(Wᵀ ỹ_u + V_u + b),    ŷ_u = σ(W'ᵀ z_u + b')

The loss covers every item (binary cross-entropy, or squared error), or the positives plus
``negatives`` sampled non-interacted items per positive. Items are ranked by ŷ_u.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from neuralrec.data.dataset import Dataset
from neuralrec.data.interactions import Interactions
from neuralrec.models._rows import (
    ActivationName,
    RowBatch,
    RowMatrix,
    SparseInputLinear,
    activation,
    xavier_linear,
)
from neuralrec.models.registry import register
from neuralrec.models.torch_base import TorchRecommender
from neuralrec.training.batches import Batch, BatchSource, TensorBatches
from neuralrec.training.config import TrainConfig


class CDAEConfig(TrainConfig):
    """Hyperparameters of CDAE. Defaults: chosen on a validation split, docs/autoencoders.md."""

    hidden: int = Field(200, ge=1, description="hidden units K")
    corruption: float = Field(0.7, ge=0, lt=1, description="dropout rate q on the input vector")
    hidden_activation: ActivationName = Field("sigmoid", description="h, on the hidden layer")
    loss: Literal["bce", "mse"] = Field("bce", description="per-entry loss on σ(output)")
    negatives: float | None = Field(
        None, gt=0, description="sampled negatives per positive; None: every item counts"
    )
    user_node: bool = Field(True, description="add the per-user input node V_u")
    output_bias: Literal["zero", "popularity"] = Field(
        "zero",
        description="start b' at zero, or at each item's training log-odds (fewer epochs; "
        "avoids the popularity plateau a small sigmoid layer can stall on)",
    )
    epochs: int = 200
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-3
    monitor: str = "ndcg@10"
    patience: int = 10


class CDAEModule(nn.Module):
    """Encoder W (+ user node V) and decoder W' over item vectors."""

    def __init__(
        self, n_users: int, n_items: int, hidden: int, hidden_activation: str, corruption: float
    ) -> None:
        super().__init__()
        self.encoder = SparseInputLinear(n_items, hidden)
        # sparse: a batch updates only its users' rows (the trainer's row-sparse optimizer)
        self.user_node = nn.Embedding(n_users, hidden, sparse=True)
        nn.init.normal_(self.user_node.weight, 0.0, 0.01)
        self.decoder = xavier_linear(hidden, n_items)
        self.corrupt = nn.Dropout(corruption)
        self.hidden_activation = hidden_activation

    def forward(self, x: torch.Tensor | RowBatch, users: torch.Tensor | None) -> torch.Tensor:
        """Logits of every item; ``users=None`` leaves the user node out (a visitor)."""
        if isinstance(x, torch.Tensor):
            x = self.corrupt(x)  # active in training only
        pre = self.encoder(x)
        if users is not None:
            pre = pre + self.user_node(users)
        return self.decoder(activation(self.hidden_activation)(pre))


@register
class CDAE(TorchRecommender):
    """Collaborative denoising autoencoder for top-N recommendation from implicit feedback."""

    name = "cdae"
    Config = CDAEConfig
    task: ClassVar[str] = "ranking"

    def _build_module(self, meta: Mapping[str, Any]) -> nn.Module:
        cfg = self.config
        return CDAEModule(
            meta["n_users"], meta["n_items"], cfg.hidden, cfg.hidden_activation, cfg.corruption
        )

    def _prepare(self, train: Interactions, dataset: Dataset | None) -> None:
        # every interaction is a positive, whatever its rating (implicit feedback)
        self.rows_ = RowMatrix.from_csr(self.seen_, "user", self.device)
        if self.config.output_bias == "popularity":
            # share of the trained users who have each item, kept inside (0, 1) for the logit
            n = max(len(self.rows_.nonempty()), 1)
            freq = np.bincount(self.seen_.indices, minlength=self.seen_.shape[1]) / n
            freq = np.clip(freq, 0.5 / n, 1 - 0.5 / n)
            with torch.no_grad():
                bias = torch.as_tensor(np.log(freq) - np.log1p(-freq), dtype=torch.float32)
                self.module_.decoder.bias.copy_(bias)

    def _batches(self, train: Interactions) -> BatchSource:
        return TensorBatches([self.rows_.nonempty()], batch_size=self.config.batch_size)

    def _loss(self, batch: Batch) -> torch.Tensor:
        """Loss summed over the reconstructed entries, averaged over the batch's users."""
        (users,) = batch
        cfg = self.config
        target = self.rows_.dense(users)
        logits = self.module_(target, users if cfg.user_node else None)
        if cfg.loss == "bce":
            per_entry = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        else:
            per_entry = (torch.sigmoid(logits) - target).square()
        if cfg.negatives is not None:
            per_entry = per_entry * self._sampled_mask(target)
        return per_entry.sum() / len(users)

    def _sampled_mask(self, target: torch.Tensor) -> torch.Tensor:
        """Positives plus about ``negatives`` uniformly drawn non-interacted items per positive.

        Drawn from torch's global generator, which the trainer seeds per (seed, epoch).
        """
        pos = target.sum(1, keepdim=True)
        rate = (self.config.negatives * pos / (target.shape[1] - pos).clamp_min(1)).clamp(max=1)
        neg = torch.rand(target.shape, device=target.device) < rate
        return torch.maximum(target, neg.float())

    @torch.no_grad()
    def score_users(self, users: np.ndarray) -> torch.Tensor:
        u = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self.device)
        node = u if self.config.user_node else None
        return torch.sigmoid(self.module_(self.rows_.batch(u), node)).float().cpu()

    @torch.no_grad()
    def score_history(self, items: np.ndarray, ratings: np.ndarray | None = None) -> torch.Tensor:
        """A visitor's interactions go through the network without a user node (no retraining)."""
        idx = torch.as_tensor(np.asarray(items, dtype=np.int64), device=self.device)
        x = torch.zeros(1, self.n_items, device=self.device)
        x[0, idx] = 1.0
        return torch.sigmoid(self.module_(x, None))[0].float().cpu()

    def item_vectors(self) -> np.ndarray:
        """Each item's decoder weights W'_i."""
        return self.module_.decoder.weight.detach().cpu().numpy()

    def _load_extra(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.rows_ = RowMatrix.from_csr(self.seen_, "user", self.device)
