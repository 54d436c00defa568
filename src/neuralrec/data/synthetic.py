"""Generated interaction data for tests and benchmarks (no licence strings attached)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuralrec.data.dataset import Dataset
from neuralrec.data.interactions import Interactions


def synthetic_ratings(
    n_users: int = 200,
    n_items: int = 100,
    n_ratings: int = 4000,
    *,
    factors: int = 4,
    seed: int = 0,
    timestamps: bool = True,
    string_ids: bool = False,
    genres: bool = True,
) -> Dataset:
    """A low-rank rating dataset with popularity skew, titles, genres and years.

    Ratings are 1..5 from a noisy low-rank model, so models that learn structure beat the
    baselines on it; item popularity follows a Zipf-like law as in real catalogs.
    """
    rng = np.random.default_rng(seed)
    n_ratings = min(n_ratings, n_users * n_items)
    item_p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    item_p /= item_p.sum()
    # draw distinct pairs: oversample then deduplicate
    users = rng.integers(0, n_users, size=n_ratings * 3)
    items = rng.choice(n_items, size=n_ratings * 3, p=item_p)
    key = np.unique(users.astype(np.int64) * n_items + items, return_index=True)[1]
    key = np.sort(rng.permutation(key)[:n_ratings])
    users, items = users[key], items[key]
    P = rng.normal(0, 1, (n_users, factors))
    Q = rng.normal(0, 1, (n_items, factors))
    raw = (
        3.4
        + 0.35 * (P[users] * Q[items]).sum(1)
        + rng.normal(0, 0.6, len(users))
        + 0.3 * rng.normal(0, 1, n_items)[items]
    )
    ratings = np.clip(np.round(raw), 1, 5).astype(np.float32)
    ts = (1_000_000_000 + np.sort(rng.integers(0, 10_000_000, len(users)))) if timestamps else None
    uid = np.array([f"u{u}" for u in users], dtype=object) if string_ids else users + 1
    iid = np.array([f"i{i}" for i in items], dtype=object) if string_ids else items + 1
    inter = Interactions.from_arrays(uid, iid, ratings, ts)
    genre_names = ["Action", "Animation", "Comedy", "Drama", "Horror", "Romance"]
    item_index = pd.Index(
        [f"i{i}" for i in range(n_items)] if string_ids else np.arange(1, n_items + 1), name="item"
    )
    years = rng.integers(1950, 2020, n_items)
    item_frame = pd.DataFrame(
        {
            "title": [f"Movie {i} ({y})" for i, y in zip(range(n_items), years, strict=True)],
            "year": years.astype(float),
        },
        index=item_index,
    )
    if genres:
        # genre follows the item's dominant latent factor, so metadata carries signal
        dom = np.argmax(Q[:, : min(factors, len(genre_names))], axis=1)
        item_frame["genres"] = [
            [genre_names[d]] + ([genre_names[-1]] if rng.random() < 0.2 else []) for d in dom
        ]
    user_index = pd.Index(
        [f"u{u}" for u in range(n_users)] if string_ids else np.arange(1, n_users + 1), name="user"
    )
    user_frame = pd.DataFrame(
        {
            "gender": rng.choice(["M", "F"], n_users),
            "age": rng.choice([18, 25, 35, 45, 50], n_users),
            "occupation": rng.choice(["student", "engineer", "artist", "other"], n_users),
        },
        index=user_index,
    )
    return Dataset("synthetic", inter, items=item_frame, users=user_frame, rating_scale=(1.0, 5.0))


def synthetic_implicit(
    n_users: int = 120,
    n_items: int = 60,
    *,
    groups: int = 4,
    per_user: int = 10,
    noise: float = 0.1,
    seed: int = 0,
) -> Interactions:
    """Implicit feedback with a planted structure: users and items fall into ``groups`` taste
    groups, and each user picks ``per_user`` items, mostly (1 − ``noise``) from their own group.

    Item popularity is flat within a group, so the popularity baseline ranks poorly and a model
    that learns the groups ranks well: tests use it to check that implicit models learn.
    """
    rng = np.random.default_rng(seed)
    user_group = np.arange(n_users) % groups
    item_group = np.arange(n_items) % groups
    users, items = [], []
    for g in range(groups):
        own = np.flatnonzero(item_group == g)
        other = np.flatnonzero(item_group != g)
        for u in np.flatnonzero(user_group == g):
            n_other = rng.binomial(per_user, noise)
            pick = np.concatenate(
                [
                    rng.choice(own, min(per_user - n_other, len(own)), replace=False),
                    rng.choice(other, min(n_other, len(other)), replace=False),
                ]
            )
            users.append(np.full(len(pick), u))
            items.append(pick)
    u = np.concatenate(users)
    i = np.concatenate(items)
    ts = 1_000_000_000 + rng.permutation(len(u)).astype(np.int64)
    return Interactions.from_arrays(u + 1, i + 1, timestamps=ts)
