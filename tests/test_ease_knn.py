"""EASE and ItemKNN: closed forms against direct computations, learning, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralrec.data.interactions import Interactions
from neuralrec.data.splits import split
from neuralrec.data.synthetic import synthetic_implicit
from neuralrec.evaluation import evaluate
from neuralrec.models import Recommender, create


def _tiny() -> tuple[Interactions, np.ndarray]:
    rng = np.random.default_rng(4)
    X = (rng.random((9, 7)) < 0.45).astype(np.float64)
    X[:, 0] = 1.0  # every item has a user, every user an item
    X[0, :] = 1.0
    u, i = np.nonzero(X)
    return Interactions.from_arrays(u, i), X


def test_ease_matches_a_direct_dense_solve():
    data, X = _tiny()
    lam = 2.5
    plain = {"dropout_l2": 0.0, "user_weight": 0.0, "popularity_exponent": 0.0}
    model = create("ease", l2=lam, **plain).fit(data)
    # Steck (2019), eq. 8: B = I − P diag(1/diag(P)), P = (XᵀX + λI)⁻¹
    P = np.linalg.inv(X.T @ X + lam * np.eye(X.shape[1]))
    B = np.eye(X.shape[1]) - P / np.diag(P)[None, :]
    np.testing.assert_allclose(model.B_.numpy(), B, atol=1e-5)
    assert np.all(np.diag(model.B_.numpy()) == 0)
    users = np.arange(X.shape[0])
    np.testing.assert_allclose(model.score_users(users).numpy(), X @ B, atol=1e-5)
    # B minimises the objective: the gradient of ‖X − XB‖² + λ‖B‖² is zero off the diagonal
    grad = -2 * X.T @ (X - X @ B) + 2 * lam * B
    off = ~np.eye(X.shape[1], dtype=bool)
    np.testing.assert_allclose(grad[off], 0.0, atol=1e-8)


def test_ease_options_match_the_weighted_dropout_solve():
    data, X = _tiny()
    lam, rho, alpha, gamma = 2.5, 0.5, 0.5, -0.3
    model = create(
        "ease", l2=lam, dropout_l2=rho, user_weight=alpha, popularity_exponent=gamma
    ).fit(data)
    n_u = X.sum(1)
    W = np.diag((n_u / n_u.mean()) ** -alpha)
    G = X.T @ W @ X
    Lam = np.diag(lam + rho * np.diag(G))  # DLAE: λ + p/(1-p)·diag(XᵀX) with ρ = p/(1-p)
    P = np.linalg.inv(G + Lam)
    B = np.eye(X.shape[1]) - P / np.diag(P)[None, :]
    np.testing.assert_allclose(model.B_.numpy(), B, atol=1e-5)
    # B minimises ‖W^½(X − XB)‖² + Σ_j Λ_jj ‖B_j·‖² off the diagonal
    grad = -2 * X.T @ W @ (X - X @ B) + 2 * Lam @ B
    off = ~np.eye(X.shape[1], dtype=bool)
    np.testing.assert_allclose(grad[off], 0.0, atol=1e-8)
    # γ rescales each item's score by (training count + 1)^γ; the ranking model is unchanged
    scale = (X.sum(0) + 1.0) ** gamma
    users = np.arange(X.shape[0])
    np.testing.assert_allclose(model.score_users(users).numpy(), (X @ B) * scale, atol=1e-5)


def test_ease_popularity_exponent_round_trips_and_old_artifacts_ignore_it(tmp_path):
    data, X = _tiny()
    model = create("ease", l2=2.5, popularity_exponent=-0.5).fit(data)
    model.save(tmp_path / "m")
    users = np.arange(X.shape[0])
    loaded = Recommender.load(tmp_path / "m")
    assert torch.equal(loaded.score_users(users), model.score_users(users))
    # an artifact saved before the option existed carries no exponent: plain x_u B scores
    tensors, meta = model._state()
    assert meta == {"popularity_exponent": -0.5}
    model._load_state(tensors, {})
    np.testing.assert_allclose(model.score_users(users).numpy(), X @ model.B_.numpy(), atol=1e-5)


@pytest.mark.parametrize("shrink", [0.0, 3.0])
def test_itemknn_matches_brute_force(shrink):
    data, X = _tiny()
    k = 3
    model = create("item-knn", k=k, shrink=shrink).fit(data)
    norms = np.sqrt((X**2).sum(0))
    S = (X.T @ X) / (norms[:, None] * norms[None, :] + shrink + 1e-6)
    np.fill_diagonal(S, 0.0)
    W = np.zeros_like(S)
    for j in range(S.shape[1]):  # column j keeps its k most similar items
        top = np.argsort(-S[:, j], kind="stable")[:k]
        W[top, j] = S[top, j]
    got = model.W_.toarray()
    # ties at the k-th place may keep a different (equally similar) item: compare the sums
    np.testing.assert_allclose(np.sort(got, axis=0)[-k:], np.sort(W, axis=0)[-k:], atol=1e-5)
    np.testing.assert_allclose(model.score_users(np.arange(X.shape[0])).numpy(), X @ got, atol=1e-5)
    sims = model.item_similarities(np.array([2])).numpy()[0]
    np.testing.assert_allclose(sims, S[2], atol=1e-5)


@pytest.mark.parametrize(("name", "params"), [("ease", {"l2": 10.0}), ("item-knn", {"k": 20})])
def test_closed_form_models_learn_and_round_trip(tmp_path, name, params):
    data = synthetic_implicit(120, 60, per_user=12, seed=0)
    parts = split(data, "user-random:0.2", seed=0)
    pop = evaluate(create("popularity").fit(parts.train), parts).value("ndcg", 10)
    model = create(name, **params).fit(parts.train)
    assert model.task == "ranking" and not model.predicts_ratings
    assert evaluate(model, parts).value("ndcg", 10) > pop + 0.15
    model.save(tmp_path / name)
    loaded = Recommender.load(tmp_path / name)
    users = np.arange(data.n_users)
    assert torch.equal(loaded.score_users(users), model.score_users(users))
    item = data.item_ids.to_ids([0])[0]
    neighbours, _ = loaded.similar_items(item, k=5)
    # items of the same taste group (index % 4) are the nearest ones
    same = [data.item_ids.index_of(i) % 4 == 0 for i in neighbours]
    assert sum(same) >= 4


def test_implicit_threshold_keeps_only_liked_items(small_dataset):
    data = small_dataset.interactions
    liked = create("ease", implicit_threshold=4.0).fit(data)
    assert liked.X_.nnz == int((data.ratings >= 4).sum())
    assert create("ease").fit(data).X_.nnz == len(data)


def test_similar_items_min_count_leaves_out_rare_candidates():
    data = synthetic_implicit(120, 60, per_user=12, seed=0)
    model = create("item-knn", k=20).fit(data)
    counts = np.asarray(model.item_popularity_)
    floor = float(np.median(counts))
    item = data.item_ids.to_ids([0])[0]
    ids, scores = model.similar_items(item, k=10, min_count=floor)
    kept = counts[data.item_ids.to_index(ids)]
    assert len(ids) == 10 and (kept >= floor).all() and np.all(np.diff(scores) <= 0)
    unfiltered, _ = model.similar_items(item, k=10)
    rare = counts[data.item_ids.to_index(unfiltered)] < floor
    assert rare.any() or set(unfiltered) == set(ids)


@pytest.mark.parametrize(("name", "params"), [("ease", {"l2": 10.0}), ("item-knn", {"k": 20})])
def test_a_visitor_with_a_training_users_items_gets_that_users_list(name, params):
    data = synthetic_implicit(120, 60, per_user=12, seed=0)
    model = create(name, **params).fit(data)
    X = data.tocsr("ones")
    for user in (0, 7, 42):
        items = X[user].indices
        np.testing.assert_allclose(
            model.score_history(items).numpy(), model.score_users(np.array([user]))[0].numpy()
        )
        uid = data.user_ids.to_ids([user])[0]
        ids, _ = model.recommend_from_history(data.item_ids.to_ids(items), k=10)
        expected, _ = model.recommend(uid, k=10)
        assert list(ids) == list(expected)


def test_item_item_history_honours_the_implicit_threshold(small_dataset):
    data = small_dataset.interactions
    model = create("ease", implicit_threshold=4.0).fit(data)
    items, ratings = np.array([0, 1, 2]), np.array([5.0, 2.0, 4.0])
    np.testing.assert_allclose(
        model.score_history(items, ratings).numpy(), model.score_history(items[[0, 2]]).numpy()
    )
