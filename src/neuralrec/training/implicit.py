"""Shared pieces for models trained on implicit feedback with sampled negatives.

:class:`ImplicitTrainConfig` adds the loss and sampling options to :class:`TrainConfig`, with
defaults that follow the chosen loss (``monitor`` is ``rmse`` for mse and ``ndcg@10``
otherwise; a model lists its other loss-specific defaults in ``LOSS_DEFAULTS``). Fields the
user set explicitly always win. :func:`implicit_batches` builds the epoch batches
``(users, positives, negatives[B, k])`` with negatives redrawn every epoch from the trainer's
``(seed, epoch)`` generator.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from neuralrec.data.interactions import Interactions
from neuralrec.data.sampling import NegativeSampler
from neuralrec.errors import ConfigError
from neuralrec.training.batches import TensorBatches
from neuralrec.training.config import TrainConfig


class ImplicitTrainConfig(TrainConfig):
    """Training options of models that can learn from ratings (mse) or implicit feedback."""

    loss: Literal["mse", "bce", "bpr"] = Field(
        "bce",
        description="mse on ratings; bce (pointwise) or bpr (pairwise) with sampled negatives",
    )
    negatives: int = Field(4, ge=1, description="sampled negatives per positive (bce, bpr)")
    neg_sampling: Literal["uniform", "popularity"] = Field(
        "uniform", description="negatives uniform over unseen items, or ∝ popularity^neg_alpha"
    )
    neg_alpha: float = Field(0.75, ge=0, description="popularity exponent for neg_sampling")
    implicit_threshold: float | None = Field(
        None,
        description="with an implicit loss on rated data: positives are ratings >= this "
        "(default: every interaction is a positive)",
    )
    recency_boost: float = Field(
        0.0,
        ge=0,
        description="bce/bpr: a user's latest positive counts 1 + this times per epoch, the "
        "boost decaying by exp(-j / recency_span) for the j-th latest; needs timestamps "
        "(0: every positive counts once)",
    )
    recency_span: float = Field(
        10.0, gt=0, description="how many of a user's latest positives recency_boost reaches"
    )

    #: per-loss defaults for fields the user did not set, e.g. {"bpr": {"lr": 0.01}}
    LOSS_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}

    @model_validator(mode="after")
    def _fill_loss_defaults(self) -> ImplicitTrainConfig:
        if self.loss == "mse" and self.recency_boost:
            raise ValueError("recency_boost weights sampled-negative training: use bce or bpr")
        defaults: dict[str, Any] = {"monitor": "rmse" if self.loss == "mse" else "ndcg@10"}
        defaults.update(self.LOSS_DEFAULTS.get(self.loss, {}))
        for key, value in defaults.items():
            if key not in self.model_fields_set:
                # frozen model: set during validation, without marking the field as user-set
                object.__setattr__(self, key, value)
        return self

    @property
    def implicit(self) -> bool:
        return self.loss != "mse"


def positives_of(train: Interactions, threshold: float | None) -> Interactions:
    """The training rows that count as positives (all of them without a threshold)."""
    if threshold is None:
        return train
    if train.ratings is None:
        raise ConfigError("implicit_threshold needs rated data; this data has no ratings")
    return train.subset(train.ratings >= threshold)


def recency_repeats(inter: Interactions, boost: float, span: float) -> np.ndarray:
    """How many times each row of ``inter`` is trained on per epoch: ``round(1 + boost *
    exp(-j / span))`` for a user's j-th latest row (j = 0 the latest; equal timestamps keep
    row order), so a model leans towards each user's recent taste.

    The weight is realised by repeating rows rather than scaling the loss, so every model
    that trains on :func:`implicit_batches` gets it, and one epoch still visits each row.
    """
    n = len(inter)
    if boost == 0 or n == 0:
        return np.ones(n, dtype=np.int64)
    if inter.timestamps is None:
        raise ConfigError("recency_boost needs timestamps; this data has none")
    order = np.lexsort((np.arange(n), inter.timestamps, inter.users))
    counts = np.bincount(inter.users, minlength=inter.n_users)
    starts = np.cumsum(counts) - counts
    users = inter.users[order]
    later = np.empty(n, dtype=np.int64)
    later[order] = counts[users] - 1 - (np.arange(n) - starts[users])
    return np.rint(1.0 + boost * np.exp(-later / span)).astype(np.int64)


def implicit_batches(
    train: Interactions, cfg: ImplicitTrainConfig, device: torch.device | str = "cpu"
) -> TensorBatches:
    """Batches of ``(users, positives, negatives)``: ``batch_size`` positives, each with
    ``cfg.negatives`` items drawn outside the user's training interactions, fresh every epoch.

    Positives of a user who interacted with every item are left out (no negative exists);
    with ``cfg.recency_boost`` recent positives are repeated (:func:`recency_repeats`).
    """
    pos = positives_of(train, cfg.implicit_threshold)
    sampler = NegativeSampler(train, cfg.neg_sampling, cfg.neg_alpha)
    repeats = recency_repeats(pos, cfg.recency_boost, cfg.recency_span)
    repeats[sampler.n_unseen.numpy()[pos.users] <= 0] = 0
    users = torch.from_numpy(np.repeat(pos.users.astype(np.int64), repeats))
    items = torch.from_numpy(np.repeat(pos.items.astype(np.int64), repeats))
    if len(users) == 0:
        raise ConfigError("no positive interaction to train on (check implicit_threshold)")
    k = cfg.negatives
    dev = torch.device(device)

    def make_epoch(gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        neg = sampler.sample(users, k, gen)
        return users.to(dev), items.to(dev), neg.to(dev)

    return TensorBatches(make_epoch=make_epoch, length=len(users), batch_size=cfg.batch_size)
