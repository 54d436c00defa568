"""MF + DNN hybrid: feature assembly without leakage, labels, learning, cold items and users,
artifacts, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from neuralrec.data.dataset import Dataset
from neuralrec.data.interactions import Interactions
from neuralrec.data.splits import split
from neuralrec.data.synthetic import synthetic_ratings
from neuralrec.models import Recommender, create
from neuralrec.models.hybrid_features import build_item_side

FAST = {
    "epochs": 15,
    "lr_schedule": "constant",
    "batch_size": 256,
    "lr": 0.005,
    "init_std": 0.1,
    "threads": 1,
    "early_stopping": False,
}


@pytest.fixture(scope="module")
def data():
    ds = synthetic_ratings(200, 60, 4000, seed=3)
    return ds, split(ds.interactions, "random:0.2", seed=0)


@pytest.fixture(scope="module")
def fitted(data):
    ds, sp = data
    return create("mf-dnn", **FAST).fit(sp.train, dataset=ds)


def _rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - truth) ** 2)))


def _with_ratings(ds: Dataset, rows: np.ndarray, values: np.ndarray) -> Dataset:
    """A copy of ``ds`` whose ratings at ``rows`` are replaced by ``values``."""
    inter = ds.interactions
    r = inter.ratings.copy()
    r[rows] = values
    changed = Interactions(inter.users, inter.items, inter.user_ids, inter.item_ids, r)
    return dataclasses.replace(ds, interactions=changed)


# ---------------------------------------------------------------------------- features
def test_item_side_statistics_come_from_training_rows_only(data):
    ds, sp = data
    side, _, _ = build_item_side(ds, sp.train, prior=5.0)
    counts = np.bincount(sp.train.items, minlength=sp.train.n_items)
    sums = np.bincount(sp.train.items, weights=sp.train.ratings, minlength=sp.train.n_items)
    np.testing.assert_allclose(side.rating_count, counts)
    np.testing.assert_allclose(side.rating_sum, sums, rtol=1e-6)
    assert side.mu == pytest.approx(float(sp.train.ratings.mean()))
    dense = side.dense()
    assert dense.shape == (sp.train.n_items, 3)
    assert (dense >= 0).all() and (dense <= 1).all()
    # damped mean, min-max scaled by the rating scale (1..5)
    i = int(np.argmax(counts))
    avg = (sums[i] + 5.0 * side.mu) / (counts[i] + 5.0)
    assert dense[i, 0] == pytest.approx((avg - 1.0) / 4.0, rel=1e-5)
    # genre bags follow the metadata
    genres = ds.items.reindex(sp.train.item_ids.ids)["genres"]
    for j in (0, 5, 17):
        bag = side.genre_indices[side.genre_offsets[j] : side.genre_offsets[j + 1]]
        assert sorted(side.encoder.genre_vocab[g] for g in bag) == sorted(genres.iloc[j])


def test_changing_test_ratings_changes_nothing_fitted(data):
    ds, sp = data
    test_rows = np.setdiff1d(np.arange(len(ds.interactions)), _train_rows(ds, sp))
    flipped = _with_ratings(ds, test_rows, 6.0 - ds.interactions.ratings[test_rows])
    a = build_item_side(ds, sp.train, prior=5.0)[0]
    b = build_item_side(flipped, sp.train, prior=5.0)[0]
    np.testing.assert_array_equal(a.dense(), b.dense())
    m1 = create("mf-dnn", epochs=2, threads=1).fit(sp.train, dataset=ds)
    m2 = create("mf-dnn", epochs=2, threads=1).fit(sp.train, dataset=flipped)
    np.testing.assert_array_equal(m1.score_users(np.arange(5)), m2.score_users(np.arange(5)))


def _train_rows(ds: Dataset, sp) -> np.ndarray:
    key = ds.interactions.users.astype(np.int64) * 10_000 + ds.interactions.items
    return np.flatnonzero(np.isin(key, sp.train.users.astype(np.int64) * 10_000 + sp.train.items))


def test_training_rows_do_not_see_their_own_rating(fitted, data):
    _, sp = data
    m = fitted
    items = torch.from_numpy(sp.train.items[:50].astype(np.int64))
    r = torch.from_numpy(sp.train.ratings[:50].copy())
    keep = torch.ones(50, dtype=torch.bool)
    dense = m._dense_rows(items, r, keep).numpy()
    side = m.items_
    cnt = side.rating_count[items.numpy()] - 1
    loo = (side.rating_sum[items.numpy()] - r.numpy() + side.prior * side.mu) / (cnt + side.prior)
    np.testing.assert_allclose(dense[:, 0], (loo - 1.0) / 4.0, rtol=1e-5)
    # an id-dropped row looks exactly like a brand-new item
    cold = m._dense_rows(items, r, ~keep).numpy()
    new = side.encode_new(pd.DataFrame({"year": side.encoder.year_fill}, index=[0]))[2]
    np.testing.assert_allclose(cold[:, [0, 2]], np.repeat(new[:, [0, 2]], 50, axis=0))


# ---------------------------------------------------------------------------- learning
def test_learns_beyond_the_bias_baseline(fitted, data):
    _, sp = data
    bias = create("bias").fit(sp.train)
    base = _rmse(bias.predict_idx(sp.test.users, sp.test.items), sp.test.ratings)
    ours = _rmse(fitted.predict_idx(sp.test.users, sp.test.items), sp.test.ratings)
    assert ours < base - 0.05, (ours, base)


def test_classifier_labels_and_probabilities(data):
    ds, sp = data
    m = create("mf-dnn-clf", **FAST).fit(sp.train, dataset=ds)
    rate = float((sp.train.ratings >= 4).mean())
    assert float(m.module_.offset) == pytest.approx(np.log(rate / (1 - rate)), rel=1e-6)
    p = m.predict_idx(sp.test.users, sp.test.items)
    assert ((p > 0) & (p < 1)).all()
    assert not m.predicts_ratings and m.outputs_probabilities
    # the loss is BCE against rating >= 4, plus the L2 term
    m.module_.eval()  # no dropout: the same scores twice
    batch = next(m._batches(sp.train).epoch(1, 0))
    with torch.no_grad():
        torch.manual_seed(0)
        s, r, reg = m._scores_train(batch)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(s, (r >= 4).float())
        torch.manual_seed(0)
        assert float(m._loss(batch)) == pytest.approx(float(bce + reg / len(r)), rel=1e-5)
    # tells liked from not liked better than user and item biases do
    from sklearn.metrics import roc_auc_score

    bias = create("bias").fit(sp.train).predict_idx(sp.test.users, sp.test.items)
    labels = sp.test.ratings >= 4
    assert roc_auc_score(labels, p) > roc_auc_score(labels, bias) + 0.05


# ---------------------------------------------------------------------------- cold items
def test_new_items_are_scored_from_metadata(fitted, data):
    ds, _ = data
    frame = pd.DataFrame(
        {"title": ["A (1990)", "B (1990)"], "genres": [["Action"], ["Drama"]], "year": [1990, 1990]}
    )
    users = ds.interactions.user_ids.ids[:5]
    scores = fitted.score_new_items(frame, users=users)
    assert scores.shape == (5, 2)
    assert not np.allclose(scores[:, 0], scores[:, 1])  # genres matter
    # an item known only by metadata scores like its metadata says, via predict too
    single = fitted.score_new_items(frame.iloc[:1], users=users[0])
    assert single.shape == (1,)
    assert single[0] == pytest.approx(scores[0, 0], rel=1e-6)


def test_held_out_items_beat_the_item_free_baseline():
    ds = synthetic_ratings(300, 100, 6000, seed=5)
    inter = ds.interactions
    cold = np.random.default_rng(0).permutation(inter.n_items)[: inter.n_items // 5]
    is_cold = np.isin(inter.items, cold)
    train, test = inter.subset(~is_cold), inter.subset(is_cold)
    m = create("mf-dnn", **FAST).fit(train, dataset=ds)
    users, items = inter.user_ids.ids[test.users], inter.item_ids.ids[test.items]
    ours = _rmse(m.predict(users, items), test.ratings)
    bias = create("bias").fit(train)
    base = _rmse(bias.predict(users, items), test.ratings)  # μ + user bias for unknown items
    assert ours < base, (ours, base)
    # predict on a cold item goes through the metadata path, the same as score_new_items
    frame = ds.items.loc[[items[0]]]
    assert m.predict([users[0]], [items[0]])[0] == pytest.approx(
        m.score_new_items(frame, users=users[0])[0], rel=1e-5
    )


def test_metadata_only_items_outside_the_vocabulary(data):
    ds, sp = data
    extra = pd.DataFrame(
        {"title": ["Unrated (2001)"], "genres": [["Comedy"]], "year": [2001.0]},
        index=pd.Index([10_000], name="item"),
    )
    ds2 = dataclasses.replace(ds, items=pd.concat([ds.items, extra]))
    m = create("mf-dnn", epochs=2, threads=1).fit(sp.train, dataset=ds2)
    u = ds.interactions.user_ids.ids[0]
    got = m.predict([u], [10_000])[0]
    assert got == pytest.approx(m.score_new_items(extra, users=u)[0], rel=1e-6)
    assert got != pytest.approx(m.predict([u], [99_999])[0])  # an id nobody knows


# ---------------------------------------------------------------------------- cold users
def test_new_user_served_from_history_without_retraining(fitted, data):
    ds, sp = data
    m = fitted
    history = sp.train.items[sp.train.users == 0]
    ratings = sp.train.ratings[sp.train.users == 0]
    ids = ds.interactions.item_ids.ids[history]
    top, scores = m.recommend_from_history(ids, k=5, ratings=ratings)
    assert len(top) == 5 and not set(top) & set(ids)
    assert np.all(np.diff(scores) <= 0)
    # pooling the user's training items alone reproduces the pooled part of their vector
    pooled, _ = m._pool(m._hist[[0]])
    full, _ = m._pool(m._hist)
    torch.testing.assert_close(pooled[0], full[0])
    # the fold-in fits the given ratings better than the pooled vector alone
    no_r = m.score_profile(history).numpy()[history]
    with_r = m.score_profile(history, ratings).numpy()[history]
    assert _rmse(with_r, ratings) < _rmse(no_r, ratings)


def test_rated_history_pools_how_the_user_rated(fitted):
    m = fitted
    assert m.module_.rated_history
    row = m._hist[[0]]
    centred = m._centred[m._hist.indptr[0] : m._hist.indptr[1]]
    alone, _ = m._pool(row, centred)
    table, _ = m._pool(m._hist, m._centred)
    torch.testing.assert_close(alone[0], table[0])
    flipped, _ = m._pool(row, -centred)
    unrated, _ = m._pool(row)
    # the rating-weighted part is odd in the centred ratings; the unweighted part is not
    torch.testing.assert_close((alone + flipped) / 2, unrated)
    assert not torch.allclose(alone, flipped)


def test_liked_loss_adds_the_weighted_logistic_term(data):
    ds, sp = data
    m = create("mf-dnn", **{**FAST, "epochs": 2, "liked_weight": 2.0}).fit(sp.train, dataset=ds)
    k, t = m.module_.liked.detach().tolist()
    assert (k, t) != (2.0, 3.5)  # learned from the initial slope 2 and threshold 3.5
    assert create("mf-dnn", liked_weight=0).config.liked_weight == 0
    cols = m._batches(sp.train).tensors
    batch = tuple(c[:64] for c in cols)
    torch.manual_seed(0)
    total = m._loss(batch)
    torch.manual_seed(0)
    s, r, reg = m._scores_train(batch)
    mse = ((s - r).square().sum() + reg) / 64
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        k * (s - t), (r >= 4).float(), reduction="sum"
    )
    torch.testing.assert_close(total, mse + 2.0 * bce / 64)


# ---------------------------------------------------------------------------- artifacts
def test_save_load_round_trip(tmp_path, data):
    ds, sp = data
    extra = pd.DataFrame(
        {"title": ["Unrated (2001)"], "genres": [["Comedy"]], "year": [2001.0]},
        index=pd.Index([10_000], name="item"),
    )
    ds2 = dataclasses.replace(ds, items=pd.concat([ds.items, extra]))
    for name in ("mf-dnn", "mf-dnn-clf"):
        m = create(name, epochs=2, threads=1).fit(sp.train, dataset=ds2)
        loaded = Recommender.load(m.save(tmp_path / name))
        assert type(loaded) is type(m)
        users = ds.interactions.user_ids.ids[sp.test.users]
        items = ds.interactions.item_ids.ids[sp.test.items]
        np.testing.assert_array_equal(loaded.predict(users, items), m.predict(users, items))
        frame = ds.items.iloc[:4]
        np.testing.assert_array_equal(
            loaded.score_new_items(frame, users=users[:3]),
            m.score_new_items(frame, users=users[:3]),
        )
        assert loaded.predict([users[0]], [10_000])[0] == m.predict([users[0]], [10_000])[0]
        h = sp.train.items[:6]
        torch.testing.assert_close(
            loaded.score_profile(h, sp.train.ratings[:6]), m.score_profile(h, sp.train.ratings[:6])
        )


def test_same_seed_same_model(data):
    ds, sp = data
    a = create("mf-dnn", epochs=3, threads=1, seed=7).fit(sp.train, dataset=ds)
    b = create("mf-dnn", epochs=3, threads=1, seed=7).fit(sp.train, dataset=ds)
    c = create("mf-dnn", epochs=3, threads=1, seed=8).fit(sp.train, dataset=ds)
    users = np.arange(10)
    np.testing.assert_array_equal(a.score_users(users), b.score_users(users))
    assert not torch.equal(a.score_users(users), c.score_users(users))
