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
from neuralrec.models.base import Recommender


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


@pytest.mark.parametrize(
    ("params", "estimator", "factors"),
    [
        ({}, "gibbs", 32),  # ratings and no trainer option: Gibbs sampling, 32 factors
        ({"factors": 64, "seed": 3, "threads": 1, "samples": 50}, "gibbs", 64),
        ({"epochs": 20}, "map", 128),  # a trainer option asks for the trainer
        ({"lr": 0.01}, "map", 128),
        ({"l2": 0.5}, "map", 128),  # so does a MAP penalty
        ({"loss": "bpr"}, "map", 64),  # implicit losses have no sampler
        ({"estimator": "map"}, "map", 128),
        ({"estimator": "gibbs", "epochs": 5}, "gibbs", 32),  # asked for: kept
    ],
)
def test_estimator_auto_picks_gibbs_for_ratings_unless_the_trainer_is_asked_for(
    params, estimator, factors
):
    for name in ("biased-mf", "mf-history"):
        if name == "mf-history" and "loss" in params:
            continue
        cfg = create(name, **params).config
        assert (cfg.estimator, cfg.factors) == (estimator, factors), (name, params)
        # the resolved values are not the user's: a replace() resolves again
        assert "estimator" not in cfg.model_fields_set or "estimator" in params
        expected = "gibbs" if params.get("estimator") == "gibbs" else "map"
        assert cfg.replace(epochs=3).estimator == expected
        # a saved config (every field written out) reads back the same
        assert type(cfg).model_validate(cfg.model_dump(mode="json")) == cfg


def test_gibbs_refuses_data_parallel_training(data):
    from neuralrec.training.trainer import DistContext

    for name in ("biased-mf", "mf-history"):
        model = create(name, factors=4, samples=3, burn_in=1)
        model.dist = DistContext(rank=0, world_size=2)
        with pytest.raises(ConfigError, match="estimator=map"):
            model.fit(data.train)


def test_mf_history_gibbs_pools_history_into_the_sampled_user_rows(tmp_path):
    # fewer users than items, so that history rows exist that pool into every user row
    ds = synthetic_ratings(n_users=60, n_items=150, n_ratings=3000, seed=2)
    data = split(ds.interactions, "random:0.2", seed=0, valid_fraction=0.1)
    common = dict(factors=8, samples=60, burn_in=20, threads=1, seed=4)
    mf = create("biased-mf", **common).fit(data.train)
    hist = create("mf-history", **common, history_l2=1e-3).fit(
        data.train, data.valid, checkpoint_dir=tmp_path / "ckpt"
    )
    assert (tmp_path / "ckpt").is_dir()  # the sampler's checkpoints go where asked
    assert [r["stage"] for r in hist.history_][-2:] == ["gibbs", "history rows"]
    # the same chain: item rows equal, and with a small ridge λ each training user's pooled
    # history reproduces their sampled row
    torch.testing.assert_close(hist.module_.Q.weight, mf.module_.Q.weight)
    users = np.arange(data.train.n_users)
    torch.testing.assert_close(hist.score_users(users), mf.score_users(users), atol=0.02, rtol=0)
    # a larger λ trades that fit for smoother history rows; both score new users from items
    smooth = create("mf-history", **common, history_l2=3.0).fit(data.train)
    fitted = evaluate(hist, data, protocol="rating").summary()["rating/rmse"]
    assert fitted <= evaluate(smooth, data, protocol="rating").summary()["rating/rmse"] + 1e-6
    ids = data.train.item_ids.to_ids(np.arange(5))
    top, _ = smooth.recommend_from_history(ids, k=5, ratings=[5, 4, 1, 2, 5])
    assert len(top) == 5 and not set(top) & set(ids)
    # saved and loaded, it scores the same
    smooth.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    torch.testing.assert_close(back.score_users(users), smooth.score_users(users))


def test_gibbs_folds_in_a_new_user_under_the_fitted_prior(tmp_path):
    ds = synthetic_ratings(n_users=200, n_items=60, n_ratings=6000, seed=5)
    data = ds.interactions
    new = np.isin(data.users, np.arange(20))
    model = create("biased-mf", factors=4, samples=60, burn_in=20, threads=1)
    model.fit(data.subset(np.flatnonzero(~new)))
    model.save(tmp_path / "m")  # the prior travels with the artifact
    loaded = Recommender.load(tmp_path / "m")
    folded, item_only = [], []
    ib = model.module_.item_bias.weight.detach()[:, 0].numpy()
    mu = float(model.module_.mu)
    for u in range(20):
        rows = np.flatnonzero(data.users == u)
        seen, rest = rows[:8], rows[8:]
        scores = loaded.score_history(data.items[seen], data.ratings[seen]).numpy()
        folded.append(scores[data.items[rest]] - data.ratings[rest])
        item_only.append(mu + ib[data.items[rest]] - data.ratings[rest])
    rmse = float(np.sqrt(np.mean(np.concatenate(folded) ** 2)))
    base = float(np.sqrt(np.mean(np.concatenate(item_only) ** 2)))
    assert rmse < base - 0.02, (rmse, base)
