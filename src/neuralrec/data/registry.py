"""Known datasets (MovieLens) and where their files live: offline directory, cache, download.

Lookup order for a named dataset: ``$NEURALREC_DATA_HOME/<name>/`` (or the official zip as
``$NEURALREC_DATA_HOME/<name>.zip``), then the cache (``$NEURALREC_CACHE_DIR/datasets/<name>/``),
then a download from GroupLens into the cache. Checksums come from ``registry/movielens.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from neuralrec.errors import DatasetNotFoundError


@dataclass(frozen=True)
class DatasetSpec:
    """One downloadable dataset: archive URL, published checksums, layout and rating scale."""

    name: str
    title: str
    url: str
    size: int | None
    sha256: str | None
    md5: str | None
    folder: str
    format: str
    files: tuple[str, ...]
    rating_scale: tuple[float, float]
    ratings: int | None = None


def _load_registry() -> dict[str, DatasetSpec]:
    text = resources.files("neuralrec.data").joinpath("registry/movielens.json").read_text()
    raw = json.loads(text)
    out = {}
    for name, entry in raw.items():
        if name.startswith("_"):
            continue
        out[name] = DatasetSpec(
            name=name,
            title=entry["title"],
            url=entry["url"],
            size=entry.get("size"),
            sha256=entry.get("sha256"),
            md5=entry.get("md5"),
            folder=entry["folder"],
            format=entry["format"],
            files=tuple(entry["files"]),
            rating_scale=(float(entry["rating_scale"][0]), float(entry["rating_scale"][1])),
            ratings=entry.get("ratings"),
        )
    return out


#: every dataset ``load_dataset`` knows by name (tests may patch entries)
REGISTRY: dict[str, DatasetSpec] = _load_registry()


def known_names() -> list[str]:
    """Names ``load_dataset`` accepts besides paths."""
    return list(REGISTRY)


def get_spec(name: str) -> DatasetSpec | None:
    """The registry entry of ``name`` (case-insensitive), or None."""
    return REGISTRY.get(name.strip().lower())


def data_home(override: str | os.PathLike[str] | None = None) -> Path | None:
    """The offline directory: ``override``, else ``$NEURALREC_DATA_HOME``, else None."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("NEURALREC_DATA_HOME")
    return Path(env).expanduser() if env else None


def cache_dir() -> Path:
    """The cache root: ``$NEURALREC_CACHE_DIR``, else ``$XDG_CACHE_HOME/neuralrec``, else
    ``~/.cache/neuralrec``. Downloads, extracted archives and parsed datasets live below it."""
    env = os.environ.get("NEURALREC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "neuralrec"


def has_files(directory: Path, spec: DatasetSpec) -> bool:
    """Whether ``directory`` holds every file ``spec`` needs."""
    return directory.is_dir() and all((directory / f).is_file() for f in spec.files)


def offline_dir(spec: DatasetSpec, home: Path | None) -> Path | None:
    """The dataset's directory under the offline home, if complete (the zip's own folder name,
    e.g. ``ml-10M100K``, is accepted too)."""
    if home is None:
        return None
    for cand in (home / spec.name, home / spec.folder):
        if has_files(cand, spec):
            return cand
    return None


def offline_zip(spec: DatasetSpec, home: Path | None) -> Path | None:
    """The official archive placed in the offline home as ``<name>.zip``, if any."""
    if home is None:
        return None
    path = home / f"{spec.name}.zip"
    return path if path.is_file() else None


def cached_dir(spec: DatasetSpec) -> Path | None:
    """The extracted copy in the cache, if complete."""
    path = cache_dir() / "datasets" / spec.name
    return path if has_files(path, spec) else None


def not_found(spec: DatasetSpec, home: Path | None, reason: str = "") -> DatasetNotFoundError:
    """The error for a dataset that is nowhere to be found, saying exactly where to put it."""
    where = str(home) if home is not None else "$NEURALREC_DATA_HOME"
    files = ", ".join(f"{where}/{spec.name}/{f}" for f in spec.files)
    hint = "" if home is not None else " (NEURALREC_DATA_HOME is not set: set it to a directory)"
    extra = f" {reason}." if reason else ""
    return DatasetNotFoundError(
        f"{spec.name} is not available offline and was not downloaded.{extra} Put the official "
        f"files at {files}{hint}, or the archive {spec.url} at {where}/{spec.name}.zip, or run "
        f"`neuralrec datasets download {spec.name}` on a machine with internet access."
    )
