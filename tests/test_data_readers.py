"""Reading interaction files and frames: column mapping, sniffing, and every bad-input error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuralrec.data import load_dataset, parse_columns
from neuralrec.data.columns import parse_sep, resolve_columns, sniff_separator
from neuralrec.data.readers import read_frame, read_interactions
from neuralrec.errors import ConfigError, DataError, DatasetNotFoundError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURALREC_CACHE_DIR", str(tmp_path / "cache"))


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_movielens_style_csv_keeps_file_order_and_types(tmp_path):
    path = write(
        tmp_path,
        "r.csv",
        "userId,movieId,rating,timestamp\n7,10,4,100\n1,11,3.5,101\n7,3,5,99\n",
    )
    data = read_interactions(path)
    frame = data.to_frame()
    assert frame["user"].tolist() == [7, 1, 7]
    assert frame["item"].tolist() == [10, 11, 3]
    assert frame["rating"].tolist() == [4.0, 3.5, 5.0]
    assert frame["timestamp"].tolist() == [100, 101, 99]
    assert data.user_ids.is_integer and data.n_users == 2 and data.n_items == 3


@pytest.mark.parametrize(
    ("text", "sep"),
    [
        ("1\t10\t4\n2\t11\t3\n", "\t"),
        ("1;10;4\n2;11;3\n", ";"),
        ("1|10|4\n2|11|3\n", "|"),
        ("1::10::4\n2::11::3\n", "::"),
        ('u,i,r\n1,"a, b",4\n2,c,3\n', ","),
    ],
)
def test_separator_is_sniffed(tmp_path, text, sep):
    path = write(tmp_path, "r.txt", text)
    lines = [s for s in text.splitlines() if s]
    assert sniff_separator(lines) == sep
    data = read_interactions(path)
    assert len(data) == 2
    assert data.ratings.tolist() == [4.0, 3.0]


def test_headerless_file_is_mapped_by_position(tmp_path):
    path = write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    data = read_interactions(path)
    assert data.to_frame()["user"].tolist() == [196, 186]
    assert data.timestamps.tolist() == [881250949, 891717742]


def test_explicit_columns_and_auto_detected_names(tmp_path):
    path = write(tmp_path, "r.csv", "who,what,stars,extra\na,x,1,zzz\nb,y,2,zzz\n")
    with pytest.raises(DataError, match="no user column"):
        read_interactions(path)
    data = read_interactions(path, columns={"user": "who", "item": "what"})
    assert data.ratings.tolist() == [1.0, 2.0]  # "stars" is recognised as the rating
    assert list(data.user_ids.ids) == ["a", "b"]
    data = read_interactions(path, columns=parse_columns("user=who,item=what,rating=none"))
    assert data.ratings is None


def test_positional_columns_for_headerless_file(tmp_path):
    path = write(tmp_path, "r.tsv", "5\tx\t1\n4\ty\t2\n")
    data = read_interactions(path, columns={"user": 1, "item": 0, "rating": 2})
    assert list(data.user_ids.ids) == ["x", "y"]
    assert list(data.item_ids.ids) == [4, 5]


def test_parse_columns_and_sep():
    assert parse_columns("user=u, item=i,rating=r") == {"user": "u", "item": "i", "rating": "r"}
    assert parse_columns("") == {}
    for bad in ("user", "user=", "owner=x", "user=a,user=b"):
        with pytest.raises(ConfigError):
            parse_columns(bad)
    assert parse_sep("\\t") == "\t" and parse_sep("tab") == "\t" and parse_sep("::") == "::"
    assert parse_sep(None) is None and parse_sep(",") == ","


def test_resolve_columns_reports_missing_explicit_column():
    with pytest.raises(DataError, match="missing column 'rate'") as err:
        resolve_columns(["user", "item"], {"rating": "rate"}, source="f.csv", positional=False)
    assert err.value.field == "rate" and err.value.source == "f.csv"
    with pytest.raises(ConfigError):
        resolve_columns(["user", "item"], {"owner": "user"}, source="f.csv", positional=False)


def test_string_ids_and_date_timestamps(tmp_path):
    path = write(
        tmp_path,
        "r.csv",
        "user_id,item_id,score,time\nalice,x1,1,2015-01-01 00:00:10\nbob,y2,2,2015-01-02\n",
    )
    data = read_interactions(path)
    assert list(data.user_ids.ids) == ["alice", "bob"]
    assert data.timestamps.tolist() == [1420070410, 1420156800]


def test_float_timestamps_are_floored_and_latin1_is_read(tmp_path):
    path = write(tmp_path, "r.csv", "user,item,ts\nJosé,x,10.9\nZoë,y,11\n", encoding="latin-1")
    data = read_interactions(path)
    assert data.timestamps.tolist() == [10, 11]
    assert "José" in list(data.user_ids.ids)


def test_parquet_and_dataframe_inputs(tmp_path):
    frame = pd.DataFrame({"uid": [1, 2, 2], "iid": ["a", "b", "a"], "rating": [1.0, 2.0, 3.0]})
    path = tmp_path / "r.parquet"
    frame.to_parquet(path)
    from_file = read_interactions(path)
    from_frame = load_dataset(frame)
    for data in (from_file, from_frame.interactions):
        assert data.to_frame()["item"].tolist() == ["a", "b", "a"]
        assert data.ratings.tolist() == [1.0, 2.0, 3.0]


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("name", "text", "kwargs", "line", "message"),
    [
        ("malformed", "user,item,rating\n1,2,3\n\n1,3\n2,2,4\n", {}, 4, "expected 3 fields"),
        ("nan", "user,item,rating\n1,2,3\n1,3,NaN\n", {}, 3, "NaN"),
        ("blank rating", "user,item,rating\n1,2,3\n1,3,\n", {}, 3, "missing or NaN"),
        ("non-numeric", "user,item,rating\n1,2,3\n\n1,3,good\n", {}, 4, "'good' is not a number"),
        (
            "out of range",
            "user,item,rating\n1,2,3\n1,3,6\n",
            {"rating_scale": (1, 5)},
            3,
            "outside the rating scale",
        ),
        ("empty id", "user,item,rating\n1,2,3\n,3,4\n", {}, 3, "missing user id"),
        ("empty file", "", {}, 1, "empty"),
        ("header only", "user,item,rating\n", {}, 2, "no data rows"),
        ("duplicate", "user,item,rating\n1,2,3\n1,3,4\n\n1,2,5\n", {}, 5, "first seen at line 2"),
        ("wrong sep", "user;item;rating\n1;2;3\n", {"sep": ","}, 1, "pass sep=';'"),
        ("bad timestamp", "user,item,timestamp\n1,2,5\n1,3,soon\n", {}, 3, "'soon'"),
        ("no separator", "just one column\nfoo\n", {}, 1, "cannot detect the separator"),
        ("dat malformed", "1::2::3::4\n1::3::4\n", {"sep": "::"}, 2, "expected 4 fields"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, name, text, kwargs, line, message):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(DataError, match=message) as err:
        read_interactions(path, **kwargs)
    assert err.value.source == str(path), name
    assert err.value.line == line, (name, str(err.value))
    assert f"line {line}" in str(err.value)


def test_bad_rating_field_is_named(tmp_path):
    path = write(tmp_path, "bad.csv", "u,i,score\n1,2,x\n")
    with pytest.raises(DataError) as err:
        read_interactions(path)
    assert err.value.field == "score" and err.value.line == 2


def test_duplicate_policies(tmp_path):
    path = write(tmp_path, "d.csv", "user,item,rating,timestamp\n1,2,1,10\n1,3,4,11\n1,2,5,12\n")
    with pytest.raises(DataError, match="duplicate"):
        load_dataset(path)
    last = load_dataset(path, duplicates="last").interactions.to_frame()
    first = load_dataset(path, duplicates="first").interactions.to_frame()
    mean = load_dataset(path, duplicates="mean").interactions.to_frame()
    assert last.values.tolist() == [[1, 3, 4, 11], [1, 2, 5, 12]]
    assert first.values.tolist() == [[1, 2, 1, 10], [1, 3, 4, 11]]
    assert mean.values.tolist() == [[1, 3, 4, 11], [1, 2, 3, 12]]
    with pytest.raises(ConfigError):
        load_dataset(path, duplicates="max")


def test_dataframe_errors_name_the_row():
    frame = pd.DataFrame(
        {"user": [1, 2, 3], "item": [1, 1, 1], "rating": [1.0, np.nan, 2.0]}, index=[10, 11, 12]
    )
    with pytest.raises(DataError, match="row 11: missing or NaN rating"):
        read_frame(frame)
    frame["rating"] = ["1", "2", "three"]
    with pytest.raises(DataError, match="row 12: rating 'three' is not a number"):
        read_frame(frame)
    with pytest.raises(DataError, match="missing column"):
        read_frame(frame[["user", "rating"]])
    dup = pd.DataFrame({"user": ["a", "a"], "item": ["x", "x"]})
    with pytest.raises(DataError, match=r"duplicate \(user, item\) pair \('a', 'x'\)"):
        read_frame(dup)


def test_unknown_path_and_ambiguous_directory(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="not a known name"):
        load_dataset(tmp_path / "nope.csv")
    write(tmp_path, "a.csv", "user,item\n1,2\n")
    write(tmp_path, "b.csv", "user,item\n1,2\n")
    with pytest.raises(DatasetNotFoundError, match="cannot tell which file"):
        load_dataset(tmp_path)


def test_non_utf8_bytes_after_the_sniffed_sample_are_read_as_latin1(tmp_path):
    rows = "".join(f"u{i},i{i % 7},3\n" for i in range(9000))  # > 64 KiB of ASCII first
    path = tmp_path / "r.csv"
    path.write_bytes(("user,item,rating\n" + rows + "Zoë,i1,4\n").encode("latin-1"))
    data = read_interactions(path)
    assert len(data) == 9001 and "Zoë" in set(data.user_ids.ids)


def test_a_utf8_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes(b"\xef\xbb\xbf1\t2\t3\n4\t5\t1\n")
    data = read_interactions(path)
    assert data.user_ids.is_integer and list(data.user_ids.ids) == [1, 4]
    path.write_bytes(b"\xef\xbb\xbfuser,item\n1,2\n1,2\n")
    with pytest.raises(DataError) as err:
        read_interactions(path)
    assert err.value.line == 3
