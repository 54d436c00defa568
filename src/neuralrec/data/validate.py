"""Turn parsed columns into a validated :class:`Interactions`, naming the row of every problem.

Checks are vectorised; only when one fails is the offending row located (a line of the file, or
a row of a frame), so valid data pays nothing for precise messages.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from neuralrec.data.interactions import DuplicatePolicy, Interactions
from neuralrec.errors import DataError


class Locator:
    """Says where a row came from: a file line (subclasses) or a label like ``row 5``."""

    def __init__(self, row_label: Callable[[int], str] | None = None) -> None:
        self.row_label = row_label

    def line_of(self, row: int) -> int | None:
        """1-based line of data row ``row`` in the source file, when there is one."""
        return None

    def error(self, message: str, row: int, *, source: str, field: str | None = None) -> DataError:
        """A DataError for ``row`` (0-based), located as precisely as the source allows."""
        line = self.line_of(row)
        if line is None:
            label = self.row_label(row) if self.row_label else f"row {row} (0-based)"
            message = f"{label}: {message}"
        return DataError(message, source=source, line=line, field=field)


def build_interactions(
    arrays: dict[str, pa.ChunkedArray],
    locate: Locator,
    *,
    source: str,
    rating_scale: tuple[float, float] | None = None,
    duplicates: DuplicatePolicy = "error",
) -> Interactions:
    """Validate ``arrays`` (keys among user, item, rating, timestamp) and build interactions."""
    users = _ids(arrays.pop("user"), "user", locate, source)
    items = _ids(arrays.pop("item"), "item", locate, source)
    ratings = None
    if "rating" in arrays:
        ratings = _ratings(arrays.pop("rating"), rating_scale, locate, source)
    timestamps = None
    if "timestamp" in arrays:
        timestamps = _timestamps(arrays.pop("timestamp"), locate, source)
    try:
        return Interactions.from_arrays(
            users, items, ratings, timestamps, duplicates=duplicates, source=source
        )
    except DataError as exc:
        row = getattr(exc, "row", None)
        if row is None:
            raise
        line = locate.line_of(row)
        if line is None:
            raise
        first = locate.line_of(exc.first_row)  # type: ignore[attr-defined]
        user, item = _py(users[row]), _py(items[row])
        raise DataError(
            f"duplicate (user, item) pair ({user!r}, {item!r}), first seen at line {first}; "
            "choose a duplicate policy: last, first or mean (--duplicates / duplicates=)",
            source=source,
            line=line,
        ) from None


def _py(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _first(mask: np.ndarray | pa.ChunkedArray) -> int:
    if isinstance(mask, pa.ChunkedArray | pa.Array):
        return int(pc.index(mask, True).as_py())
    return int(np.flatnonzero(mask)[0])


def _ids(arr: pa.ChunkedArray, role: str, locate: Locator, source: str) -> np.ndarray:
    if arr.null_count:
        raise locate.error(f"missing {role} id", _first(pc.is_null(arr)), source=source, field=role)
    kind = arr.type
    if pa.types.is_integer(kind):
        return arr.to_numpy().astype(np.int64, copy=False)
    if pa.types.is_floating(kind):
        values = arr.to_numpy()
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            row = _first(bad)
            msg = f"{role} id {values[row]!r} is not an integer or a string"
            raise locate.error(msg, row, source=source, field=role)
        return values.astype(np.int64)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        arr = arr.cast(pa.string())
    values = arr.to_numpy(zero_copy_only=False)
    empty = pc.equal(pc.utf8_trim_whitespace(arr), "")
    if pc.any(empty).as_py():
        raise locate.error(f"empty {role} id", _first(empty), source=source, field=role)
    return values.astype(object, copy=False)


def _ratings(
    arr: pa.ChunkedArray, scale: tuple[float, float] | None, locate: Locator, source: str
) -> np.ndarray:
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        text = pd.Series(arr.to_numpy(zero_copy_only=False))
        num = pd.to_numeric(text, errors="coerce")
        bad = num.isna() & text.notna() & (text.str.strip().str.lower() != "nan")
        if bad.any():
            row = _first(bad.to_numpy())
            msg = f"rating {text.iloc[row]!r} is not a number"
            raise locate.error(msg, row, source=source, field="rating")
        values = num.to_numpy(dtype=np.float64, na_value=np.nan)
    elif pa.types.is_float32(arr.type) and not arr.null_count:
        values = arr.to_numpy()  # the CSV path: no float64 copy of a large column
    elif (
        pa.types.is_integer(arr.type)
        or pa.types.is_floating(arr.type)
        or pa.types.is_boolean(arr.type)
    ):
        values = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
    else:
        raise DataError(f"rating column has type {arr.type}, not numbers", source=source)
    bad = ~np.isfinite(values)
    if bad.any():
        row = _first(bad)
        what = "missing or NaN rating" if np.isnan(values[row]) else "infinite rating"
        raise locate.error(what, row, source=source, field="rating")
    if scale is not None:
        out = (values < scale[0]) | (values > scale[1])
        if out.any():
            row = _first(out)
            msg = f"rating {float(values[row]):g} is outside the rating scale [{scale[0]:g}, {scale[1]:g}]"
            raise locate.error(msg, row, source=source, field="rating")
    return values.astype(np.float32, copy=False)


def _timestamps(arr: pa.ChunkedArray, locate: Locator, source: str) -> np.ndarray:
    kind = arr.type
    if pa.types.is_integer(kind) and not arr.null_count:
        return arr.to_numpy().astype(np.int64, copy=False)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        seconds = arr.cast(pa.timestamp("s")) if pa.types.is_timestamp(kind) else arr
        values = pd.to_datetime(pd.Series(seconds.to_numpy(zero_copy_only=False)))
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(values)
        if bad.any():
            raise locate.error("missing timestamp", _first(bad), source=source, field="timestamp")
        # fractional epoch seconds are floored: the container keeps whole seconds
        return np.floor(values).astype(np.int64)
    else:
        text = pd.Series(arr.cast(pa.string()).to_numpy(zero_copy_only=False))
        epoch = pd.to_numeric(text, errors="coerce")
        dates = pd.to_datetime(text.where(epoch.isna()), errors="coerce", format="mixed", utc=True)
        bad = (epoch.isna() & dates.isna()).to_numpy()
        if bad.any():
            row = _first(bad)
            value = text.iloc[row]
            msg = (
                "missing timestamp"
                if pd.isna(value)
                else f"timestamp {value!r} is neither epoch seconds nor a date"
            )
            raise locate.error(msg, row, source=source, field="timestamp")
        seconds = dates.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[s]")
        out = seconds.astype(np.int64)
        has_epoch = epoch.notna().to_numpy()
        out[has_epoch] = np.floor(epoch.to_numpy()[has_epoch]).astype(np.int64)
        return out
    if values.isna().any():
        row = _first(values.isna().to_numpy())
        raise locate.error("missing timestamp", row, source=source, field="timestamp")
    if values.dt.tz is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy(dtype="datetime64[s]").astype(np.int64)
