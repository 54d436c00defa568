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
    model = create("ease", l2=lam).fit(data)
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
