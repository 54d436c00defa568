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

    #: per-loss defaults for fields the user did not set, e.g. {"bpr": {"lr": 0.01}}
    LOSS_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}

    @model_validator(mode="after")
    def _fill_loss_defaults(self) -> ImplicitTrainConfig:
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


def implicit_batches(
    train: Interactions, cfg: ImplicitTrainConfig, device: torch.device | str = "cpu"
) -> TensorBatches:
    """Batches of ``(users, positives, negatives)``: ``batch_size`` positives, each with
    ``cfg.negatives`` items drawn outside the user's training interactions, fresh every epoch.

    Positives of a user who interacted with every item are left out (no negative exists).
    """
    pos = positives_of(train, cfg.implicit_threshold)
    sampler = NegativeSampler(train, cfg.neg_sampling, cfg.neg_alpha)
    keep = sampler.n_unseen.numpy()[pos.users] > 0
    users = torch.from_numpy(pos.users[keep].astype(np.int64))
    items = torch.from_numpy(pos.items[keep].astype(np.int64))
    if len(users) == 0:
        raise ConfigError("no positive interaction to train on (check implicit_threshold)")
    k = cfg.negatives
    dev = torch.device(device)

    def make_epoch(gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        neg = sampler.sample(users, k, gen)
        return users.to(dev), items.to(dev), neg.to(dev)

    return TensorBatches(make_epoch=make_epoch, length=len(users), batch_size=cfg.batch_size)
