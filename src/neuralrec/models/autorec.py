"""AutoRec (Sedhain, Menon, Sanner and Xie, "AutoRec: Autoencoders Meet Collaborative
Filtering", WWW 2015).

One hidden layer reconstructs a partially observed rating vector::

    x̂ = g(W · f(V · x + b) + c)

with ``f = hidden_activation`` and ``g = output_activation``. (The paper writes the same model
as h(r) = f(W · g(V r + μ) + b), so its f is our output activation and its g our hidden one:
its best I-AutoRec, "f = Identity, g = Sigmoid" (RMSE 0.831 on ML-1M), is
``hidden_activation="sigmoid", output_activation="identity"``, the default.) The objective is
the paper's: squared error over observed entries only, plus λ/2 (‖V‖² + ‖W‖²).

``autorec-i`` reconstructs item vectors (an item's ratings by all users) and predicts (u, i)
as entry u of item i's reconstruction; ``autorec-u`` reconstructs user vectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import nn

from neuralrec.models._rating_ae import RatingAutoencoder, RatingAutoencoderConfig
from neuralrec.models._rows import (
    ActivationName,
    Orientation,
    RatingOutput,
    RowBatch,
    SparseInputLinear,
    activation,
    xavier_linear,
)
from neuralrec.models.registry import register
from neuralrec.training.batches import Batch


class AutoRecConfig(RatingAutoencoderConfig):
    """Hyperparameters of AutoRec. Defaults: chosen on a validation split, docs/autoencoders.md."""

    hidden: int = Field(500, ge=1, description="hidden units k (the paper uses 500)")
    hidden_activation: ActivationName = Field("sigmoid", description="f, on the hidden layer")
    output_activation: ActivationName = Field(
        "identity", description="g, on the output layer (bounded ones span the rating scale)"
    )
    l2: float = Field(1.0, ge=0, description="λ in the paper's λ/2 (‖V‖² + ‖W‖²)")
    input_dropout: float = Field(
        0.0, ge=0, lt=1, description="share of observed inputs hidden during training (denoising)"
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the hidden layer")
    epochs: int = 60
    batch_size: int = 256
    optimizer: str = "adam"
    lr: float = 3e-3
    patience: int = 5


class AutoRecModule(nn.Module):
    """Encoder V, b and decoder W, c over vectors of length ``n_cols``."""

    def __init__(
        self,
        n_cols: int,
        hidden: int,
        hidden_activation: str,
        output_activation: str,
        low: float,
        high: float,
        mu: float,
        input_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_dropout = nn.Dropout(input_dropout)
        self.dropout = nn.Dropout(dropout)
        self.encoder = SparseInputLinear(n_cols, hidden)
        self.decoder = xavier_linear(hidden, n_cols)
        self.hidden_activation = hidden_activation
        self.output = RatingOutput(output_activation, low, high)
        # start every reconstructed entry at the mean rating rather than at g(0)
        nn.init.constant_(self.decoder.bias, float(self.output.inverse(mu)))

    def penultimate(self, x: torch.Tensor | RowBatch) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            x = self.input_dropout(x)
        return self.dropout(activation(self.hidden_activation)(self.encoder(x)))

    def last_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder.weight, self.decoder.bias

    def forward(self, x: torch.Tensor | RowBatch) -> torch.Tensor:
        return self.output(self.decoder(self.penultimate(x)))

    def weight_norm(self) -> torch.Tensor:
        """‖V‖² + ‖W‖² (biases are not regularised, as in the paper)."""
        return self.encoder.weight.square().sum() + self.decoder.weight.square().sum()


class _AutoRec(RatingAutoencoder):
    Config = AutoRecConfig
    by: ClassVar[Orientation] = "item"

    @property
    def orientation(self) -> Orientation:
        return self.by

    def _build_module(self, meta: Mapping[str, Any]) -> nn.Module:
        cfg = self.config
        return AutoRecModule(
            meta["n_cols"],
            cfg.hidden,
            cfg.hidden_activation,
            cfg.output_activation,
            meta["low"],
            meta["high"],
            meta["mu"],
            cfg.input_dropout,
            cfg.dropout,
        )

    def _loss(self, batch: Batch) -> torch.Tensor:
        """The paper's objective, scaled to a per-rating mean so one lr suits any dataset.

        A batch holding a share s of the rows contributes its observed squared errors plus
        s · λ/2 (‖V‖² + ‖W‖²); summed over an epoch this is exactly the paper's objective.
        """
        (rows,) = batch
        self._z = None  # the weights are about to change
        # dense input: the backward pass of embedding_bag (sort-based) costs more than a matmul
        out = self.module_(self.rows_.dense(rows))
        share = len(rows) / self.trained_rows_
        reg = share * self.config.l2 / 2 * self.module_.weight_norm()
        return (self._observed_sse(out, rows) + reg) / (len(rows) * self.entries_per_row_)


@register
class IAutoRec(_AutoRec):
    """I-AutoRec: reconstructs each item's vector of ratings by users (the paper's best)."""

    name = "autorec-i"
    by = "item"


@register
class UAutoRec(_AutoRec):
    """U-AutoRec: reconstructs each user's vector of ratings of items."""

    name = "autorec-u"
    by = "user"
