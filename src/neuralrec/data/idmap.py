"""Two-way maps between raw ids (strings or integers) and dense indices 0..n-1."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from neuralrec.errors import DataError, UnknownIdError


def _normalise(ids: Any) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError("ids must be integers or strings, got non-integral floats")
        return arr.astype(np.int64)
    if arr.dtype.kind in "OUS":
        return arr.astype(object)
    raise DataError(f"ids must be integers or strings, got dtype {arr.dtype}")


class IdMap:
    """An ordered vocabulary of raw ids: ``index[id] -> i`` and ``ids[i] -> id``.

    Ids are either all integers or all strings. Lookups are vectorised through a pandas Index.
    """

    __slots__ = ("_ids", "_index")

    def __init__(self, ids: Iterable[Any]) -> None:
        arr = _normalise(list(ids) if not isinstance(ids, np.ndarray | pd.Index) else ids)
        index = pd.Index(arr)
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise DataError(f"duplicate id {dup!r} in id map")
        self._ids = arr
        self._index = index

    @classmethod
    def from_values(cls, values: Any) -> tuple[IdMap, np.ndarray]:
        """Build a map from raw values in order of first appearance sorted by id; return codes too."""
        arr = _normalise(values)
        codes, uniques = pd.factorize(arr, sort=True)
        return cls(np.asarray(uniques)), codes.astype(np.int32)

    @property
    def ids(self) -> np.ndarray:
        """Raw ids in index order (read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    @property
    def is_integer(self) -> bool:
        return self._ids.dtype.kind == "i"

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw: Any) -> bool:
        try:
            return self.coerce(raw) in self._index
        except (DataError, UnknownIdError, ValueError, TypeError):
            return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdMap):
            return NotImplemented
        return len(self) == len(other) and bool(np.all(self._ids == other._ids))

    def __hash__(self) -> int:  # pragma: no cover - maps are compared, not hashed
        return hash(
            (len(self), self._ids[:8].tobytes() if self.is_integer else tuple(self._ids[:8]))
        )

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x in self._ids[:3])
        more = ", ..." if len(self) > 3 else ""
        return f"IdMap(n={len(self)}, [{head}{more}])"

    def coerce(self, raw: Any) -> Any:
        """Convert one raw id to this map's id type ("42" -> 42 for integer maps)."""
        if self.is_integer:
            if isinstance(raw, str):
                raw = raw.strip()
                if not raw.lstrip("-").isdigit():
                    raise UnknownIdError(f"id {raw!r} is not an integer id")
            return int(raw)
        return str(raw)

    def index_of(self, raw: Any) -> int:
        """Dense index of one raw id; raises UnknownIdError if absent."""
        key = self.coerce(raw)
        try:
            return int(self._index.get_loc(key))
        except KeyError:
            raise UnknownIdError(f"unknown id {raw!r}") from None

    def to_index(self, raw: Any, *, missing: str = "error") -> np.ndarray:
        """Dense indices of many raw ids. ``missing``: "error" raises, "ignore" returns -1."""
        arr = np.asarray(raw)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if self.is_integer and arr.dtype.kind in "OUS":
            try:
                arr = arr.astype(np.int64)
            except (ValueError, TypeError):
                arr = np.array([self._coerce_or_none(x) for x in arr], dtype=object)
        elif not self.is_integer and arr.dtype.kind not in "OUS":
            arr = arr.astype(str).astype(object)
        codes = self._index.get_indexer(arr)
        if missing == "error" and (codes < 0).any():
            bad = arr[codes < 0][0]
            raise UnknownIdError(f"unknown id {bad!r} ({int((codes < 0).sum())} unknown in total)")
        return codes.astype(np.int64)

    def _coerce_or_none(self, x: Any) -> Any:
        try:
            return self.coerce(x)
        except UnknownIdError:
            return None

    def to_ids(self, index: Any) -> np.ndarray:
        """Raw ids of dense indices."""
        return self._ids[np.asarray(index, dtype=np.int64)]

    def subset(self, keep: np.ndarray) -> IdMap:
        """A new map holding the ids at positions ``keep`` (in that order)."""
        return IdMap(self._ids[np.asarray(keep, dtype=np.int64)])

    def to_list(self) -> list[Any]:
        """Ids as a JSON-friendly list."""
        return self._ids.tolist()
