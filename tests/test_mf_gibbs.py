"""biased-mf estimator=gibbs: the sampler's conditional draws and the fitted posterior mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralrec.data.splits import split
from neuralrec.data.synthetic import synthetic_ratings
from neuralrec.errors import ConfigError
from neuralrec.evaluation import evaluate
from neuralrec.models import create
from neuralrec.models._gibbs import _draw_rows, _side


def test_row_draws_follow_the_conditional_posterior():
    # 3 rows on one side, 5 on the other, 2 factors: the draws of a row [bias, factors] are
    # N(A⁻¹(τ Xᵀy + Λm), A⁻¹) with A = τ XᵀX + Λ and X the rated rows' [1, factors]
    rng = np.random.default_rng(0)
    rows = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    cols = np.array([0, 2, 4, 1, 3, 0, 1, 2, 3])
    values = rng.normal(0, 1, len(rows))
    side = _side(rows, cols, values, (3, 5), torch.device("cpu"))
    other = torch.from_numpy(rng.normal(0, 1, (5, 3)))  # [bias, factors] of the other side
    tau, mu, prec = 2.0, torch.tensor([0.1, -0.2, 0.3]), torch.tensor([1.5, 0.5, 2.0])
    gen = torch.Generator().manual_seed(0)
    out = torch.zeros(3, 3, dtype=torch.float64)
    draws = []
    for _ in range(1000):
        _draw_rows(side, other, tau, mu.double(), prec.double(), out, gen)
        draws.append(out.clone())
    draws = torch.stack(draws)
    for r in range(3):
        mine = cols[rows == r]
        x = torch.cat([torch.ones(len(mine), 1, dtype=torch.float64), other[mine, 1:]], 1)
        y = torch.from_numpy(values[rows == r]) - other[mine, 0]
        a = tau * x.T @ x + torch.diag(prec.double())
        cov = torch.linalg.inv(a)
        mean = cov @ (tau * x.T @ y + prec.double() * mu.double())
        # within 4 standard errors of the n draws
        n = len(draws)
        sd = cov.diagonal().sqrt()
        assert ((draws[:, r].mean(0) - mean).abs() <= 4 * sd / n**0.5).all()
        se_cov = ((sd[:, None] * sd[None, :]).square() + cov.square()).div(n).sqrt()
        assert ((draws[:, r].T.cov() - cov).abs() <= 4 * se_cov).all()


@pytest.fixture(scope="module")
def data():
    ds = synthetic_ratings(n_users=150, n_items=80, n_ratings=5000, seed=1)
    return split(ds.interactions, "random:0.2", seed=0, valid_fraction=0.1)


def test_gibbs_beats_the_baseline_and_is_seeded(data):
    params = dict(estimator="gibbs", factors=8, samples=60, burn_in=20, threads=1)
    seen = []
    model = create("biased-mf", **params).fit(data.train, data.valid, on_epoch_end=seen.append)
    rmse = evaluate(model, data, protocol="rating").summary()["rating/rmse"]
    bias = create("bias").fit(data.train)
    base = evaluate(bias, data, protocol="rating").summary()["rating/rmse"]
    assert rmse < base - 0.05
    # one record a sweep, with the validation RMSE of the running posterior mean
    assert [r["epoch"] for r in model.history_] == list(range(1, 61))
    assert seen == model.history_ and model.history_[-1]["averaged"] == 40
    assert model.history_[-1]["rmse"] < model.history_[19]["rmse"]
    again = create("biased-mf", **params).fit(data.train)
    torch.testing.assert_close(again.module_.P.weight, model.module_.P.weight, rtol=0, atol=0)


def test_gibbs_model_saves_and_loads(tmp_path, data):
    from neuralrec.models.base import Recommender

    model = create("biased-mf", estimator="gibbs", factors=4, samples=5, burn_in=2).fit(data.train)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    users, items = data.test.users[:50], data.test.items[:50]
    np.testing.assert_array_equal(loaded.score_pairs(users, items), model.score_pairs(users, items))


def test_gibbs_needs_ratings_and_mse(data):
    with pytest.raises(ConfigError, match="estimator=gibbs"):
        create("biased-mf", estimator="gibbs", loss="bpr").fit(data.train)


def test_gibbs_resumes_a_killed_chain_exactly(tmp_path, data):
    params = dict(estimator="gibbs", factors=4, samples=6, burn_in=2, threads=1)
    full = create("biased-mf", **params).fit(data.train, data.valid)

    def kill(record):
        if record["epoch"] == 4:
            raise KeyboardInterrupt  # before sweep 4's checkpoint: the resumed run redoes it

    with pytest.raises(KeyboardInterrupt):
        create("biased-mf", **params).fit(
            data.train, data.valid, checkpoint_dir=tmp_path, on_epoch_end=kill
        )
    resumed = create("biased-mf", **params).fit(data.train, data.valid, checkpoint_dir=tmp_path)
    for name in ("P", "Q", "user_bias", "item_bias"):
        torch.testing.assert_close(
            getattr(resumed.module_, name).weight,
            getattr(full.module_, name).weight,
            rtol=0,
            atol=0,
        )
    assert [(h["epoch"], h["rmse"]) for h in resumed.history_] == [
        (h["epoch"], h["rmse"]) for h in full.history_
    ]
    # a checkpoint of other settings is refused rather than silently continued
    with pytest.raises(Exception, match="different configuration"):
        create("biased-mf", **{**params, "factors": 5}).fit(data.train, checkpoint_dir=tmp_path)
