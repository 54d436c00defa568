"""MovieLens file layouts: 100K (``u.data``/``u.item``/``u.user``), 1M and 10M (``::``-separated
``.dat``), 20M/25M/32M and latest-small (``ratings.csv``/``movies.csv``).

Ratings go through the generic reader (so errors name the line); the small metadata files are
parsed here line by line. 100K's ``u.item`` and 1M's ``.dat`` files are latin-1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from neuralrec.data.dataset import Dataset
from neuralrec.data.features import parse_years
from neuralrec.data.interactions import DuplicatePolicy
from neuralrec.data.readers import read_interactions
from neuralrec.errors import DataError

GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
#: ML-1M users.dat occupation codes, as listed in that dataset's README
OCCUPATIONS_1M = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
_NO_GENRE = {"(no genres listed)", "unknown", ""}
_ROLES = ["user", "item", "rating", "timestamp"]
#: metadata files picked up beside a ratings file, by role, in order of preference
ITEM_FILES = ("movies.csv", "movies.dat", "u.item")
USER_FILES = ("users.dat", "u.user")


def detect_layout(directory: Path) -> str | None:
    """``"ml-100k"``, ``"dat"`` or ``"csv"`` for a MovieLens-shaped directory, else None."""
    if (directory / "u.data").is_file():
        return "ml-100k"
    if (directory / "ratings.dat").is_file():
        return "dat"
    if (directory / "ratings.csv").is_file() and (directory / "movies.csv").is_file():
        return "csv"
    return None


def ratings_file(directory: Path, layout: str) -> Path:
    return directory / {"ml-100k": "u.data", "dat": "ratings.dat", "csv": "ratings.csv"}[layout]


def load_movielens(
    directory: Path,
    layout: str,
    *,
    name: str,
    rating_scale: tuple[float, float] | None,
    duplicates: DuplicatePolicy = "error",
) -> Dataset:
    """A MovieLens dataset from its extracted directory, ratings in file order."""
    path = ratings_file(directory, layout)
    if layout == "ml-100k":
        inter = read_interactions(
            path,
            sep="\t",
            header=False,
            names=_ROLES,
            quoting=False,
            rating_scale=rating_scale,
            duplicates=duplicates,
        )
    elif layout == "dat":
        inter = read_interactions(
            path,
            sep="::",
            header=False,
            names=_ROLES,
            quoting=False,
            rating_scale=rating_scale,
            duplicates=duplicates,
        )
    else:
        cols = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
        inter = read_interactions(
            path,
            sep=",",
            header=True,
            columns=cols,
            rating_scale=rating_scale,
            duplicates=duplicates,
        )
    items, users, used = read_metadata(directory)
    info = {"source": str(directory), "layout": layout, "files": [str(path), *used]}
    if name == "ml-latest-small":
        info["release"] = {(100004, 671): "2016", (100836, 610): "2018"}.get(
            (len(inter), int((inter.user_counts() > 0).sum())), "unknown"
        )
    return Dataset(name, inter, items=items, users=users, rating_scale=rating_scale, info=info)


def read_metadata(directory: Path) -> tuple[pd.DataFrame | None, pd.DataFrame | None, list[str]]:
    """Item and user tables from the MovieLens metadata files in ``directory`` (if any)."""
    items = users = None
    used: list[str] = []
    for fname in ITEM_FILES:
        if (directory / fname).is_file():
            items = _ITEM_READERS[fname](directory / fname)
            used.append(str(directory / fname))
            break
    for fname in USER_FILES:
        if (directory / fname).is_file():
            users = _USER_READERS[fname](directory / fname)
            used.append(str(directory / fname))
            break
    return items, users, used


# ---------------------------------------------------------------------------- metadata files
def _lines(path: Path) -> Iterator[tuple[int, str]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # 100K and 1M metadata are latin-1
    for n, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if line.strip():
            yield n, line


def _int(text: str, path: Path, line: int, field: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(
            f"{field} {text!r} is not an integer", source=str(path), line=line, field=field
        ) from None


def _item_frame(ids: list[int], titles: list[str], genres: list[list[str]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"title": titles, "genres": genres}, index=pd.Index(np.array(ids, np.int64), name="item")
    )
    frame["year"] = parse_years(frame["title"].to_numpy())
    return frame


def read_items_100k(path: Path) -> pd.DataFrame:
    """``u.item``: id|title|release date|video date|IMDb URL|19 genre flags."""
    genre_file = path.with_name("u.genre")
    names = list(GENRES_100K)
    if genre_file.is_file():
        names = [line.split("|")[0] for _, line in _lines(genre_file)]
    ids, titles, genres = [], [], []
    for n, line in _lines(path):
        fields = line.split("|")
        if len(fields) != 5 + len(names):
            raise DataError(
                f"malformed row: expected {5 + len(names)} fields separated by "
                f"'|', found {len(fields)}",
                source=str(path),
                line=n,
            )
        ids.append(_int(fields[0], path, n, "movie id"))
        titles.append(fields[1].strip())
        flags = fields[5:]
        genres.append(
            [
                g
                for g, f in zip(names, flags, strict=True)
                if f.strip() == "1" and g not in _NO_GENRE
            ]
        )
    return _item_frame(ids, titles, genres)


def read_movies_dat(path: Path) -> pd.DataFrame:
    """``movies.dat``: MovieID::Title::Genres (titles may contain colons)."""
    ids, titles, genres = [], [], []
    for n, line in _lines(path):
        head, sep1, rest = line.partition("::")
        title, sep2, gen = rest.rpartition("::")
        if not sep1 or not sep2:
            raise DataError(
                "malformed row: expected MovieID::Title::Genres", source=str(path), line=n
            )
        ids.append(_int(head, path, n, "movie id"))
        titles.append(title.strip())
        genres.append([g for g in gen.strip().split("|") if g not in _NO_GENRE])
    return _item_frame(ids, titles, genres)


def read_movies_csv(path: Path) -> pd.DataFrame:
    """``movies.csv``: movieId,title,genres (quoted CSV, UTF-8)."""
    try:
        raw = pd.read_csv(
            path, dtype={"movieId": "int64", "title": str, "genres": str}, keep_default_na=False
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot parse movies file: {exc}", source=str(path)) from None
    for col in ("movieId", "title", "genres"):
        if col not in raw.columns:
            raise DataError(f"missing column {col!r}", source=str(path), field=col)
    genres = [[g for g in s.split("|") if g not in _NO_GENRE] for s in raw["genres"]]
    return _item_frame(raw["movieId"].tolist(), raw["title"].str.strip().tolist(), genres)


def _user_frame(rows: list[tuple[int, str, int, str, str]]) -> pd.DataFrame:
    ids, gender, age, occupation, zips = zip(*rows, strict=True) if rows else ((),) * 5
    return pd.DataFrame(
        {
            "gender": list(gender),
            "age": np.array(age, dtype=np.int64),
            "occupation": list(occupation),
            "zip": list(zips),
        },
        index=pd.Index(np.array(ids, dtype=np.int64), name="user"),
    )


def read_users_100k(path: Path) -> pd.DataFrame:
    """``u.user``: id|age|gender|occupation|zip."""
    rows = []
    for n, line in _lines(path):
        f = line.split("|")
        if len(f) != 5:
            raise DataError(
                f"malformed row: expected 5 fields separated by '|', found {len(f)}",
                source=str(path),
                line=n,
            )
        rows.append((_int(f[0], path, n, "user id"), f[2], _int(f[1], path, n, "age"), f[3], f[4]))
    return _user_frame(rows)


def read_users_dat(path: Path) -> pd.DataFrame:
    """``users.dat``: UserID::Gender::Age::Occupation::Zip-code; age is the bracket's lower
    bound (1, 18, 25, ...), occupation codes become the README's names."""
    rows = []
    for n, line in _lines(path):
        f = line.split("::")
        if len(f) != 5:
            raise DataError(
                f"malformed row: expected 5 fields separated by '::', found {len(f)}",
                source=str(path),
                line=n,
            )
        occ = _int(f[3], path, n, "occupation")
        if not 0 <= occ < len(OCCUPATIONS_1M):
            raise DataError(
                f"unknown occupation code {occ}", source=str(path), line=n, field="occupation"
            )
        rows.append(
            (
                _int(f[0], path, n, "user id"),
                f[1],
                _int(f[2], path, n, "age"),
                OCCUPATIONS_1M[occ],
                f[4],
            )
        )
    return _user_frame(rows)


_ITEM_READERS = {
    "movies.csv": read_movies_csv,
    "movies.dat": read_movies_dat,
    "u.item": read_items_100k,
}
_USER_READERS = {"users.dat": read_users_dat, "u.user": read_users_100k}
