"""Cold start through the one recommendation API (models/base.py), for every kind of model:
popular items for users with no history (optionally within a user-field segment), history
serving without retraining, new items, and the shared ridge fold-in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from neuralrec.data.dataset import Dataset
from neuralrec.data.interactions import Interactions
from neuralrec.errors import ConfigError
from neuralrec.models import Recommender, create
from neuralrec.models.cold_start import SEGMENT_PRIOR, ridge_fold_in

QUICK = {"epochs": 3, "threads": 1}


@pytest.fixture(scope="module")
def segmented() -> Dataset:
    """Women rate item 100 (and 101), men rate item 200 (and 201); everyone rates item 1.

    User 99 is a woman with no rating at all (in the user table only), to be served cold.
    """
    rows = []
    for u in range(1, 41):
        mine = (100, 101) if u % 2 else (200, 201)
        for i in (1, *mine):
            rows.append((u, i, 4.0 + (i % 2)))
    rows.append((99, 1, 3.0))  # keeps 99 in the vocabulary; its row goes to "test" below
    frame = pd.DataFrame(rows, columns=["user", "item", "rating"])
    inter = Interactions.from_frame(frame)
    users = pd.DataFrame(
        {
            "gender": ["F" if u % 2 else "M" for u in range(1, 41)] + ["F"],
            "age": [25] * 40 + [30],
        },
        index=pd.Index([*range(1, 41), 99], name="user"),
    )
    items = pd.DataFrame(
        {"title": [f"Movie {i} (2000)" for i in (1, 100, 101, 200, 201)]},
        index=pd.Index([1, 100, 101, 200, 201], name="item"),
    )
    return Dataset("segments", inter, items=items, users=users, rating_scale=(1.0, 5.0))


def _train(ds: Dataset) -> Interactions:
    inter = ds.interactions
    return inter.subset(inter.user_ids.ids[inter.users] != 99)


@pytest.mark.parametrize("name", ["popularity", "bias", "biased-mf", "mf-history", "mf-dnn"])
def test_segment_popularity_for_users_without_history(segmented, name):
    params = QUICK if name in ("biased-mf", "mf-history", "mf-dnn") else {}
    m = create(name, **params).fit(_train(segmented), dataset=segmented)
    women, _ = m.recommend_from_history([], k=2, user_features={"gender": "F"})
    men, _ = m.recommend_from_history([], k=2, user_features={"gender": "M"})
    assert {100, 101} & set(women) and not {200, 201} & set(women)
    assert {200, 201} & set(men) and not {100, 101} & set(men)
    # user 99 is known by her fields but has no training row: her segment serves her
    top, _ = m.recommend(99, k=3)
    assert not {200, 201} & set(top)
    # and an id nobody knows gets overall popularity (item 1 first: everyone rated it)
    top, _ = m.recommend(12345, k=1)
    assert top[0] == 1


def test_segment_scores_are_smoothed_rates(segmented):
    m = create("popularity").fit(_train(segmented), dataset=segmented)
    scores = m.popular_scores({"gender": "F", "age": 25}).numpy()
    item = m.item_ids_.index_of(100)
    # 20 women of 25 rated item 100; overall 20 of 40 users
    assert scores[item] == pytest.approx((20 + SEGMENT_PRIOR * 0.5) / (20 + SEGMENT_PRIOR))
    assert scores[m.item_ids_.index_of(200)] == pytest.approx(
        SEGMENT_PRIOR * 0.5 / (20 + SEGMENT_PRIOR)
    )
    with pytest.raises(ConfigError, match="unknown user field"):
        m.popular_scores({"zodiac": "leo"})
    with pytest.raises(ConfigError, match="unknown gender"):
        m.popular_scores({"gender": "X"})


def test_segments_survive_save_and_load(tmp_path, segmented):
    m = create("bias").fit(_train(segmented), dataset=segmented)
    loaded = Recommender.load(m.save(tmp_path / "m"))
    torch.testing.assert_close(
        loaded.popular_scores({"gender": "M"}), m.popular_scores({"gender": "M"})
    )
    assert list(loaded.recommend(99, k=2)[0]) == list(m.recommend(99, k=2)[0])


def test_no_segments_without_user_metadata(segmented):
    plain = Dataset("plain", segmented.interactions)
    m = create("popularity").fit(_train(plain), dataset=plain)
    with pytest.raises(ConfigError, match="no user fields"):
        m.recommend_from_history([], k=2, user_features={"gender": "F"})
    top, _ = m.recommend_from_history([], k=1)
    assert top[0] == 1


@pytest.mark.parametrize("name", ["biased-mf", "mf-history", "mf-dnn"])
def test_history_serving_excludes_history_and_needs_no_refit(small_dataset, name):
    m = create(name, **QUICK).fit(small_dataset)
    before = {k: v.clone() for k, v in m.module_.state_dict().items()}
    items = small_dataset.interactions.item_ids.ids[:5]
    top, scores = m.recommend_from_history(items, k=10, ratings=[5, 4, 1, 2, 5])
    assert len(top) == 10 and not set(top) & set(items)
    assert np.all(np.diff(scores) <= 0)
    for k, v in m.module_.state_dict().items():
        torch.testing.assert_close(v, before[k])
    # unknown ids are ignored; none known -> popularity
    top2, _ = m.recommend_from_history(["nope"], k=3)
    np.testing.assert_array_equal(top2, m.recommend_from_history([], k=3)[0])


def test_models_without_metadata_score_new_items_as_unknown_items(small_dataset):
    m = create("bias").fit(small_dataset)
    frame = small_dataset.items.iloc[:3]
    users = small_dataset.interactions.user_ids.ids[:4]
    got = m.score_new_items(frame, users=users)
    assert got.shape == (4, 3)
    expected = m.global_mean_ + m.user_bias_[m.user_ids_.to_index(users)]
    np.testing.assert_allclose(got, np.repeat(expected[:, None], 3, axis=1), rtol=1e-6)
    assert m.score_new_items(frame).shape == (3,)  # no user: the global mean
    np.testing.assert_allclose(m.score_new_items(frame), m.global_mean_, rtol=1e-6)


def test_ridge_fold_in_matches_the_normal_equations():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(7, 3))
    e = rng.normal(size=7)
    w, a = ridge_fold_in(torch.from_numpy(q), torch.from_numpy(e), 0.5, 0.1)
    x = np.hstack([q, np.ones((7, 1))])
    ref = np.linalg.solve(x.T @ x + np.diag([0.5, 0.5, 0.5, 0.1]), x.T @ e)
    np.testing.assert_allclose(np.r_[w.numpy(), a.item()], ref, rtol=1e-10)
    # with almost no regularisation and enough ratings it recovers an exact linear rule
    e2 = q @ np.array([1.0, -2.0, 0.5]) + 0.3
    w2, a2 = ridge_fold_in(torch.from_numpy(q), torch.from_numpy(e2), 1e-9, 1e-9)
    np.testing.assert_allclose(w2.numpy(), [1.0, -2.0, 0.5], atol=1e-6)
    assert a2.item() == pytest.approx(0.3, abs=1e-6)


def test_biased_mf_fold_in_recovers_a_training_user(small_dataset):
    """Folding in a training user's own ratings gives scores close to their learned ones."""
    m = create("biased-mf", epochs=10, threads=1).fit(small_dataset)
    inter = small_dataset.interactions
    u = int(np.argmax(inter.user_counts()))
    rows = inter.users == u
    folded = m.score_history(inter.items[rows], inter.ratings[rows]).numpy()
    learned = m.score_users(np.array([u]))[0].numpy()
    assert np.corrcoef(folded, learned)[0, 1] > 0.9


@pytest.mark.parametrize("neg_sampling", ["uniform", "popularity"])
def test_bpr_mf_fold_in_is_the_minimiser_of_the_expected_bpr_objective(small_dataset, neg_sampling):
    """biased-mf trained with bpr folds a visitor in by its own objective: the row minimises
    the BPR loss in expectation over the sampler's negatives + λ‖p‖² (written out in numpy)."""
    from scipy.optimize import minimize

    m = create("biased-mf", loss="bpr", neg_sampling=neg_sampling, epochs=5, threads=1)
    m.fit(small_dataset)
    history = np.array([3, 10, 11, 40, 77])
    got = m.score_history(history).numpy()
    q = m.module_.Q.weight.detach().double().numpy()
    b = m.module_.item_bias.weight.detach().double().numpy()[:, 0]
    counts = m.item_popularity_.astype(np.float64)
    w = np.ones(m.n_items) if neg_sampling == "uniform" else counts**0.75 * (counts > 0)
    w[history] = 0.0
    w /= w.sum()
    lam = m.config.l2

    def objective(p: np.ndarray) -> float:
        s = b + q @ p
        pairs = np.logaddexp(0.0, s[None, :] - s[history][:, None])  # softplus(s_j − s_pos)
        return float((pairs * w).sum(1).mean() + lam * p @ p)

    best = minimize(objective, np.zeros(q.shape[1]), method="BFGS", tol=1e-12)
    np.testing.assert_allclose(got, b + q @ best.x, atol=2e-3)


def test_fold_in_flushes_subnormals_while_fitting_only():
    """A saturated loss's gradients go subnormal, which is several times slower on x86: the
    fold-in flushes them while it fits and leaves the process as it found it."""
    from neuralrec.models._fold_in import fit_row

    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # below float32's smallest normal
    q = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
    flushed = []

    def scores_of(row: torch.Tensor) -> torch.Tensor:
        flushed.append(float((tiny * 1.0).item()) == 0.0)
        return (row @ q.T)[0]

    w = torch.full((12,), 1 / 10)
    w[[0, 1]] = 0
    fit_row(scores_of, torch.zeros(3), torch.tensor([0, 1]), loss="bce", l2=0.1, neg_weights=w)
    assert flushed and all(flushed)
    assert float((tiny * 1.0).item()) != 0.0
