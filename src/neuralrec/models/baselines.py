"""Baselines every model is compared with: random, global mean, biases, popularity."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field

from neuralrec.data.dataset import Dataset
from neuralrec.data.interactions import Interactions
from neuralrec.models.base import Recommender
from neuralrec.models.registry import register
from neuralrec.training.config import ModelConfig


class _Closed(Recommender):
    """Models fitted in closed form (no trainer, no epochs)."""

    def _fit(
        self,
        train: Interactions,
        valid: Interactions | None,
        *,
        dataset: Dataset | None,
        checkpoint_dir: str | Path | None,
        quiet: bool,
    ) -> None:
        self._fit_closed(train)

    def _fit_closed(self, train: Interactions) -> None:
        raise NotImplementedError


class RandomConfig(ModelConfig):
    pass


@register
class RandomGuess(_Closed):
    """Uniform random ratings within the training rating range; random rankings.

    The lectures' "random guess" row: the floor any model must clear.
    """

    name = "random"
    Config = RandomConfig

    def _fit_closed(self, train: Interactions) -> None:
        r = train.ratings
        self.low_ = float(r.min()) if r is not None else 0.0
        self.high_ = float(r.max()) if r is not None else 1.0

    def _rng(self, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, salt])

    def predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        # seeded by the request so the same pairs always get the same guess
        salt = int(
            np.asarray(users, dtype=np.int64).sum() * 31 + np.asarray(items, dtype=np.int64).sum()
        ) % (2**31)
        return self._rng(salt).uniform(self.low_, self.high_, size=len(users)).astype(np.float32)

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        salt = int(np.asarray(users, dtype=np.int64).sum()) % (2**31)
        return torch.from_numpy(
            self._rng(salt)
            .uniform(self.low_, self.high_, (len(users), self.n_items))
            .astype(np.float32)
        )

    def fallback_predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.predict_idx(np.maximum(users, 0), np.maximum(items, 0))

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"low": self.low_, "high": self.high_}

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.low_, self.high_ = float(meta["low"]), float(meta["high"])


@register
class GlobalMean(_Closed):
    """Predicts the mean training rating for every pair."""

    name = "global-mean"
    Config = RandomConfig

    def _fit_closed(self, train: Interactions) -> None:
        pass

    def predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.full(len(users), self.global_mean_, dtype=np.float32)

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        return torch.full((len(users), self.n_items), self.global_mean_)


class BiasConfig(ModelConfig):
    user_reg: float = Field(
        5.0, ge=0, description="shrinkage of user biases (pseudo-ratings at the mean)"
    )
    item_reg: float = Field(5.0, ge=0, description="shrinkage of item biases")
    iterations: int = Field(10, ge=1, description="alternating least-squares sweeps")


@register
class Bias(_Closed):
    """r̂ = μ + a_u + b_i, fitted by regularised alternating least squares.

    Each sweep solves b_i = Σ_u (r − μ − a_u) / (λ_i + n_i), then the same for a_u, which is the
    exact minimiser of the regularised squared error for the other side held fixed (Koren 2010,
    "Factor in the neighbors", section 2.1). Defaults chosen by grid search on a validation split
    carved from MovieLens 100K u1's training part (see docs/defaults.md).
    """

    name = "bias"
    Config = BiasConfig
    search_space: ClassVar[dict[str, tuple]] = {
        "user_reg": ("float", 0.1, 50.0, True),
        "item_reg": ("float", 0.1, 50.0, True),
    }

    def _fit_closed(self, train: Interactions) -> None:
        cfg = self.config
        if train.ratings is None:
            raise ValueError("bias needs explicit ratings")
        mu = float(train.ratings.mean())
        u, i, r = train.users, train.items, train.ratings.astype(np.float64) - mu
        n_u = np.bincount(u, minlength=train.n_users)
        n_i = np.bincount(i, minlength=train.n_items)
        a = np.zeros(train.n_users)
        b = np.zeros(train.n_items)
        for _ in range(cfg.iterations):
            b = np.bincount(i, r - a[u], minlength=train.n_items) / (cfg.item_reg + n_i)
            a = np.bincount(u, r - b[i], minlength=train.n_users) / (cfg.user_reg + n_u)
        self.user_bias_ = a.astype(np.float32)
        self.item_bias_ = b.astype(np.float32)

    def predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.global_mean_ + self.user_bias_[users] + self.item_bias_[items]

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        ub = torch.from_numpy(self.user_bias_[users])[:, None]
        return self.global_mean_ + ub + torch.from_numpy(self.item_bias_)[None, :]

    def fallback_predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        # the terms we know: user bias for a known user, item bias for a known item
        out = np.full(len(users), self.global_mean_, dtype=np.float32)
        ku = users >= 0
        ki = items >= 0
        out[ku] += self.user_bias_[users[ku]]
        out[ki] += self.item_bias_[items[ki]]
        return out

    def score_history(self, items: np.ndarray, ratings: np.ndarray | None = None) -> torch.Tensor:
        return torch.from_numpy(self.global_mean_ + self.item_bias_)

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {
            "user_bias": torch.from_numpy(self.user_bias_),
            "item_bias": torch.from_numpy(self.item_bias_),
        }, {}

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.user_bias_ = tensors["user_bias"].numpy()
        self.item_bias_ = tensors["item_bias"].numpy()


class PopularityConfig(ModelConfig):
    pass


@register
class Popularity(_Closed):
    """Ranks items by how many training interactions they have (the same list for everyone)."""

    name = "popularity"
    Config = PopularityConfig
    task: ClassVar[str] = "ranking"

    def _fit_closed(self, train: Interactions) -> None:
        pass

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.item_popularity_).float().expand(len(users), -1)

    def predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.item_popularity_[items].astype(np.float32)

    def score_history(self, items: np.ndarray, ratings: np.ndarray | None = None) -> torch.Tensor:
        return torch.from_numpy(self.item_popularity_).float()
