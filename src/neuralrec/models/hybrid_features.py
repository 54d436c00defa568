"""Inputs of the MF + DNN hybrid: per-item metadata and training statistics, per-user fields.

Everything a score needs is kept here as plain arrays, so that it goes into the model artifact
(safetensors + JSON) and a loaded model can still score an item it has never seen from its
title, genres and year. Every statistic (average rating, rating count, scaler ranges, fill
values) is computed from the training interactions only; the item and user tables contribute
metadata (genres, year, gender, age, occupation), never ratings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from neuralrec.data.dataset import Dataset
from neuralrec.data.idmap import IdMap
from neuralrec.data.interactions import Interactions
from neuralrec.data.side_info import ItemFeatureEncoder, ItemFeatures, UserFeatures

#: dense item inputs, in this order: scaled average rating, scaled year, scaled log count
DENSE_ITEM_INPUTS = ("avg_rating", "year", "popularity")


@dataclass
class ItemSide:
    """Item metadata and training statistics aligned to item indices.

    ``rating_sum``/``rating_count`` come from the training rows; the average-rating input is
    the damped mean ``(sum + prior * mu) / (count + prior)`` (shrunk towards the training mean,
    so an item rated once does not look like a 5-star classic), min-max scaled to [0, 1] by the
    rating scale.
    """

    genre_offsets: np.ndarray  # (n + 1,) int64: multi-hot genres as CSR offsets
    genre_indices: np.ndarray  # int64 genre codes
    year_scaled: np.ndarray  # (n,) float32 in [0, 1] (fill: training mean year)
    rating_sum: np.ndarray  # (n,) float64
    rating_count: np.ndarray  # (n,) float64
    encoder: ItemFeatureEncoder
    mu: float
    prior: float
    max_log_count: float

    @property
    def n_genres(self) -> int:
        return len(self.encoder.genre_vocab)

    def avg_scaled(self, rating_sum: np.ndarray, count: np.ndarray) -> np.ndarray:
        """The scaled damped average for given sums and counts (vectorised)."""
        avg = (rating_sum + self.prior * self.mu) / (count + self.prior)
        return self.encoder.rating.transform(avg).astype(np.float32)

    def pop_scaled(self, count: np.ndarray) -> np.ndarray:
        return (np.log1p(np.maximum(count, 0.0)) / self.max_log_count).astype(np.float32)

    def dense(self) -> np.ndarray:
        """``(n, 3)`` float32 dense inputs of every item, with its full training statistics."""
        return np.stack(
            [
                self.avg_scaled(self.rating_sum, self.rating_count),
                self.year_scaled,
                self.pop_scaled(self.rating_count),
            ],
            axis=1,
        )

    def encode_new(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Genre bags and dense inputs for items known only by metadata (no ratings yet)."""
        feats = self.encoder.transform(frame)
        n = len(frame)
        zeros = np.zeros(n)
        dense = np.stack(
            [self.avg_scaled(zeros, zeros), feats.year_scaled, self.pop_scaled(zeros)], axis=1
        )
        return feats.genres.offsets, feats.genres.indices, dense.astype(np.float32)

    def like(self, offsets: np.ndarray, indices: np.ndarray, year_scaled: np.ndarray) -> ItemSide:
        """Items with the given metadata and no training ratings, under the same encoders."""
        zeros = np.zeros(len(year_scaled))
        return ItemSide(
            offsets,
            indices,
            year_scaled,
            zeros,
            zeros.copy(),
            self.encoder,
            self.mu,
            self.prior,
            self.max_log_count,
        )

    # ------------------------------------------------------------------ persistence
    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}genre_offsets": torch.from_numpy(self.genre_offsets.astype(np.int64)),
            f"{prefix}genre_indices": torch.from_numpy(self.genre_indices.astype(np.int64)),
            f"{prefix}year_scaled": torch.from_numpy(self.year_scaled.astype(np.float32)),
            f"{prefix}rating_sum": torch.from_numpy(self.rating_sum.astype(np.float64)),
            f"{prefix}rating_count": torch.from_numpy(self.rating_count.astype(np.float64)),
        }

    def meta(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.to_dict(),
            "mu": self.mu,
            "prior": self.prior,
            "max_log_count": self.max_log_count,
        }

    @classmethod
    def restore(cls, tensors: dict[str, torch.Tensor], prefix: str, meta: dict) -> ItemSide:
        t = {k[len(prefix) :]: v.numpy() for k, v in tensors.items() if k.startswith(prefix)}
        return cls(
            t["genre_offsets"],
            t["genre_indices"],
            t["year_scaled"],
            t["rating_sum"],
            t["rating_count"],
            ItemFeatureEncoder.from_dict(meta["encoder"]),
            float(meta["mu"]),
            float(meta["prior"]),
            float(meta["max_log_count"]),
        )


def build_item_side(
    dataset: Dataset | None, train: Interactions, prior: float
) -> tuple[ItemSide, IdMap, ItemSide | None]:
    """The item side for the training vocabulary, plus the items that only the metadata knows.

    Returns ``(side, extra_ids, extra_side)``: ``extra_ids``/``extra_side`` cover items of
    ``dataset.items`` outside the interaction vocabulary (e.g. movies nobody has rated), so that
    ``predict`` can score them from metadata; ``extra_side`` is None when there are none.
    """
    ds = dataset if dataset is not None else Dataset("train", train)
    feats = ItemFeatures.from_dataset(ds, train.item_ids, train=train)
    count = np.bincount(train.items, minlength=train.n_items).astype(np.float64)
    if train.ratings is not None:
        total = np.bincount(train.items, weights=train.ratings, minlength=train.n_items)
        mu = float(train.ratings.mean())
    else:
        total, mu = np.zeros(train.n_items), 0.0
    side = ItemSide(
        feats.genres.offsets,
        feats.genres.indices,
        feats.year_scaled,
        total,
        count,
        feats.encoder,
        mu,
        float(prior),
        float(np.log1p(max(count.max(), 1.0))),
    )
    extra_ids, extra = IdMap([]), None
    if ds.items is not None:
        outside = ~ds.items.index.isin(pd.Index(train.item_ids.ids))
        if outside.any():
            frame = ds.items[outside]
            extra_ids = IdMap(frame.index.to_numpy())
            offsets, indices, dense = side.encode_new(frame)
            extra = side.like(offsets, indices, dense[:, 1])
    return side, extra_ids, extra


@dataclass
class UserSide:
    """User fields (gender, age bracket, occupation) as codes per user index; 0 = unknown."""

    codes: np.ndarray  # (n_users, n_fields) int64
    fields: tuple[str, ...]
    encoder: dict[str, Any]  # UserFeatureEncoder.to_dict()

    @property
    def sizes(self) -> list[int]:
        return [len(self.encoder[f]["categories"]) + 1 for f in self.fields]

    def encode(self, features: dict[str, Any] | None) -> np.ndarray:
        """Codes of one new user from a ``{field: value}`` dict (missing fields -> unknown)."""
        from neuralrec.data.side_info import UserFeatureEncoder

        row = pd.DataFrame([features or {}])
        enc = UserFeatureEncoder.from_dict(self.encoder).transform(row)
        return np.array([[enc.codes[f][0] for f in self.fields]], dtype=np.int64)


def build_user_side(dataset: Dataset | None, user_ids: IdMap) -> UserSide | None:
    """User fields where the dataset has them (None otherwise)."""
    if dataset is None or dataset.users is None:
        return None
    feats = UserFeatures.from_dataset(dataset, user_ids)
    fields = tuple(feats.codes)
    if not fields:
        return None
    codes = np.stack([feats.codes[f] for f in fields], axis=1).astype(np.int64)
    return UserSide(codes, fields, feats.encoder.to_dict())
