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

Two additions, both chosen or checked on validation (docs/autoencoders.md): scoring uses a
moving average of the weights (``ema``, on by default), and ``kernel_dim`` turns both weight
matrices into Sparse FC's kernelised ones (Muller, Martel and Indiveri 2018; off by default).

``autorec-i`` reconstructs item vectors (an item's ratings by all users) and predicts (u, i)
as entry u of item i's reconstruction; ``autorec-u`` reconstructs user vectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from neuralrec.data.dataset import Dataset
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
from neuralrec.models._sparse_ops import observed_linear, sparse_rows_matmul
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
    dropout: float = Field(0.6, ge=0, lt=1, description="dropout on the hidden layer")
    kernel_dim: int = Field(
        0,
        ge=0,
        description="Sparse FC's kernelised weights: each weight matrix is multiplied entry by "
        "entry by max(0, 1 - ||u_i - v_j||²) of learned kernel_dim-vectors per unit (0: off)",
    )
    kernel_l2: float = Field(
        0.0, ge=0, description="λ_s in λ_s/2 ‖K‖², the penalty that sparsifies the kernels"
    )
    ema: float = Field(
        0.99,
        ge=0,
        lt=1,
        description="predict with an exponential moving average of the weights, updated after "
        "every step with this decay (0: the trained weights themselves)",
    )
    epochs: int = 200
    batch_size: int = 256
    optimizer: str = "adam"
    lr: float = 1e-3
    patience: int = 10


class LocalKernel(nn.Module):
    """The finite-support kernel of Sparse FC (Muller, Martel and Indiveri, "Kernelized
    Synaptic Weight Matrices", ICML 2018), also GLocal-K's local kernel.

    Each of the ``n_in`` and ``n_out`` units of a layer has a learned vector in R^dim;
    ``K[i, j] = max(0, 1 - ‖u_i - v_j‖²)`` is zero for units farther apart than 1, so the
    effective weight ``W ⊙ K`` is sparse where the kernel learned to cut connections. The
    vectors start near 0 (every K near 1: the plain dense layer).
    """

    def __init__(self, n_in: int, n_out: int, dim: int) -> None:
        super().__init__()
        self.u = nn.Parameter(nn.init.trunc_normal_(torch.empty(n_in, dim), std=1e-3))
        self.v = nn.Parameter(nn.init.trunc_normal_(torch.empty(n_out, dim), std=1e-3))

    def forward(self) -> torch.Tensor:
        return local_kernel(self.u, self.v)


def local_kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``max(0, 1 - ‖u_i - v_j‖²)`` for every row i of ``u`` and row j of ``v``."""
    sq = u.square().sum(1, keepdim=True) + v.square().sum(1) - 2 * u @ v.T
    return (1.0 - sq).clamp_min(0.0)


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
        kernel_dim: int = 0,
        ema: float = 0.0,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.encoder = SparseInputLinear(n_cols, hidden)
        self.decoder = xavier_linear(hidden, n_cols)
        # both kernels are (n_cols, hidden), the shape of both stored weight matrices
        self.kernels = (
            nn.ModuleList([LocalKernel(n_cols, hidden, kernel_dim) for _ in range(2)])
            if kernel_dim
            else None
        )
        self.hidden_activation = hidden_activation
        self.output = RatingOutput(output_activation, low, high)
        # start every reconstructed entry at the mean rating rather than at g(0)
        nn.init.constant_(self.decoder.bias, float(self.output.inverse(mu)))
        # the moving average: a buffer per parameter (saved, and restored with the best weights)
        self.ema = ema
        self._names = [name for name, _ in self.named_parameters()]
        if ema:
            for name, p in self.named_parameters():
                self.register_buffer(_ema_name(name), p.detach().clone())

    def _get(self, name: str) -> torch.Tensor:
        """A parameter, or its moving average in eval mode (what scoring uses)."""
        if self.ema and not self.training:
            return getattr(self, _ema_name(name))
        return self.get_parameter(name)

    @torch.no_grad()
    def update_average(self) -> None:
        """Move the average towards the current weights: avg ← avg + (1 - decay)(w - avg)."""
        for name in self._names:
            getattr(self, _ema_name(name)).lerp_(self.get_parameter(name), 1.0 - self.ema)

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The effective (V, W), both (n_cols, hidden): kernelised when the module has kernels."""
        v, w = self._get("encoder.weight"), self._get("decoder.weight")
        if self.kernels is None:
            return v, w
        kv = local_kernel(self._get("kernels.0.u"), self._get("kernels.0.v"))
        kw = local_kernel(self._get("kernels.1.u"), self._get("kernels.1.v"))
        return v * kv, w * kw

    def penultimate(self, x: torch.Tensor | RowBatch) -> torch.Tensor:
        if self.kernels is None and not self.ema:
            pre = self.encoder(x)
        else:
            v, b = self.weights()[0], self._get("encoder.bias")
            pre = (
                sparse_rows_matmul(v, x.crow, x.cols, x.values) + b
                if isinstance(x, RowBatch)
                else torch.addmm(b, x, v)
            )
        return self.dropout(activation(self.hidden_activation)(pre))

    def last_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weights()[1], self._get("decoder.bias")

    def forward(self, x: torch.Tensor | RowBatch) -> torch.Tensor:
        w, c = self.last_layer()
        return self.output(F.linear(self.penultimate(x), w, c))


def _ema_name(name: str) -> str:
    return "ema_" + name.replace(".", "_")


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
            cfg.kernel_dim,
            cfg.ema,
        )

    def _prepare(self, train: Interactions, dataset: Dataset | None) -> None:
        super()._prepare(train, dataset)
        self._step_pending = False  # a step the moving average has not seen yet

    def _sync_average(self) -> None:
        """Bring the moving average (``ema``) up to date with the last optimizer step.

        Called before every step's loss, before each validation and at each epoch's end, so
        the average that is validated (and kept as the best weights) has seen every step.
        """
        if self.config.ema and self._step_pending:
            self.module_.update_average()
            self._z = None
        self._step_pending = False

    def _validator(self, train: Interactions, valid: Interactions):
        metrics = super()._validator(train, valid)

        def validate() -> dict[str, float]:
            self._sync_average()
            return metrics()

        return validate

    def _after_epoch(self, record: dict[str, Any]) -> None:
        self._sync_average()

    def _train_config(self, train: Interactions) -> TrainConfig:
        """The paper's λ/2 (‖V‖² + ‖W‖²) as the optimizer's (coupled L2) weight decay.

        :meth:`_loss` is the paper's objective divided by the number of ratings, so the
        penalty's gradient is (λ / n_ratings) · W at every step: exactly a weight decay of
        λ / n_ratings on V and W (biases excluded, as in the paper), which the fused optimizer
        applies for free. (With ``optimizer="adamw"`` the decay is decoupled instead.)

        With ``kernel_dim`` the penalty is added to the loss instead (:meth:`_penalty`): the
        decay would also reach the kernels' unit vectors, which the paper leaves free.
        """
        cfg = self.config
        if cfg.kernel_dim:
            return cfg
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
        self._sync_average()
        self._step_pending = True
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
        w, c = m.last_layer()
        pre = observed_linear(m.penultimate(x), w, c, ratings.crow, ratings.cols)
        err = (m.output(pre) - vals).square()
        sse = (err if weight is None else err * weight).sum()
        # a batch's share of the epoch's sum, per rating: the mean over an epoch
        loss = sse / (len(rows) * self.entries_per_row_)
        return loss + self._penalty() if cfg.kernel_dim else loss

    def _penalty(self) -> torch.Tensor:
        """With kernels: (λ/2 (‖V‖² + ‖W‖²) + λ_s/2 (‖K_V‖² + ‖K_W‖²)) per rating, at every step
        (each batch's loss estimates the whole objective per rating, as the weight decay does)."""
        cfg, m = self.config, self.module_
        l2 = m.encoder.weight.square().sum() + m.decoder.weight.square().sum()
        total = cfg.l2 * l2
        if cfg.kernel_l2:
            total = total + cfg.kernel_l2 * sum(k().square().sum() for k in m.kernels)
        return total / (2 * self.rows_.nnz)


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
