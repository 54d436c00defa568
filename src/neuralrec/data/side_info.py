"""Per-item and per-user feature arrays aligned to a model's id vocabulary.

``ItemFeatures.from_dataset(dataset, item_ids, train=split.train)`` gives, for every item index:
its genres as a :class:`MultiHot` (for ``nn.EmbeddingBag``), its year and its training average
rating, raw and scaled to [0, 1]. Statistics (scaler ranges, average ratings, fill values) come
from ``train`` only. The fitted encoder turns the metadata of an item never seen in training into
the same features (:meth:`ItemFeatureEncoder.transform`), which is what cold-start scoring needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from neuralrec.data.dataset import Dataset
from neuralrec.data.features import (
    CategoricalEncoder,
    MinMaxScaler,
    MultiHot,
    bin_numeric,
    parse_years,
)
from neuralrec.data.idmap import IdMap
from neuralrec.data.interactions import Interactions

#: the age brackets of MovieLens 1M (lower bounds); 100K's exact ages are binned the same way
AGE_EDGES = (18, 25, 35, 45, 50, 56)


@dataclass
class ItemFeatureEncoder:
    """Fitted item preprocessing: genre vocabulary, year and rating scalers, fill values."""

    genre_vocab: tuple[str, ...]
    year: MinMaxScaler
    rating: MinMaxScaler
    year_fill: float
    rating_fill: float

    def transform(self, items: pd.DataFrame, avg_rating: np.ndarray | None = None) -> ItemFeatures:
        """Features of the rows of ``items`` (title/genres/year columns, any missing);
        ``avg_rating`` (NaN = unknown) defaults to the training mean for every row."""
        n = len(items)
        genres = MultiHot.from_lists(_column(items, "genres", n), self.genre_vocab)
        year = _years(items)
        avg = np.full(n, np.nan) if avg_rating is None else np.asarray(avg_rating, np.float64)
        return ItemFeatures(
            genres=genres,
            year=year.astype(np.float32),
            year_scaled=self.year.transform(np.where(np.isnan(year), self.year_fill, year)).astype(
                np.float32
            ),
            avg_rating=np.where(np.isnan(avg), self.rating_fill, avg).astype(np.float32),
            avg_rating_scaled=self.rating.transform(
                np.where(np.isnan(avg), self.rating_fill, avg)
            ).astype(np.float32),
            encoder=self,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "genre_vocab": list(self.genre_vocab),
            "year": self.year.to_dict(),
            "rating": self.rating.to_dict(),
            "year_fill": self.year_fill,
            "rating_fill": self.rating_fill,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ItemFeatureEncoder:
        return cls(
            tuple(d["genre_vocab"]),
            MinMaxScaler.from_dict(d["year"]),
            MinMaxScaler.from_dict(d["rating"]),
            float(d["year_fill"]),
            float(d["rating_fill"]),
        )


@dataclass(frozen=True)
class ItemFeatures:
    """Item features aligned to item indices (row ``i`` is item index ``i``)."""

    genres: MultiHot
    year: np.ndarray
    year_scaled: np.ndarray
    avg_rating: np.ndarray
    avg_rating_scaled: np.ndarray
    encoder: ItemFeatureEncoder

    @classmethod
    def from_dataset(
        cls, dataset: Dataset, item_ids: IdMap | None = None, *, train: Interactions | None = None
    ) -> ItemFeatures:
        """Fit on ``train`` (default: all of ``dataset.interactions``; pass the training split
        so test ratings do not leak into average ratings) and encode every item of ``item_ids``
        (default: the dataset's item vocabulary)."""
        train = dataset.interactions if train is None else train
        item_ids = dataset.interactions.item_ids if item_ids is None else item_ids
        table = _aligned(dataset.items, item_ids, "item")
        avg, count = _train_means(train, item_ids)
        year = _years(table)
        in_train = count > 0
        known_years = year[in_train & ~np.isnan(year)]
        lo_hi = dataset.rating_scale
        rating_scaler = MinMaxScaler()
        if lo_hi is not None:
            rating_scaler.min_, rating_scaler.max_ = float(lo_hi[0]), float(lo_hi[1])
        else:
            rated = avg[in_train & np.isfinite(avg)]
            rating_scaler.fit(rated if len(rated) else np.zeros(1))
        train_genres = MultiHot.from_lists(
            [g for g, k in zip(_column(table, "genres", len(table)), in_train, strict=True) if k]
        )
        encoder = ItemFeatureEncoder(
            genre_vocab=train_genres.vocab,
            year=MinMaxScaler().fit(known_years if len(known_years) else np.zeros(1)),
            rating=rating_scaler,
            year_fill=float(known_years.mean()) if len(known_years) else 0.0,
            rating_fill=float(train.ratings.mean())
            if train.ratings is not None and len(train)
            else 0.0,
        )
        return encoder.transform(table, np.where(in_train, avg, np.nan))

    def __len__(self) -> int:
        return len(self.year)

    def dense(self) -> np.ndarray:
        """``(n_items, 2)`` float32: scaled average rating and scaled year."""
        return np.stack([self.avg_rating_scaled, self.year_scaled], axis=1)


@dataclass
class UserFeatureEncoder:
    """Fitted user preprocessing: one categorical encoder per field (age is binned first)."""

    encoders: dict[str, CategoricalEncoder]

    def transform(self, users: pd.DataFrame) -> UserFeatures:
        codes, blocks = {}, []
        for field, enc in self.encoders.items():
            values = _field_values(users, field)
            codes[field] = enc.transform(values)
            blocks.append(enc.one_hot(values))
        one_hot = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(users), 0))
        return UserFeatures(codes, one_hot.astype(np.float32), self)

    def to_dict(self) -> dict[str, Any]:
        return {f: e.to_dict() for f, e in self.encoders.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UserFeatureEncoder:
        return cls({f: CategoricalEncoder.from_dict(e) for f, e in d.items()})


@dataclass(frozen=True)
class UserFeatures:
    """User fields aligned to user indices: ``codes[field]`` (0 = unknown, for embeddings) and
    all fields one-hot side by side in ``one_hot``."""

    codes: dict[str, np.ndarray]
    one_hot: np.ndarray
    encoder: UserFeatureEncoder

    @classmethod
    def from_dataset(
        cls,
        dataset: Dataset,
        user_ids: IdMap | None = None,
        *,
        fields: tuple[str, ...] = ("gender", "age", "occupation"),
    ) -> UserFeatures:
        """Encode the ``fields`` the dataset has (others are skipped) for every user id."""
        user_ids = dataset.interactions.user_ids if user_ids is None else user_ids
        table = _aligned(dataset.users, user_ids, "user")
        present = [f for f in fields if f in table.columns]
        encoders = {f: CategoricalEncoder().fit(_field_values(table, f)) for f in present}
        return UserFeatureEncoder(encoders).transform(table)

    def __len__(self) -> int:
        return len(self.one_hot)


def _field_values(table: pd.DataFrame, field: str) -> list[Any]:
    if field not in table.columns:
        return [None] * len(table)
    if field == "age":
        bins = bin_numeric(pd.to_numeric(table["age"], errors="coerce").to_numpy(), AGE_EDGES)
        return [None if b < 0 else int(b) for b in bins]
    return table[field].tolist()


def _aligned(frame: pd.DataFrame | None, ids: IdMap, name: str) -> pd.DataFrame:
    index = pd.Index(ids.ids, name=name)
    return pd.DataFrame(index=index) if frame is None else frame.reindex(index)


def _column(table: pd.DataFrame, col: str, n: int) -> list[Any]:
    return table[col].tolist() if col in table.columns else [[]] * n


def _years(table: pd.DataFrame) -> np.ndarray:
    if "year" in table.columns:
        return pd.to_numeric(table["year"], errors="coerce").to_numpy(np.float64)
    if "title" in table.columns:
        return parse_years(table["title"].tolist())
    return np.full(len(table), np.nan)


def _train_means(train: Interactions, item_ids: IdMap) -> tuple[np.ndarray, np.ndarray]:
    """Average training rating and training count per item of ``item_ids`` (by raw id)."""
    counts = np.bincount(train.items, minlength=train.n_items)
    sums = (
        np.bincount(train.items, weights=train.ratings, minlength=train.n_items)
        if train.ratings is not None
        else np.zeros(train.n_items)
    )
    pos = item_ids.to_index(train.item_ids.ids, missing="ignore")
    keep = pos >= 0
    count = np.zeros(len(item_ids), dtype=np.int64)
    total = np.zeros(len(item_ids))
    count[pos[keep]] = counts[keep]
    total[pos[keep]] = sums[keep]
    avg = np.divide(total, count, out=np.full(len(item_ids), np.nan), where=count > 0)
    if train.ratings is None:
        avg[:] = np.nan
    return avg, count
