"""Read interactions from CSV/TSV/Parquet files and DataFrames, failing loudly and precisely.

Files are parsed with ``pyarrow.csv`` (multi-threaded, no Python loop per row). When anything
is wrong, the file is re-scanned line by line to name the offending line (1-based, counting the
header), so the fast path pays nothing for exact error messages.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from neuralrec.data.columns import ColumnMap, TextFormat, detect_format, resolve_columns
from neuralrec.data.interactions import DuplicatePolicy, Interactions
from neuralrec.data.validate import Locator, build_interactions
from neuralrec.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")


def read_interactions(
    path: str | Path,
    *,
    columns: ColumnMap | None = None,
    sep: str | None = None,
    header: bool | None = None,
    names: list[str] | None = None,
    quoting: bool = True,
    rating_scale: tuple[float, float] | None = None,
    duplicates: DuplicatePolicy = "error",
) -> Interactions:
    """Interactions from a delimited text or Parquet file, rows in file order.

    ``columns`` maps roles to column names (see :func:`neuralrec.data.columns.resolve_columns`);
    ``sep``/``header`` are sniffed when None; ``names`` names the columns of a header-less file.
    Every problem raises :class:`DataError` naming the file and line (or field).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", source=str(path))
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return _read_parquet(path, columns, rating_scale, duplicates)
    fmt = detect_format(path, sep=sep, header=header, names=names, columns=columns, quoting=quoting)
    mapping = resolve_columns(fmt.names, columns, source=str(path), positional=not fmt.header)
    table = _arrow_read(path, fmt, mapping, rating_scale)
    if table.num_rows == 0:
        raise DataError("no data rows (the file holds only a header)", source=str(path), line=2)
    arrays = {role: table.column(col) for role, col in mapping.items()}
    del table
    locate = _FileLocator(path, fmt)
    return build_interactions(
        arrays, locate, source=str(path), rating_scale=rating_scale, duplicates=duplicates
    )


def read_frame(
    frame: pd.DataFrame,
    *,
    columns: ColumnMap | None = None,
    rating_scale: tuple[float, float] | None = None,
    duplicates: DuplicatePolicy = "error",
    source: str = "<DataFrame>",
) -> Interactions:
    """Interactions from a DataFrame, with the same column mapping and checks as files."""
    names = [str(c) for c in frame.columns]
    mapping = resolve_columns(names, columns, source=source, positional=False)
    frame = frame.rename(columns={c: str(c) for c in frame.columns})
    arrays = {role: pa.chunked_array([_to_arrow(frame[col])]) for role, col in mapping.items()}
    if not len(frame):
        raise DataError("no rows", source=source)
    labels = frame.index
    return build_interactions(
        arrays,
        Locator(row_label=lambda r: f"row {_label(labels[r])!r}"),
        source=source,
        rating_scale=rating_scale,
        duplicates=duplicates,
    )


def _label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _to_arrow(series: pd.Series) -> pa.Array:
    try:
        return pa.array(series.to_numpy(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(series.astype(str).to_numpy(), from_pandas=True)


def _read_parquet(
    path: Path,
    columns: ColumnMap | None,
    rating_scale: tuple[float, float] | None,
    duplicates: DuplicatePolicy,
) -> Interactions:
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"not a readable Parquet file: {exc}", source=str(path)) from None
    mapping = resolve_columns(list(schema.names), columns, source=str(path), positional=False)
    table = pq.read_table(path, columns=list(mapping.values()))
    if table.num_rows == 0:
        raise DataError("no rows", source=str(path))
    arrays = {role: table.column(col) for role, col in mapping.items()}
    return build_interactions(
        arrays,
        Locator(row_label=lambda r: f"row {r + 1}"),
        source=str(path),
        rating_scale=rating_scale,
        duplicates=duplicates,
    )


# ---------------------------------------------------------------------------- text files
_SUB = "\x1f"  # stands in for a multi-character separator, which pyarrow cannot split on


def _arrow_read(
    path: Path, fmt: TextFormat, mapping: dict[str, str], scale: tuple[float, float] | None
) -> pa.Table:
    """Parse with pyarrow; on failure, re-scan to raise a DataError that names the line."""
    types: dict[str, Any] = {}
    if "rating" in mapping:
        types[mapping["rating"]] = pa.float32()
    try:
        table = _arrow_parse(path, fmt, mapping, types, fmt.encoding)
        # pyarrow types a text column holding invalid UTF-8 as binary instead of failing
        if fmt.encoding == "latin-1" or not any(pa.types.is_binary(t) for t in table.schema.types):
            return table
        error: Exception = pa.ArrowInvalid("UTF8: a column is not valid UTF-8")
    except pa.ArrowInvalid as exc:
        error = exc
    if "UTF8" in str(error) and fmt.encoding != "latin-1":
        try:  # bytes beyond the sniffed sample are not UTF-8: read the file as latin-1
            return _arrow_parse(path, fmt, mapping, types, "latin-1")
        except pa.ArrowInvalid as exc:
            error = exc
    found = scan_for_error(path, fmt, mapping, scale)
    raise found or DataError(f"cannot parse: {error}", source=str(path))


def _arrow_parse(
    path: Path, fmt: TextFormat, mapping: dict[str, str], types: dict[str, Any], encoding: str
) -> pa.Table:
    read = pcsv.ReadOptions(
        column_names=fmt.names, skip_rows=1 if fmt.header else 0, encoding=encoding
    )
    single = len(fmt.sep) == 1
    parse = pcsv.ParseOptions(
        delimiter=fmt.sep if single else _SUB,
        quote_char='"' if fmt.quoting and single else False,
    )
    convert = pcsv.ConvertOptions(
        include_columns=list(mapping.values()), column_types=types, strings_can_be_null=True
    )
    if single:
        return pcsv.read_csv(path, read, parse, convert)
    data = path.read_bytes().replace(fmt.sep.encode(), _SUB.encode())
    return pcsv.read_csv(pa.BufferReader(data), read, parse, convert)


def iter_rows(path: Path, fmt: TextFormat) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, fields) of every data row, skipping empty lines as pyarrow does."""
    seen_header = not fmt.header
    encoding = "utf-8-sig" if fmt.encoding == "utf-8" else fmt.encoding  # drop a BOM
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        if len(fmt.sep) == 1 and fmt.quoting:
            reader = csv.reader(fh, delimiter=fmt.sep)
            rows: Iterator[tuple[int, list[str]]] = ((reader.line_num, f) for f in reader)
        else:
            rows = ((n, line.rstrip("\r\n").split(fmt.sep)) for n, line in enumerate(fh, 1))
        for n, fields in rows:
            if not fields or fields == [""]:
                continue
            if not seen_header:
                seen_header = True
                continue
            yield n, fields


def scan_for_error(
    path: Path, fmt: TextFormat, mapping: dict[str, str], scale: tuple[float, float] | None
) -> DataError | None:
    """The first malformed row as a DataError with its line, or None if every row is fine."""
    width = len(fmt.names)
    pos = {role: fmt.names.index(col) for role, col in mapping.items()}
    for line, fields in iter_rows(path, fmt):
        where = {"source": str(path), "line": line}
        if len(fields) != width:
            return DataError(
                f"malformed row: expected {width} fields separated by {fmt.sep!r}, "
                f"found {len(fields)}: {fmt.sep.join(fields)[:80]!r}",
                **where,
            )
        for role in ("user", "item"):
            if not fields[pos[role]].strip():
                return DataError(f"empty {role} id", field=mapping[role], **where)
        if "rating" in pos:
            err = _check_rating(fields[pos["rating"]], scale)
            if err:
                return DataError(err, field=mapping["rating"], **where)
    return None


def _check_rating(text: str, scale: tuple[float, float] | None) -> str | None:
    try:
        value = float(text)
    except ValueError:
        return f"rating {text!r} is not a number" if text.strip() else "missing rating"
    if np.isnan(value):
        return "rating is NaN"
    if scale is not None and not scale[0] <= value <= scale[1]:
        return f"rating {value:g} is outside the rating scale [{scale[0]:g}, {scale[1]:g}]"
    return None


class _FileLocator(Locator):
    """Maps a data row index to its line in the file (by re-scanning: errors only)."""

    def __init__(self, path: Path, fmt: TextFormat) -> None:
        super().__init__(row_label=None)
        self.path, self.fmt = path, fmt

    def line_of(self, row: int) -> int | None:
        for i, (line, _) in enumerate(iter_rows(self.path, self.fmt)):
            if i == row:
                return line
        return None
