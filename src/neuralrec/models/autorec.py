"""AutoRec (Sedhain, Menon, Sanner and Xie, "AutoRec: Autoencoders Meet Collaborative
Filtering", WWW 2015).

One hidden layer reconstructs a partially observed rating vector::

    x̂ = g(W · f(V · x + b) + c)

with ``f = hidden_activation`` and ``g = output_activation``. (The paper writes the same model
as h(r) = f(W · g(V r + μ) + b), so its f is our output activation and its g our hidden one:
its best I-AutoRec, "f = Identity, g = Sigmoid" (RMSE 0.831 on ML-1M), is
``hidden_activation="sigmoid", output_activation="identity"``. The default output is a sigmoid
scaled to the rating range, which did as well on validation and keeps predictions in range.) The objective is
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

from neuralrec.data.interactions import Interactions
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
from neuralrec.models._sparse_ops import observed_linear
from neuralrec.models.registry import register
from neuralrec.training.batches import Batch
from neuralrec.training.config import TrainConfig


class AutoRecConfig(RatingAutoencoderConfig):
    """Hyperparameters of AutoRec. Defaults: chosen on a validation split, docs/autoencoders.md."""

    hidden: int = Field(500, ge=1, description="hidden units k (the paper uses 500)")
    hidden_activation: ActivationName = Field("sigmoid", description="f, on the hidden layer")
    output_activation: ActivationName = Field(
        "sigmoid", description="g, on the output layer (bounded ones span the rating scale)"
    )
    l2: float = Field(100.0, ge=0, description="λ in the paper's λ/2 (‖V‖² + ‖W‖²)")
    input_dropout: float = Field(
        0.5, ge=0, lt=1, description="share of observed inputs hidden during training (denoising)"
    )
    hidden_weight: float = Field(
        3.0, ge=0, description="loss weight of the hidden inputs' errors (α of Strub et al. 2016)"
    )
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout on the hidden layer")
    epochs: int = 50
    batch_size: int = 256
    optimizer: str = "adam"
    lr: float = 1e-3
    patience: int = 6


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
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.encoder = SparseInputLinear(n_cols, hidden)
        self.decoder = xavier_linear(hidden, n_cols)
        self.hidden_activation = hidden_activation
        self.output = RatingOutput(output_activation, low, high)
        # start every reconstructed entry at the mean rating rather than at g(0)
        nn.init.constant_(self.decoder.bias, float(self.output.inverse(mu)))

    def penultimate(self, x: torch.Tensor | RowBatch) -> torch.Tensor:
        return self.dropout(activation(self.hidden_activation)(self.encoder(x)))

    def last_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder.weight, self.decoder.bias

    def forward(self, x: torch.Tensor | RowBatch) -> torch.Tensor:
        return self.output(self.decoder(self.penultimate(x)))


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
            cfg.dropout,
        )

    def _train_config(self, train: Interactions) -> TrainConfig:
        """The paper's λ/2 (‖V‖² + ‖W‖²) as the optimizer's (coupled L2) weight decay.

        :meth:`_loss` is the paper's objective divided by the number of ratings, so the
        penalty's gradient is (λ / n_ratings) · W at every step: exactly a weight decay of
        λ / n_ratings on V and W (biases excluded, as in the paper), which the fused optimizer
        applies for free. (With ``optimizer="adamw"`` the decay is decoupled instead.)
        """
        cfg = self.config
        return cfg.replace(weight_decay=cfg.weight_decay + cfg.l2 / max(self.rows_.nnz, 1))

    def _loss(self, batch: Batch) -> torch.Tensor:
        """Squared error over the observed entries, per rating (the penalty: see above).

        With ``input_dropout`` some observed inputs are hidden from the encoder (the kept ones
        scaled up), and the errors on the hidden ones weigh ``hidden_weight``: the denoising
        loss of Strub, Gaudel and Mary (2016), which trains the model on the test situation, a
        rating it cannot see.
        """
        (rows,) = batch
        cfg = self.config
        self._z = None  # the weights are about to change
        m = self.module_
        ratings = self.rows_.batch(rows)
        vals = ratings.values
        x, weight = ratings, None
        if cfg.input_dropout:
            # torch's global generator: the trainer seeds it per (seed, epoch)
            hidden = torch.rand(len(vals), device=vals.device) < cfg.input_dropout
            x = ratings.with_values(torch.where(hidden, 0.0, vals / (1 - cfg.input_dropout)))
            weight = torch.where(hidden, cfg.hidden_weight, 1.0)
        # the output only at the observed entries: all the loss needs (sparse forward/backward)
        pre = observed_linear(
            m.penultimate(x), m.decoder.weight, m.decoder.bias, ratings.crow, ratings.cols
        )
        err = (m.output(pre) - vals).square()
        sse = (err if weight is None else err * weight).sum()
        # a batch's share of the epoch's sum, per rating: the mean over an epoch
        return sse / (len(rows) * self.entries_per_row_)


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
