"""DeepRec (Kuchaiev and Ginsburg, "Training Deep AutoEncoders for Collaborative Filtering",
NVIDIA, 2017).

A deep autoencoder over user rating vectors (or item vectors, ``by="item"``): encoder layers
``n -> layers[0] -> ... -> layers[-1]`` and a mirrored decoder, SELU activations, heavy dropout
on the code layer only, and optionally a constrained decoder that reuses the transposed encoder
weights. The loss is the masked MSE: mean squared error over the observed ratings of the batch.

Dense re-feeding (the paper's section 3.3): after the step on a batch x, its dense output
f(x) is fed back as a new input whose every entry is a target, and a second optimizer step is
taken on ||f(f(x)) - f(x)||². A perfect model is a fixed point of f, so the second step teaches
it on dense data what the first could only teach on the sparse ratings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import pairwise
from typing import Any

import torch
from pydantic import Field, field_validator
from torch import nn

from neuralrec.models._rating_ae import RatingAutoencoder, RatingAutoencoderConfig
from neuralrec.models._rows import (
    ActivationName,
    Orientation,
    RatingOutput,
    RowBatch,
    SparseInputLinear,
    activation,
)
from neuralrec.models.registry import register
from neuralrec.training.batches import Batch


class DeepRecConfig(RatingAutoencoderConfig):
    """Hyperparameters of DeepRec. Defaults: chosen on a validation split, docs/autoencoders.md."""

    by: Orientation = Field("user", description="reconstruct user vectors (paper) or item vectors")
    layers: tuple[int, ...] = Field(
        (512, 512, 1024), description="encoder layer sizes, e.g. 512,512,1024 (decoder mirrors)"
    )
    activation: ActivationName = Field("selu", description="activation of every hidden layer")
    output_activation: ActivationName = Field(
        "identity", description="activation of the output layer (the paper's code: selu)"
    )
    dropout: float = Field(0.8, ge=0, lt=1, description="dropout on the code layer")
    constrained: bool = Field(False, description="decoder reuses the transposed encoder weights")
    refeed: int = Field(1, ge=0, description="dense re-feeding steps after each batch (0: off)")
    epochs: int = 100
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    patience: int = 8

    @field_validator("layers", mode="before")
    @classmethod
    def _parse_layers(cls, v: Any) -> Any:
        if isinstance(v, str):  # "512,512,1024" from the command line or a config file
            v = [int(s) for s in v.replace(" ", "").split(",") if s]
        if not v or any(int(s) < 1 for s in v):
            raise ValueError("layers needs at least one positive size, e.g. 512,512,1024")
        return v


class DeepAutoencoder(nn.Module):
    """Encoder/decoder stacks with weights in ``x @ W`` layout (one input's row per weight row)."""

    def __init__(
        self,
        n_cols: int,
        layers: tuple[int, ...],
        hidden_activation: str,
        output: RatingOutput,
        dropout: float,
        constrained: bool,
        mu: float,
    ) -> None:
        super().__init__()
        sizes = [n_cols, *layers]
        self.first = SparseInputLinear(n_cols, sizes[1])
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes[1:]))
        self.constrained = constrained
        back = sizes[::-1]  # decoder sizes: code ... n_cols
        self.dec_bias = nn.ParameterList(nn.Parameter(torch.zeros(b)) for b in back[1:])
        if not constrained:
            self.dec_weight = nn.ParameterList(
                nn.Parameter(nn.init.xavier_uniform_(torch.empty(b, a))) for a, b in pairwise(back)
            )
        for layer in self.encoder:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.hidden_activation = hidden_activation
        self.drop = nn.Dropout(dropout)
        self.output = output
        with torch.no_grad():  # start the reconstruction at the mean rating
            self.dec_bias[-1].fill_(float(output.inverse(mu)))

    def _dec_weight(self, k: int) -> torch.Tensor:
        """Decoder layer k's weight as (n_out, n_in), the nn.Linear layout."""
        if not self.constrained:
            return self.dec_weight[k]
        enc = [self.first.weight.T, *(layer.weight for layer in self.encoder)]  # (out, in) each
        return enc[len(enc) - 1 - k].T

    def encode(self, x: torch.Tensor | RowBatch) -> torch.Tensor:
        act = activation(self.hidden_activation)
        h = act(self.first(x))
        for layer in self.encoder:
            h = act(layer(h))
        return self.drop(h)  # dropout on the code layer only, as in the paper

    def penultimate(self, x: torch.Tensor | RowBatch) -> torch.Tensor:
        act = activation(self.hidden_activation)
        h = self.encode(x)
        for k in range(len(self.dec_bias) - 1):
            h = act(nn.functional.linear(h, self._dec_weight(k), self.dec_bias[k]))
        return h

    def last_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._dec_weight(len(self.dec_bias) - 1), self.dec_bias[-1]

    def forward(self, x: torch.Tensor | RowBatch) -> torch.Tensor:
        w, c = self.last_layer()
        return self.output(nn.functional.linear(self.penultimate(x), w, c))


@register
class DeepRec(RatingAutoencoder):
    """Deep autoencoder with SELU, code-layer dropout and dense re-feeding (NVIDIA, 2017)."""

    name = "deeprec"
    Config = DeepRecConfig

    @property
    def orientation(self) -> Orientation:
        return self.config.by

    def _build_module(self, meta: Mapping[str, Any]) -> nn.Module:
        cfg = self.config
        output = RatingOutput(cfg.output_activation, meta["low"], meta["high"])
        return DeepAutoencoder(
            meta["n_cols"],
            tuple(cfg.layers),
            cfg.activation,
            output,
            cfg.dropout,
            cfg.constrained,
            meta["mu"],
        )

    def _loss(self, batch: Batch) -> torch.Tensor | Iterator[torch.Tensor]:
        """Masked MSE on the batch, then (with ``refeed``) the re-feeding steps."""
        (rows,) = batch
        self._z = None  # the weights are about to change
        local, cols, vals = self.rows_.entries(rows)
        out = self.module_(self.rows_.batch(rows))  # sparse first layer, dense output
        loss = (out[local, cols] - vals).square().mean()
        if not self.config.refeed:
            return loss
        return self._refeeding(loss, out)

    def _refeeding(self, first: torch.Tensor, out: torch.Tensor) -> Iterator[torch.Tensor]:
        # the trainer takes a step after each loss, so every re-fed forward pass below sees the
        # weights updated by the previous step, as in the paper's algorithm
        yield first
        for _ in range(self.config.refeed):
            target = out.detach()
            out = self.module_(target)
            yield (out - target).square().mean()
