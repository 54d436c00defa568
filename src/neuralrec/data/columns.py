"""Column mappings and text-format detection for interaction files.

A mapping names the file's column for each role (``user``, ``item``, ``rating``,
``timestamp``); roles left out are found by common names (``userId``, ``movie_id``, ``score``,
``ts``...). Header-less files are mapped by position: user, item, rating, timestamp.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from neuralrec.errors import ConfigError, DataError

ROLES = ("user", "item", "rating", "timestamp")
REQUIRED = ("user", "item")
_SYNONYMS = {
    "user": (
        "user",
        "u",
        "userid",
        "uid",
        "users",
        "customer",
        "customerid",
        "visitorid",
        "member",
    ),
    "item": (
        "item",
        "i",
        "itemid",
        "iid",
        "movie",
        "movieid",
        "mid",
        "product",
        "productid",
        "asin",
    ),
    "rating": ("rating", "r", "ratings", "score", "stars", "value", "preference", "rate"),
    "timestamp": ("timestamp", "t", "time", "ts", "datetime", "date", "unixtime", "unixtimestamp"),
}
#: candidate separators, tried in this order when none is given
SEPARATORS = ("::", "\t", ",", ";", "|", " ")
_SAMPLE_BYTES = 1 << 16
_SAMPLE_LINES = 50

ColumnMap = Mapping[str, "str | int | None"]


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def parse_columns(text: str | None) -> dict[str, str | None]:
    """Parse ``"user=u,item=i,rating=r"`` into ``{"user": "u", ...}``.

    ``rating=none`` says the file has no rating column even if one looks like it (implicit
    data). Raises ConfigError on an unknown role or a malformed pair.
    """
    out: dict[str, str | None] = {}
    if not text or not text.strip():
        return out
    for part in text.split(","):
        role, eq, col = part.partition("=")
        role, col = role.strip().lower(), col.strip()
        if not eq or not col:
            raise ConfigError(f"--columns: expected ROLE=COLUMN, got {part.strip()!r}")
        if role not in ROLES:
            raise ConfigError(f"--columns: unknown role {role!r} (use {', '.join(ROLES)})")
        if role in out:
            raise ConfigError(f"--columns: role {role!r} given twice")
        out[role] = None if col.lower() == "none" else col
    return out


_SEP_ALIASES = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}


def parse_sep(text: str | None) -> str | None:
    """A separator as typed on a command line: ``\\t`` or ``tab`` mean a tab, ``comma``,
    ``semicolon``, ``pipe``, ``space`` their character; anything else is taken literally."""
    if text is None or text == "":
        return None
    return _SEP_ALIASES.get(text.lower() if len(text) > 2 else text, text)


def resolve_columns(
    names: list[str], columns: ColumnMap | None, *, source: str, positional: bool
) -> dict[str, str]:
    """Map each role to one of ``names``; roles without a column are left out.

    Explicit entries win (a name, or a 0-based position for header-less files); other roles are
    auto-detected by common names, or by position when ``positional`` (no header).
    """
    columns = dict(columns or {})
    unknown = [r for r in columns if r not in ROLES]
    if unknown:
        raise ConfigError(f"unknown column role(s) {unknown} (use {', '.join(ROLES)})")
    out: dict[str, str] = {}
    for role, col in columns.items():
        if col is None:
            continue
        key = str(col)
        if key not in names and key.isdigit() and int(key) < len(names):
            key = names[int(key)]
        if key not in names:
            raise DataError(
                f"missing column {col!r} for {role} (columns: {names})", source=source, field=key
            )
        out[role] = key
    taken = set(out.values())
    for pos, role in enumerate(ROLES):
        if role in out or role in columns:
            continue
        if positional:
            if pos < len(names) and names[pos] not in taken:
                out[role] = names[pos]
                taken.add(names[pos])
            continue
        for name in names:
            if name not in taken and _norm(name) in _SYNONYMS[role]:
                out[role] = name
                taken.add(name)
                break
    for role in REQUIRED:
        if role not in out:
            raise DataError(
                f"missing column: no {role} column among {names}; name it, e.g. "
                f"--columns {role}=<column> (or columns={{'{role}': ...}})",
                source=source,
                field=role,
            )
    return out


@dataclass(frozen=True)
class TextFormat:
    """How a delimited text file is laid out: separator, header, column names, encoding."""

    sep: str
    header: bool
    names: list[str]
    encoding: str = "utf-8"
    quoting: bool = True


def split_line(line: str, sep: str, quoting: bool = True) -> list[str]:
    """Fields of one line (quotes honoured for one-character separators)."""
    if len(sep) == 1 and quoting:
        return next(csv.reader([line], delimiter=sep), [])
    return line.split(sep)


def sample_lines(path: Path) -> tuple[list[tuple[int, str]], str]:
    """The first non-empty lines with their 1-based numbers, and the text encoding."""
    with open(path, "rb") as fh:
        raw = fh.read(_SAMPLE_BYTES)
        complete = len(fh.read(1)) == 0
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark (pyarrow skips it too)
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the sample's end is not an encoding problem
        if exc.start >= len(raw) - 3 and not complete:
            text, encoding = raw[: exc.start].decode("utf-8"), "utf-8"
        else:
            text, encoding = raw.decode("latin-1"), "latin-1"
    # split on newlines only: str.splitlines also breaks on \x1c, \x85... and would miscount
    lines = [s.rstrip("\r") for s in text.split("\n")]
    if not complete and lines:
        lines = lines[:-1]  # the last one may be cut short
    numbered = [(n, s) for n, s in enumerate(lines, 1) if s.strip()]
    return numbered[:_SAMPLE_LINES], encoding


def sniff_separator(lines: list[str]) -> str | None:
    """The first candidate separator that splits the first line into >= 2 fields and agrees
    on most sample lines (a few malformed rows must not hide the separator: they are reported,
    with their line, by the parser)."""
    for sep in SEPARATORS:
        counts = [len(split_line(line, sep)) for line in lines]
        agree = sum(c == counts[0] for c in counts)
        allowed = max(1, len(counts) // 5) if len(counts) >= 3 else 0
        if counts[0] >= 2 and agree >= len(counts) - allowed:
            return sep
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def detect_format(
    path: Path,
    *,
    sep: str | None = None,
    header: bool | None = None,
    names: list[str] | None = None,
    columns: ColumnMap | None = None,
    quoting: bool = True,
) -> TextFormat:
    """Separator, header and column names of a delimited text file (sniffed where not given)."""
    source = str(path)
    sample, encoding = sample_lines(path)
    if not sample:
        raise DataError("the file is empty (no data rows)", source=source, line=1)
    lines = [s for _, s in sample]
    if sep is None:
        sep = sniff_separator(lines)
        if sep is None:
            raise DataError(
                "cannot detect the separator: no candidate ("
                + ", ".join(repr(s) for s in SEPARATORS)
                + ") splits the first lines into the same number of fields; pass sep=...",
                source=source,
                line=sample[0][0],
            )
    first = split_line(lines[0], sep, quoting)
    if len(first) < 2:
        better = sniff_separator(lines)
        hint = f"; the file looks separated by {better!r}: pass sep={better!r}" if better else ""
        raise DataError(
            f"wrong separator? splitting on {sep!r} gives 1 field{hint}",
            source=source,
            line=sample[0][0],
        )
    if header is None:
        header = _looks_like_header(first, lines, sep, quoting, columns)
    if names is None:
        names = [f.strip() for f in first] if header else [str(i) for i in range(len(first))]
    elif len(names) != len(first):
        raise DataError(
            f"expected {len(names)} fields ({', '.join(names)}) separated by {sep!r}, "
            f"found {len(first)}",
            source=source,
            line=sample[0][0],
        )
    return TextFormat(sep, bool(header), list(names), encoding, quoting)


def _looks_like_header(
    first: list[str], lines: list[str], sep: str, quoting: bool, columns: ColumnMap | None
) -> bool:
    # positions (digits) in the mapping say nothing about a header; names do
    wanted = {str(v) for v in (columns or {}).values() if v is not None and not str(v).isdigit()}
    known = {s for syn in _SYNONYMS.values() for s in syn}
    if any(f.strip() in wanted or _norm(f) in known for f in first):
        return True
    if len(lines) < 2:
        return not all(_is_number(f) for f in first)
    second = split_line(lines[1], sep, quoting)
    # a column that is numeric below but not on the first line marks a header
    return any(not _is_number(a) and _is_number(b) for a, b in zip(first, second, strict=False))
