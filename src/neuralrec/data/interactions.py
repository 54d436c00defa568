"""The interactions container: who interacted with what, with optional ratings and timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from neuralrec.data.idmap import IdMap
from neuralrec.errors import DataError

DuplicatePolicy = Literal["error", "last", "first", "mean"]


@dataclass(frozen=True, eq=False, repr=False)
class Interactions:
    """Parallel arrays of (user, item[, rating][, timestamp]) over shared id vocabularies.

    ``users`` and ``items`` are dense indices into ``user_ids`` and ``item_ids``. Splits of one
    dataset share the same vocabularies, so index ``i`` means the same item in train and test.
    Build one from raw ids with :meth:`from_arrays` or :meth:`from_frame`.
    """

    users: np.ndarray
    items: np.ndarray
    user_ids: IdMap
    item_ids: IdMap
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None

    def __post_init__(self) -> None:
        users = np.ascontiguousarray(self.users, dtype=np.int32)
        items = np.ascontiguousarray(self.items, dtype=np.int32)
        n = len(users)
        if users.ndim != 1 or items.shape != (n,):
            raise DataError(
                f"users and items must be 1-d of equal length, got {users.shape} and {items.shape}"
            )
        if n and (users.min() < 0 or users.max() >= len(self.user_ids)):
            raise DataError("user index out of range of the user id map")
        if n and (items.min() < 0 or items.max() >= len(self.item_ids)):
            raise DataError("item index out of range of the item id map")
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "items", items)
        if self.ratings is not None:
            ratings = np.ascontiguousarray(self.ratings, dtype=np.float32)
            if ratings.shape != (n,):
                raise DataError(
                    f"ratings must have shape ({n},), got {ratings.shape}", field="rating"
                )
            if n and not np.isfinite(ratings).all():
                row = int(np.flatnonzero(~np.isfinite(ratings))[0])
                raise DataError(f"rating is NaN or infinite at row {row}", field="rating")
            object.__setattr__(self, "ratings", ratings)
        if self.timestamps is not None:
            ts = np.ascontiguousarray(self.timestamps, dtype=np.int64)
            if ts.shape != (n,):
                raise DataError(
                    f"timestamps must have shape ({n},), got {ts.shape}", field="timestamp"
                )
            object.__setattr__(self, "timestamps", ts)
        for name in ("users", "items", "ratings", "timestamps"):
            arr = getattr(self, name)
            if arr is not None:
                arr.flags.writeable = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        users: Any,
        items: Any,
        ratings: Any = None,
        timestamps: Any = None,
        *,
        duplicates: DuplicatePolicy = "error",
        source: str = "<arrays>",
    ) -> Interactions:
        """Build from raw id arrays; ids become dense indices (sorted by id)."""
        user_ids, u = IdMap.from_values(users)
        item_ids, i = IdMap.from_values(items)
        r = None if ratings is None else np.asarray(ratings, dtype=np.float32)
        t = None if timestamps is None else np.asarray(timestamps, dtype=np.int64)
        try:
            u, i, r, t = _resolve_duplicates(u, i, r, t, len(item_ids), duplicates, source)
        except _Duplicate as dup:
            raise dup.error(user_ids.ids[u[dup.row]], item_ids.ids[i[dup.row]]) from None
        return cls(u, i, user_ids, item_ids, r, t)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        user: str = "user",
        item: str = "item",
        rating: str | None = "rating",
        timestamp: str | None = "timestamp",
        duplicates: DuplicatePolicy = "error",
        source: str = "<DataFrame>",
    ) -> Interactions:
        """Build from a DataFrame; ``rating``/``timestamp`` columns are used when present."""
        for col in (user, item):
            if col not in frame.columns:
                raise DataError(
                    f"missing column {col!r} (columns: {list(frame.columns)})",
                    source=source,
                    field=col,
                )
        r = frame[rating].to_numpy() if rating and rating in frame.columns else None
        t = frame[timestamp].to_numpy() if timestamp and timestamp in frame.columns else None
        return cls.from_arrays(
            frame[user].to_numpy(),
            frame[item].to_numpy(),
            r,
            t,
            duplicates=duplicates,
            source=source,
        )

    # ------------------------------------------------------------------ basic views
    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_users(self) -> int:
        """Size of the user vocabulary (not only users present in this subset)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Size of the item vocabulary."""
        return len(self.item_ids)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    @property
    def is_explicit(self) -> bool:
        return self.ratings is not None

    @property
    def density(self) -> float:
        cells = self.n_users * self.n_items
        return len(self) / cells if cells else 0.0

    def __repr__(self) -> str:
        extra = []
        if self.ratings is not None:
            extra.append("ratings")
        if self.timestamps is not None:
            extra.append("timestamps")
        cols = "+".join(["user", "item", *extra])
        return (
            f"Interactions({len(self)} rows [{cols}], {self.n_users} users x {self.n_items} items, "
            f"density {self.density:.4%})"
        )

    def user_counts(self) -> np.ndarray:
        """Interactions per user index (length ``n_users``)."""
        return np.bincount(self.users, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """Interactions per item index (length ``n_items``)."""
        return np.bincount(self.items, minlength=self.n_items)

    def tocsr(self, values: Literal["ratings", "ones"] | np.ndarray = "ratings") -> sp.csr_matrix:
        """A users x items CSR matrix; ``values="ones"`` (or implicit data) gives a binary matrix."""
        if isinstance(values, np.ndarray):
            data = values.astype(np.float32, copy=False)
        elif values == "ratings" and self.ratings is not None:
            data = self.ratings
        else:
            data = np.ones(len(self), dtype=np.float32)
        mat = sp.csr_matrix((data, (self.users, self.items)), shape=self.shape, dtype=np.float32)
        mat.sum_duplicates()
        mat.sort_indices()
        return mat

    def tocsc(self, values: Literal["ratings", "ones"] = "ratings") -> sp.csc_matrix:
        """An items-major (CSC) view of :meth:`tocsr`."""
        return self.tocsr(values).tocsc()

    def user_histories(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-user item lists as CSR ``(indptr, indices)``: items of user u are
        ``indices[indptr[u]:indptr[u+1]]`` (sorted by item index)."""
        mat = self.tocsr("ones")
        return mat.indptr.astype(np.int64), mat.indices.astype(np.int64)

    def to_frame(self, raw_ids: bool = True) -> pd.DataFrame:
        """A DataFrame with columns user, item[, rating][, timestamp] (raw ids by default)."""
        data: dict[str, Any] = {
            "user": self.user_ids.to_ids(self.users) if raw_ids else self.users,
            "item": self.item_ids.to_ids(self.items) if raw_ids else self.items,
        }
        if self.ratings is not None:
            data["rating"] = self.ratings
        if self.timestamps is not None:
            data["timestamp"] = self.timestamps
        return pd.DataFrame(data)

    # ------------------------------------------------------------------ derived containers
    def subset(self, rows: np.ndarray) -> Interactions:
        """Rows selected by a boolean mask or an index array; vocabularies are kept."""
        rows = np.asarray(rows)
        return Interactions(
            self.users[rows],
            self.items[rows],
            self.user_ids,
            self.item_ids,
            None if self.ratings is None else self.ratings[rows],
            None if self.timestamps is None else self.timestamps[rows],
        )

    def concat(self, other: Interactions) -> Interactions:
        """Rows of ``self`` followed by rows of ``other`` (same vocabularies required)."""
        if self.user_ids is not other.user_ids and self.user_ids != other.user_ids:
            raise DataError("cannot concatenate interactions with different user vocabularies")
        if self.item_ids is not other.item_ids and self.item_ids != other.item_ids:
            raise DataError("cannot concatenate interactions with different item vocabularies")

        def cat(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else np.concatenate([a, b])

        return Interactions(
            np.concatenate([self.users, other.users]),
            np.concatenate([self.items, other.items]),
            self.user_ids,
            self.item_ids,
            cat(self.ratings, other.ratings),
            cat(self.timestamps, other.timestamps),
        )

    def compact(self) -> Interactions:
        """Drop users and items without any row from the vocabularies (re-indexing densely)."""
        keep_u = np.flatnonzero(self.user_counts())
        keep_i = np.flatnonzero(self.item_counts())
        remap_u = np.full(self.n_users, -1, dtype=np.int64)
        remap_u[keep_u] = np.arange(len(keep_u))
        remap_i = np.full(self.n_items, -1, dtype=np.int64)
        remap_i[keep_i] = np.arange(len(keep_i))
        return Interactions(
            remap_u[self.users],
            remap_i[self.items],
            self.user_ids.subset(keep_u),
            self.item_ids.subset(keep_i),
            self.ratings,
            self.timestamps,
        )

    def filter_min_counts(
        self, min_user: int = 1, min_item: int = 1, *, iterative: bool = True
    ) -> Interactions:
        """Keep users with >= ``min_user`` and items with >= ``min_item`` rows, then compact.

        ``iterative=True`` repeats until both hold (a k-core), since dropping items can push a
        user below the threshold.
        """
        data = self
        while True:
            keep = (data.user_counts()[data.users] >= min_user) & (
                data.item_counts()[data.items] >= min_item
            )
            if keep.all():
                return data.compact()
            data = data.subset(keep)
            if not iterative:
                return data.compact()

    def to_implicit(self, threshold: float | None = None) -> Interactions:
        """Drop ratings; with ``threshold``, keep only rows whose rating is >= threshold."""
        data = self
        if threshold is not None:
            if self.ratings is None:
                raise DataError("cannot threshold implicit interactions: there are no ratings")
            data = self.subset(self.ratings >= threshold)
        return Interactions(
            data.users, data.items, data.user_ids, data.item_ids, None, data.timestamps
        )


def _resolve_duplicates(
    u: np.ndarray,
    i: np.ndarray,
    r: np.ndarray | None,
    t: np.ndarray | None,
    n_items: int,
    policy: DuplicatePolicy,
    source: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    if policy not in ("error", "last", "first", "mean"):
        raise DataError(f"unknown duplicate policy {policy!r} (use error, last, first or mean)")
    key = u.astype(np.int64) * n_items + i
    # an unstable sort is much cheaper and enough to tell whether any pair repeats
    sorted_key = np.sort(key)
    if not (sorted_key[1:] == sorted_key[:-1]).any():
        return u, i, r, t
    del sorted_key
    order = np.argsort(key, kind="stable")
    sk = key[order]
    dup_next = sk[1:] == sk[:-1]
    if policy == "error":
        # report the earliest row (in input order) that repeats an earlier pair
        later = order[1:][dup_next]
        row = int(later.min())
        first = int(order[np.searchsorted(sk, key[row])])
        raise _Duplicate(row, first, int(dup_next.sum()), source)
    starts = np.flatnonzero(np.concatenate([[True], ~dup_next]))
    if policy == "first":
        rows = np.sort(order[starts])
        return u[rows], i[rows], None if r is None else r[rows], None if t is None else t[rows]
    ends = np.concatenate([starts[1:], [len(sk)]]) - 1
    if policy == "last":
        rows = np.sort(order[ends])
        return u[rows], i[rows], None if r is None else r[rows], None if t is None else t[rows]
    if policy == "mean":
        rows_last = order[ends]
        perm = np.argsort(rows_last, kind="stable")
        rows = rows_last[perm]
        rr = None
        if r is not None:
            rr = (
                np.add.reduceat(r[order].astype(np.float64), starts)
                / np.diff(np.append(starts, len(sk)))
            )[perm]
            rr = rr.astype(np.float32)
        tt = None if t is None else np.maximum.reduceat(t[order], starts)[perm]
        return u[rows], i[rows], rr, tt
    raise AssertionError(policy)  # pragma: no cover - checked above


class _Duplicate(Exception):
    """Internal: a repeated (user, item) pair under the "error" policy (rows are 0-based)."""

    def __init__(self, row: int, first_row: int, count: int, source: str) -> None:
        super().__init__(row)
        self.row, self.first_row, self.count, self.source = row, first_row, count, source

    def error(self, user: Any, item: Any) -> DataError:
        user, item = (x.item() if isinstance(x, np.generic) else x for x in (user, item))
        exc = DataError(
            f"duplicate (user, item) pair ({user!r}, {item!r}) at row {self.row} (0-based), first "
            f"seen at row {self.first_row}; {self.count} duplicate row(s) in total. Choose a "
            "duplicate policy: last, first or mean",
            source=self.source,
        )
        # readers translate these rows into file lines
        exc.row, exc.first_row = self.row, self.first_row  # type: ignore[attr-defined]
        return exc
