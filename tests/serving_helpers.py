"""Small trained models for the serving tests: generated data, a few recognisable titles."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from neuralrec.data.dataset import Dataset
from neuralrec.data.synthetic import synthetic_ratings
from neuralrec.models import create
from neuralrec.models.base import Recommender
from neuralrec.models.persistence import save_model

#: item ids 1 and 2 are the two most popular items of the generated data (Zipf-like order)
TITLES = {1: "Toy Story (1995)", 2: "Toy Soldiers (1991)", 3: "Heat (1995)"}
N_USERS = 150
#: in the model's vocabulary but without training rows (all its rows are held out)
IDLE_USER = N_USERS
METRICS = {"rating/rmse": 0.93, "full/ndcg@10": 0.21}


def toy_dataset(seed: int = 0) -> Dataset:
    """150 users x 120 items of generated ratings, with "Toy ..." titles for items 1 and 2."""
    ds = synthetic_ratings(N_USERS, 120, 3000, seed=seed)
    items = ds.items.copy()
    for item, title in TITLES.items():
        items.loc[item, "title"] = title
    return dataclasses.replace(ds, items=items)


def train(model: str = "biased-mf", *, seed: int = 0, **params: Any) -> Recommender:
    """A quickly fitted model; IDLE_USER's rows are left out of training."""
    ds = toy_dataset()
    inter = ds.interactions
    idle = inter.user_ids.index_of(IDLE_USER)
    train_rows = inter.subset(inter.users != idle)
    if model in ("biased-mf", "mf-history"):
        params = {"epochs": 3, "factors": 8, "seed": seed, **params}
    elif model in ("gmf", "neumf"):
        params = {"epochs": 3, "factors": 8, "layers": (16, 8), "seed": seed, **params}
    return create(model, **params).fit(train_rows, dataset=ds)


def write_run(model: Recommender, path: Path) -> Path:
    """Save ``model`` as a run directory does: artifact plus metrics.json and run.json."""
    run = {"model": model.name, "dataset": "synthetic", "split": "none", "seed": 0}
    return save_model(model, path, extra={"metrics.json": METRICS, "run.json": run})


def expected_top(model: Recommender, user: Any, k: int) -> list[Any]:
    """The model's own top-k for a user, the reference the server must match."""
    ids, scores = model.recommend(user, k)
    return [i for i, s in zip(ids.tolist(), scores.tolist(), strict=True) if np.isfinite(s)]
