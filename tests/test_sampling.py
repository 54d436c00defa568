"""Negative sampler, implicit batches, implicit losses and loss-dependent config defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from neuralrec.data.interactions import Interactions
from neuralrec.data.sampling import NegativeSampler
from neuralrec.data.synthetic import synthetic_implicit
from neuralrec.errors import ConfigError, DataError
from neuralrec.models import create
from neuralrec.models.mf import BiasedMFConfig
from neuralrec.training.batches import epoch_generator
from neuralrec.training.implicit import implicit_batches, recency_repeats
from neuralrec.training.losses import bpr, pointwise_bce


def _matrix() -> sp.csr_matrix:
    """5 users x 12 items: an empty user, ordinary ones, one with all but one item, one with two
    unseen items at the ends of the catalogue."""
    rows = {
        0: [],
        1: [0, 3, 4, 9],
        2: [i for i in range(12) if i != 7],
        3: list(range(1, 11)),
        4: [11],
    }
    r = [u for u, items in rows.items() for _ in items]
    c = [i for items in rows.values() for i in items]
    # item popularity: item 11 and the low ids are common, item 7 is rare
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(5, 12))


@pytest.mark.parametrize("dist", ["uniform", "popularity"])
def test_never_returns_a_training_item(dist):
    X = _matrix()
    sampler = NegativeSampler(X, dist, alpha=1.0)
    users = torch.tensor([0, 1, 2, 3, 4] * 200)
    neg = sampler.sample(users, 7, epoch_generator(0, 1))
    assert neg.shape == (1000, 7)
    dense = torch.from_numpy(X.toarray() > 0)
    assert not dense[users.unsqueeze(1), neg].any()
    assert (neg >= 0).all() and (neg < 12).all()
    # the near-saturated users get exactly their few unseen items
    assert set(neg[users == 2].unique().tolist()) == {7}
    got = set(neg[users == 3].unique().tolist())
    assert got <= {0, 11} and (dist == "popularity" or got == {0, 11})


def test_deterministic_given_seed_and_epoch():
    sampler = NegativeSampler(_matrix())
    users = torch.arange(5).repeat(50)
    a = sampler.sample(users, 3, epoch_generator(7, 2))
    b = sampler.sample(users, 3, epoch_generator(7, 2))
    c = sampler.sample(users, 3, epoch_generator(7, 3))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_uniform_is_uniform_over_unseen_items():
    X = _matrix()
    sampler = NegativeSampler(X)
    n = 80_000
    neg = sampler.sample(torch.tensor([1]), n, epoch_generator(0, 0))[0]
    counts = torch.bincount(neg, minlength=12).double()
    unseen = [i for i in range(12) if i not in (0, 3, 4, 9)]
    expected = n / len(unseen)
    assert counts[[0, 3, 4, 9]].sum() == 0
    # each count is Binomial(n, 1/8): within 5 standard deviations
    sd = math.sqrt(n * (1 / 8) * (7 / 8))
    assert (counts[unseen] - expected).abs().max() < 5 * sd


def test_popularity_follows_count_power_alpha():
    rng = np.random.default_rng(0)
    n_users, n_items = 400, 30
    pop = 1.0 / np.arange(1, n_items + 1)
    rows, cols = [], []
    for u in range(n_users):
        items = rng.choice(n_items, 5, replace=False, p=pop / pop.sum())
        rows += [u] * 5
        cols += items.tolist()
    X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    alpha = 0.75
    sampler = NegativeSampler(X, "popularity", alpha=alpha)
    user = 3
    n = 60_000
    neg = sampler.sample(torch.tensor([user]), n, epoch_generator(1, 1))[0]
    counts = np.bincount(X.indices, minlength=n_items).astype(float)
    w = counts**alpha
    w[X[user].indices] = 0.0
    freq = np.bincount(neg.numpy(), minlength=n_items) / n
    np.testing.assert_allclose(freq, w / w.sum(), atol=0.01)


def test_user_with_every_item_is_an_error_and_is_left_out_of_training():
    X = sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 0]], dtype=np.float32))
    sampler = NegativeSampler(X)
    with pytest.raises(DataError, match="every item"):
        sampler.sample(torch.tensor([0, 1]), 2, epoch_generator(0, 0))
    data = Interactions.from_arrays([1, 1, 1, 2], [1, 2, 3, 1])
    cfg = BiasedMFConfig(loss="bpr", negatives=2, batch_size=8)
    batches = implicit_batches(data, cfg)
    (users, pos, neg), *_ = batches.epoch(1, 0)
    assert users.tolist() == [1] and pos.tolist() == [0]
    assert neg.shape == (1, 2) and set(neg[0].tolist()) <= {1, 2}


def test_implicit_batches_resample_every_epoch_and_threshold_positives():
    data = synthetic_implicit(40, 20, seed=3)
    cfg = BiasedMFConfig(loss="bpr", negatives=3, batch_size=10_000)
    batches = implicit_batches(data, cfg)
    (u1, p1, n1), *_ = batches.epoch(1, 0)
    (u2, p2, n2), *_ = batches.epoch(2, 0)
    (u1b, _, n1b), *_ = batches.epoch(1, 0)
    assert len(u1) == len(data) and n1.shape == (len(data), 3)
    assert torch.equal(n1, n1b) and torch.equal(u1, u1b)
    assert not torch.equal(n1[torch.argsort(u1 * 100 + p1)], n2[torch.argsort(u2 * 100 + p2)])
    rated = Interactions(
        data.users, data.items, data.user_ids, data.item_ids, np.arange(len(data)) % 5 + 1.0
    )
    cfg4 = cfg.replace(implicit_threshold=4.0)
    (u, _, _), *_ = implicit_batches(rated, cfg4).epoch(1, 0)
    assert len(u) == int((rated.ratings >= 4).sum())
    with pytest.raises(ConfigError):
        implicit_batches(data, cfg4)  # a threshold needs ratings


def test_losses_against_hand_computation():
    pos = torch.tensor([2.0, -1.0])
    neg = torch.tensor([[0.5, 1.0], [0.0, -3.0]])

    def nls(x: float) -> float:  # −log σ(x)
        return math.log1p(math.exp(-x))

    bce = (nls(2.0) + nls(-1.0) + nls(-0.5) + nls(-1.0) + nls(0.0) + nls(3.0)) / 6
    assert pointwise_bce(pos, neg).item() == pytest.approx(bce, rel=1e-6)
    pairs = (nls(2.0 - 0.5) + nls(2.0 - 1.0) + nls(-1.0 - 0.0) + nls(-1.0 + 3.0)) / 4
    assert bpr(pos, neg).item() == pytest.approx(pairs, rel=1e-6)
    # large margins stay finite (softplus, not log(sigmoid))
    assert torch.isfinite(bpr(torch.tensor([-200.0]), torch.tensor([[200.0]])))


def test_loss_dependent_defaults_follow_the_loss():
    mse = BiasedMFConfig(estimator="map")
    implicit = BiasedMFConfig(loss="bpr")
    assert mse.monitor == "rmse" and mse.lr_schedule == "cosine" and mse.factors == 128
    assert BiasedMFConfig().factors == 32  # the default estimator for ratings: Gibbs
    assert implicit.monitor == "ndcg@10"
    for key, value in BiasedMFConfig.LOSS_DEFAULTS["bpr"].items():
        assert getattr(implicit, key) == value
    # what the user sets wins; switching the loss back restores the mse defaults
    tuned = BiasedMFConfig(loss="bpr", lr=0.5)
    assert tuned.lr == 0.5
    back = tuned.replace(loss="mse")
    assert back.lr_schedule == "cosine" and back.monitor == "rmse" and back.lr == 0.5
    assert implicit.lr_schedule == "constant" and implicit.factors == 64
    assert BiasedMFConfig.model_validate(implicit.model_dump()) == implicit
    assert create("biased-mf", loss="bpr").task == "ranking"
    assert not create("biased-mf", loss="bce").predicts_ratings
    assert create("biased-mf").predicts_ratings
    assert create("gmf").task == "ranking" and create("gmf", loss="mse").predicts_ratings


def test_recency_boost_repeats_each_users_latest_positives():
    # user "a": times 30, 10, 20, 20 (a tie keeps row order); "b", "c": one row each
    data = Interactions.from_arrays(
        ["a", "a", "a", "b", "a", "c"], [1, 2, 3, 1, 4, 5], timestamps=[30, 10, 20, 5, 20, 1]
    )
    # rows from a's latest: item 1 (j=0), item 4 (j=1, the later row of the tie), 3, 2
    later = np.array([0, 3, 2, 0, 1, 0])
    expected = np.rint(1 + 8.0 * np.exp(-later / 1.0)).astype(int)
    assert expected.tolist() == [9, 1, 2, 9, 4, 9]  # distinct for j = 0..3, so order is tested
    assert recency_repeats(data, 8.0, 1.0).tolist() == expected.tolist()
    assert recency_repeats(data, 0.0, 1.0).tolist() == [1] * 6
    cfg = BiasedMFConfig(loss="bce", negatives=1, batch_size=100, recency_boost=8, recency_span=1)
    (users, pos, _), *_ = implicit_batches(data, cfg).epoch(1, 0)
    uid, iid = data.user_ids.ids, data.item_ids.ids
    pairs = [(uid[u], iid[i]) for u, i in zip(users.tolist(), pos.tolist(), strict=True)]
    assert sorted(pairs) == sorted(
        [("a", 1)] * 9
        + [("a", 2)]
        + [("a", 3)] * 2
        + [("b", 1)] * 9
        + [("a", 4)] * 4
        + [("c", 5)] * 9
    )
    with pytest.raises(ConfigError, match="timestamps"):
        implicit_batches(Interactions.from_arrays([1, 2], [1, 2]), cfg)
    with pytest.raises(ConfigError, match="bce or bpr"):
        create("gmf", loss="mse", recency_boost=1)
