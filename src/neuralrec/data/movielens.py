"""MovieLens loaders (minimal bootstrap version: 100K and latest-small from a local directory)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from neuralrec.data.dataset import Dataset
from neuralrec.data.interactions import Interactions
from neuralrec.errors import DatasetNotFoundError

GENRES_100K = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def data_home() -> Path | None:
    env = os.environ.get("NEURALREC_DATA_HOME")
    return Path(env) if env else None


def _dir(name: str) -> Path:
    home = data_home()
    if home is None or not (home / name).is_dir():
        raise DatasetNotFoundError(
            f"{name} not found; set NEURALREC_DATA_HOME to a directory containing {name}/"
        )
    return home / name


def load_ml100k() -> Dataset:
    d = _dir("ml-100k")
    df = pd.read_csv(d / "u.data", sep="\t", names=["user", "item", "rating", "timestamp"])
    inter = Interactions.from_frame(df, source=str(d / "u.data"))
    items = pd.read_csv(d / "u.item", sep="|", header=None, encoding="latin-1")
    genres = items.iloc[:, 5:24].to_numpy().astype(bool)
    frame = pd.DataFrame(
        {
            "title": items[1].astype(str),
            "genres": [[GENRES_100K[j] for j in np.flatnonzero(row)] for row in genres],
        },
        index=pd.Index(items[0].astype(np.int64), name="item"),
    )
    frame["year"] = frame["title"].str.extract(r"\((\d{4})\)\s*$")[0].astype(float)
    return Dataset("ml-100k", inter, items=frame, rating_scale=(1.0, 5.0))
