"""``load_dataset``: one entry point for named datasets, files, directories and DataFrames."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from neuralrec.data import registry
from neuralrec.data.cache import cached_load
from neuralrec.data.columns import parse_columns, parse_sep
from neuralrec.data.dataset import Dataset
from neuralrec.data.download import Progress
from neuralrec.data.download import download as download_archive
from neuralrec.data.interactions import DuplicatePolicy
from neuralrec.data.movielens import (
    ITEM_FILES,
    USER_FILES,
    detect_layout,
    load_movielens,
    ratings_file,
    read_metadata,
)
from neuralrec.data.readers import read_frame, read_interactions
from neuralrec.errors import ConfigError, DatasetNotFoundError

_POLICIES = ("error", "last", "first", "mean")
#: files taken as "the ratings" of a directory that is not a MovieLens layout
_RATINGS_NAMES = ("ratings.csv", "ratings.tsv", "ratings.parquet", "ratings.dat", "u.data")
_DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", ".parquet", ".pq")


def load_dataset(
    name_or_path: str | os.PathLike[str] | pd.DataFrame,
    *,
    columns: Mapping[str, str | int | None] | str | None = None,
    sep: str | None = None,
    data_home: str | os.PathLike[str] | None = None,
    duplicates: DuplicatePolicy = "error",
    download: bool = True,
    cache: bool = True,
    rating_scale: tuple[float, float] | None = None,
    header: bool | None = None,
    progress: Progress | None = None,
) -> Dataset:
    """Load a dataset by name (``ml-100k``, ``ml-1m``, ``ml-10m``, ``ml-20m``, ``ml-25m``,
    ``ml-32m``, ``ml-latest-small``), from a CSV/TSV/Parquet file or directory, or from a
    DataFrame.

    Named datasets are looked up in ``data_home`` (default ``$NEURALREC_DATA_HOME``) first, then
    in the cache, then downloaded (checksum-verified) unless ``download=False``. For files,
    ``columns`` maps roles to columns (a dict or ``"user=u,item=i,rating=r"``; unnamed roles are
    auto-detected), ``sep`` (``","``, ``"\\t"``/``"tab"``, ``"::"``...) and ``header`` are
    sniffed when None, and ``rating_scale`` turns on a range check. MovieLens metadata files
    beside a ratings file (movies.csv, movies.dat, u.item, users.dat, u.user) are read as
    item/user metadata. Parsed files are cached unless ``cache=False``. Rows stay in file
    order; problems raise ``DataError`` naming the file and line.
    """
    if duplicates not in _POLICIES:
        raise ConfigError(f"unknown duplicate policy {duplicates!r} (use {', '.join(_POLICIES)})")
    cols = parse_columns(columns) if isinstance(columns, str) else columns
    sep = parse_sep(sep)
    if isinstance(name_or_path, pd.DataFrame):
        inter = read_frame(
            name_or_path, columns=cols, rating_scale=rating_scale, duplicates=duplicates
        )
        return Dataset("<DataFrame>", inter, rating_scale=rating_scale, info={"cache": "off"})
    text = os.fspath(name_or_path)
    # only a plain string can be a dataset name: a Path object always means a path
    spec = registry.get_spec(text) if isinstance(name_or_path, str) else None
    if spec is not None:
        if cols or sep is not None or header is not None:
            raise ConfigError(
                f"{spec.name} is a known dataset: columns/sep/header apply to files only"
            )
        directory = _locate(spec, registry.data_home(data_home), download, progress)
        return _load_layout(directory, spec.format, spec.name, spec.rating_scale, duplicates, cache)
    path = Path(text).expanduser()
    home = registry.data_home(data_home)
    if not path.exists() and home is not None and (home / text).exists():
        path = home / text  # a folder of the offline directory, e.g. "ml-1m-triples"
    if not path.exists():
        raise DatasetNotFoundError(
            f"unknown dataset {text!r}: not a known name ({', '.join(registry.known_names())}), "
            "no such file or directory, and nothing of that name in the offline directory "
            f"({home if home is not None else '$NEURALREC_DATA_HOME unset'})"
        )
    if path.is_dir():
        layout = detect_layout(path)
        if layout is not None and not cols and sep is None and header is None:
            named = registry.get_spec(path.name)
            scale = rating_scale or (named.rating_scale if named else None)
            return _load_layout(path, layout, path.name, scale, duplicates, cache)
        path = _ratings_in(path)
    options = {
        "kind": "file",
        "columns": dict(cols) if cols else None,
        "sep": sep,
        "header": header,
        "rating_scale": list(rating_scale) if rating_scale else None,
        "duplicates": duplicates,
    }

    def build() -> Dataset:
        inter = read_interactions(
            path,
            columns=cols,
            sep=sep,
            header=header,
            rating_scale=rating_scale,
            duplicates=duplicates,
        )
        items, users, used = read_metadata(path.parent)
        info = {"source": str(path), "layout": "file", "files": [str(path), *used]}
        return Dataset(text, inter, items=items, users=users, rating_scale=rating_scale, info=info)

    sources = [path, *_metadata_files(path.parent)]
    return cached_load(build, name=text, sources=sources, options=options, enabled=cache)


def _locate(
    spec: registry.DatasetSpec, home: Path | None, download: bool, progress: Progress | None
) -> Path:
    """The directory holding ``spec``'s files: offline copy, cache, offline zip or download."""
    found = registry.offline_dir(spec, home) or registry.cached_dir(spec)
    if found is not None:
        return found
    archive = registry.offline_zip(spec, home)
    if archive is not None:
        return download_archive(spec, archive=archive)
    if not download:
        raise registry.not_found(spec, home, "Downloading is switched off")
    return download_archive(spec, progress=progress)


def _load_layout(
    directory: Path,
    layout: str,
    name: str,
    scale: tuple[float, float] | None,
    duplicates: DuplicatePolicy,
    cache: bool,
) -> Dataset:
    options: dict[str, Any] = {
        "kind": "movielens",
        "layout": layout,
        "name": name,
        "rating_scale": list(scale) if scale else None,
        "duplicates": duplicates,
    }
    sources = [ratings_file(directory, layout), *_metadata_files(directory)]
    return cached_load(
        lambda: load_movielens(
            directory, layout, name=name, rating_scale=scale, duplicates=duplicates
        ),
        name=name,
        sources=sources,
        options=options,
        enabled=cache,
    )


def _metadata_files(directory: Path) -> list[Path]:
    return [
        directory / f for f in (*ITEM_FILES, *USER_FILES, "u.genre") if (directory / f).is_file()
    ]


def _ratings_in(directory: Path) -> Path:
    """The ratings file of a directory: a conventional name, else its only data file."""
    for name in _RATINGS_NAMES:
        if (directory / name).is_file():
            return directory / name
    meta = {*ITEM_FILES, *USER_FILES, "links.csv", "tags.csv"}
    data = sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() in _DATA_SUFFIXES and p.name not in meta
    )
    if len(data) == 1:
        return data[0]
    listing = ", ".join(p.name for p in data) or "no data files"
    raise DatasetNotFoundError(
        f"{directory}: cannot tell which file holds the interactions ({listing}); "
        "name the file itself, or call it ratings.csv"
    )


def dataset_status(name: str, data_home: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Where a named dataset is available without downloading: offline copy, offline zip,
    extracted cache."""
    spec = registry.get_spec(name)
    if spec is None:
        raise ConfigError(f"unknown dataset {name!r}")
    home = registry.data_home(data_home)
    offline = registry.offline_dir(spec, home)
    archive = registry.offline_zip(spec, home)
    cached = registry.cached_dir(spec)
    return {
        "name": spec.name,
        "title": spec.title,
        "offline": str(offline) if offline else None,
        "offline_zip": str(archive) if archive else None,
        "cached": str(cached) if cached else None,
        "available": bool(offline or archive or cached),
        "url": spec.url,
        "download_size": spec.size,
        "checksum": f"sha256:{spec.sha256}" if spec.sha256 else f"md5:{spec.md5}",
    }


def download_dataset(name: str, *, force: bool = False, progress: Progress | None = None) -> Path:
    """Download (and verify, and extract) a named dataset into the cache; return its directory."""
    spec = registry.get_spec(name)
    if spec is None:
        raise ConfigError(
            f"unknown dataset {name!r}; downloadable: {', '.join(registry.known_names())}"
        )
    return download_archive(spec, force=force, progress=progress)
