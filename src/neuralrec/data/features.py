"""Feature preprocessing from the lectures: years from titles, multi-hot lists, min-max and
z-score scaling, one-hot / index-encoded categories, binned numbers.

Scalers and encoders follow scikit-learn's convention (``fit`` on training data only, learned
state with a trailing underscore, ``transform`` for new data) and serialise to plain JSON dicts,
so a model artifact can store them without pickle. Per-item and per-user tables built from a
:class:`~neuralrec.data.Dataset` live in :mod:`neuralrec.data.side_info` and are re-exported
here (``ItemFeatures``, ``UserFeatures``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_YEAR = re.compile(r"\((\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$")


def parse_year(title: str | None) -> int | None:
    """The release year at the end of a MovieLens title: ``"Toy Story (1995)" -> 1995``.

    Accepts trailing spaces and a range like ``"(2007-)"`` (series); None when there is none.
    """
    if not isinstance(title, str):
        return None
    m = _YEAR.search(title)
    return int(m.group(1)) if m else None


def parse_years(titles: Iterable[Any]) -> np.ndarray:
    """:func:`parse_year` over many titles, as float64 with NaN where a title has no year."""
    return np.array([np.nan if (y := parse_year(t)) is None else y for t in titles], np.float64)


@dataclass(frozen=True)
class MultiHot:
    """Variable-length label lists as ``offsets`` + ``indices`` (CSR), over a vocabulary.

    Row ``i`` holds ``indices[offsets[i]:offsets[i + 1]]``. ``nn.EmbeddingBag(len(vocab), d)``
    takes ``(torch.from_numpy(indices), torch.from_numpy(bag_offsets))`` directly; a row with
    no label is an empty bag (EmbeddingBag returns zeros for it).
    """

    offsets: np.ndarray
    indices: np.ndarray
    vocab: tuple[str, ...]

    @classmethod
    def from_lists(cls, lists: Iterable[Any], vocab: Sequence[str] | None = None) -> MultiHot:
        """Encode label lists; ``vocab=None`` builds a sorted vocabulary from the labels, a given
        ``vocab`` drops labels outside it (new genres of a new item are ignored, not an error).
        """
        rows = [list(x) if isinstance(x, list | tuple | np.ndarray) else [] for x in lists]
        if vocab is None:
            vocab = sorted({str(g) for row in rows for g in row})
        lookup = {g: i for i, g in enumerate(vocab)}
        coded = [sorted({lookup[str(g)] for g in row if str(g) in lookup}) for row in rows]
        offsets = np.zeros(len(coded) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(r) for r in coded])
        indices = np.fromiter((i for r in coded for i in r), dtype=np.int64, count=offsets[-1])
        return cls(offsets, indices, tuple(vocab))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def bag_offsets(self) -> np.ndarray:
        """Start of each bag: the ``offsets`` argument of ``nn.EmbeddingBag``."""
        return self.offsets[:-1]

    def row(self, i: int) -> np.ndarray:
        return self.indices[self.offsets[i] : self.offsets[i + 1]]

    def labels(self, i: int) -> list[str]:
        return [self.vocab[j] for j in self.row(i)]

    def take(self, rows: np.ndarray) -> MultiHot:
        """The bags of ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        sizes = np.diff(self.offsets)[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(sizes)
        parts = [self.row(int(r)) for r in rows]
        indices = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return MultiHot(offsets, indices.astype(np.int64), self.vocab)

    def to_dense(self) -> np.ndarray:
        """A ``(rows, len(vocab))`` float32 0/1 matrix."""
        out = np.zeros((len(self), len(self.vocab)), dtype=np.float32)
        out[np.repeat(np.arange(len(self)), np.diff(self.offsets)), self.indices] = 1.0
        return out


class MinMaxScaler:
    """``(x - min) / (max - min)`` with min and max learned by :meth:`fit` (NaN ignored).

    A constant feature maps to 0. ``clip`` bounds new data to [0, 1]; NaN stays NaN.
    """

    def __init__(self, clip: bool = False) -> None:
        self.clip = clip

    def fit(self, x: Any) -> MinMaxScaler:
        values = _finite(x, "MinMaxScaler")
        self.min_, self.max_ = float(values.min()), float(values.max())
        return self

    def transform(self, x: Any) -> np.ndarray:
        span = self.max_ - self.min_
        out = (np.asarray(x, dtype=np.float64) - self.min_) / (span if span > 0 else 1.0)
        return np.clip(out, 0.0, 1.0) if self.clip else out

    def fit_transform(self, x: Any) -> np.ndarray:
        return self.fit(x).transform(x)

    def inverse_transform(self, y: Any) -> np.ndarray:
        span = self.max_ - self.min_
        return np.asarray(y, dtype=np.float64) * (span if span > 0 else 1.0) + self.min_

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "minmax", "min": self.min_, "max": self.max_, "clip": self.clip}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MinMaxScaler:
        obj = cls(clip=bool(d.get("clip", False)))
        obj.min_, obj.max_ = float(d["min"]), float(d["max"])
        return obj


class StandardScaler:
    """z-score: ``(x - mean) / std`` with the population std learned by :meth:`fit` (NaN
    ignored); a constant feature maps to 0."""

    def fit(self, x: Any) -> StandardScaler:
        values = _finite(x, "StandardScaler")
        self.mean_, self.std_ = float(values.mean()), float(values.std())
        return self

    def transform(self, x: Any) -> np.ndarray:
        scale = self.std_ if self.std_ > 0 else 1.0
        return (np.asarray(x, dtype=np.float64) - self.mean_) / scale

    def fit_transform(self, x: Any) -> np.ndarray:
        return self.fit(x).transform(x)

    def inverse_transform(self, y: Any) -> np.ndarray:
        scale = self.std_ if self.std_ > 0 else 1.0
        return np.asarray(y, dtype=np.float64) * scale + self.mean_

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "standard", "mean": self.mean_, "std": self.std_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StandardScaler:
        obj = cls()
        obj.mean_, obj.std_ = float(d["mean"]), float(d["std"])
        return obj


def _finite(x: Any, who: str) -> np.ndarray:
    values = np.asarray(x, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if not len(values):
        raise ValueError(f"{who}.fit needs at least one finite value")
    return values


class CategoricalEncoder:
    """Categories to indices (``0`` is reserved for unknown/missing, so the index can feed an
    ``nn.Embedding`` directly) and to one-hot rows (unknown -> all zeros)."""

    def fit(self, values: Iterable[Any]) -> CategoricalEncoder:
        seen = {_key(v) for v in values} - {None}
        self.categories_: list[str] = sorted(seen)
        self._lookup = {c: i + 1 for i, c in enumerate(self.categories_)}
        return self

    @property
    def n_codes(self) -> int:
        """Embedding table size: the categories plus the unknown slot 0."""
        return len(self.categories_) + 1

    def transform(self, values: Iterable[Any]) -> np.ndarray:
        return np.array([self._lookup.get(_key(v), 0) for v in values], dtype=np.int64)

    def one_hot(self, values: Iterable[Any]) -> np.ndarray:
        codes = self.transform(values)
        out = np.zeros((len(codes), len(self.categories_) + 1), dtype=np.float32)
        out[np.arange(len(codes)), codes] = 1.0
        return out[:, 1:]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "categorical", "categories": list(self.categories_)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalEncoder:
        return cls().fit(d["categories"])


def _key(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def bin_numeric(values: Any, edges: Sequence[float]) -> np.ndarray:
    """Ordinal bin of each value: 0 below ``edges[0]``, ``i`` in ``[edges[i-1], edges[i])``,
    ``len(edges)`` at or above the last edge; NaN gives -1."""
    x = np.asarray(values, dtype=np.float64)
    out = np.digitize(x, np.asarray(edges, dtype=np.float64), right=False).astype(np.int64)
    out[np.isnan(x)] = -1
    return out


def ordinal_encode(values: Iterable[Any], order: Sequence[Any]) -> np.ndarray:
    """Position of each value in ``order`` (e.g. ``["low", "mid", "high"] -> 0, 1, 2``);
    values outside ``order`` give -1."""
    lookup = {_key(v): i for i, v in enumerate(order)}
    return np.array([lookup.get(_key(v), -1) for v in values], dtype=np.int64)


def __getattr__(name: str) -> Any:
    # the Dataset-level tables build on the primitives above, so they import this module
    if name in ("ItemFeatures", "UserFeatures", "ItemFeatureEncoder", "UserFeatureEncoder"):
        from neuralrec.data import side_info

        return getattr(side_info, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
