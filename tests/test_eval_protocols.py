"""evaluate(), the test-items ranking view, rating metrics and paired significance tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, roc_auc_score

from neuralrec.data import Interactions, split
from neuralrec.errors import ConfigError
from neuralrec.evaluation import (
    evaluate,
    full_ranking,
    paired_test,
    rank_test_items,
    rating_metrics,
    sample_negatives,
)
from neuralrec.evaluation.metrics import discounts
from neuralrec.evaluation.ranking_view import TEST_ITEMS_METRICS
from neuralrec.models.baselines import Bias, RandomGuess


@pytest.fixture(scope="module")
def setup(small_dataset):
    sp_ = split(small_dataset.interactions, "random:0.2", seed=3, valid_fraction=0.1)
    return sp_, Bias().fit(sp_.train), RandomGuess().fit(sp_.train)


class Oracle:
    """Scores every item by its test rating plus noise: a model that must win."""

    def __init__(self, test, noise: float, seed: int = 0) -> None:
        dense = test.tocsr().toarray()
        rng = np.random.default_rng(seed)
        self.table = torch.from_numpy((dense + noise * rng.normal(size=dense.shape)).astype("f4"))

    def score_users(self, users):
        return self.table[torch.from_numpy(np.asarray(users, np.int64))]


def test_ranking_view_by_hand_with_pessimistic_ties():
    users = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    ratings = np.array([5, 3, 4, 1, 4, 2, 3, 4.0])
    scores = np.array([0.9, 0.8, 0.8, 0.1, 0.5, 0.3, 0.2, 0.7])
    res = rank_test_items(users, ratings, scores, ks=(2, 10))
    # user 0 ranked relevance: 1, 0 (tie: non-relevant first), 1, 1, 0 ; user 1 is skipped
    assert res.users.tolist() == [0, 2] and res.n_skipped == 1
    d = discounts(10)
    p = res.per_user
    assert p["precision@2"].tolist() == pytest.approx([0.5, 1.0])
    assert p["precision_strict@2"].tolist() == pytest.approx([0.5, 0.5])
    assert p["precision@10"].tolist() == pytest.approx([3 / 5, 1.0])
    assert p["precision_strict@10"].tolist() == pytest.approx([3 / 10, 1 / 10])
    dcg = d[0] + d[2] + d[3]
    assert p["ndcg@10"][0] == pytest.approx(dcg / d[:3].sum())
    assert p["ndcg_strict@10"][0] == pytest.approx(dcg / d.sum())
    assert p["ndcg@2"][0] == pytest.approx(d[0] / d[:2].sum())
    assert p["ndcg@10"][1] == 1.0 and p["ndcg_strict@2"][1] == pytest.approx(1 / d[:2].sum())
    seen = {
        rank_test_items(users, ratings, scores, ks=(2,), ties="random", seed=s).per_user[
            "precision@2"
        ][0]
        for s in range(40)
    }
    assert seen == {0.5, 1.0}


def test_ranking_view_matches_naive_loop_on_random_data():
    rng = np.random.default_rng(4)
    users = rng.integers(0, 30, 600)
    ratings = rng.integers(1, 6, 600).astype(float)
    scores = rng.integers(0, 4, 600).astype(float)  # many ties
    ks = (1, 5, 40)
    res = rank_test_items(users, ratings, scores, ks=ks, metrics=TEST_ITEMS_METRICS)
    kept = []
    for u in np.unique(users):
        r, s = ratings[users == u] >= 4, scores[users == u]
        if not r.any():
            continue
        kept.append(u)
        j = len(kept) - 1
        hits = r[np.lexsort((r, -s))]  # pessimistic: relevant after non-relevant among ties
        for k in ks:
            h = hits[:k]
            dcg = (h / np.log2(np.arange(2, len(h) + 2))).sum()
            got = {name: res.per_user[f"{name}@{k}"][j] for name in TEST_ITEMS_METRICS}
            assert got["precision"] == pytest.approx(h.sum() / min(k, len(r)))
            assert got["precision_strict"] == pytest.approx(h.sum() / k)
            assert got["recall"] == pytest.approx(h.sum() / r.sum())
            assert got["hit"] == float(h.any())
            assert got["ndcg"] == pytest.approx(dcg / discounts(min(k, r.sum())).sum())
            assert got["ndcg_strict"] == pytest.approx(dcg / discounts(k).sum())
    assert res.users.tolist() == kept


def test_rating_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20, 500)
    truth = rng.integers(1, 6, 500).astype(float)
    pred = truth + rng.normal(0, 1, 500)
    res = rating_metrics(users, truth, pred)
    assert res.values["rmse"] == pytest.approx(np.sqrt(mean_squared_error(truth, pred)))
    assert res.values["mae"] == pytest.approx(mean_absolute_error(truth, pred))
    assert res.values["auc"] == pytest.approx(roc_auc_score(truth >= 4, pred))
    j = 3
    u = res.users[j]
    assert res.per_user["user_mse"][j] == pytest.approx(np.mean((pred - truth)[users == u] ** 2))
    with pytest.raises(ConfigError, match="probabilities"):
        rating_metrics(users, truth, pred, metrics=("logloss",))


def test_evaluate_returns_a_tidy_labelled_table(setup):
    sp_, bias, _ = setup
    res = evaluate(
        bias,
        sp_,
        ks=(5, 10),
        protocol=("full", "sampled", "test-items", "rating"),
        relevance_threshold=4,
    )
    table = res.table
    assert list(table.columns) == [
        "model",
        "protocol",
        "metric",
        "k",
        "value",
        "n_users",
        "n_skipped",
    ]
    assert set(table["protocol"]) == {"full", "sampled-100", "test-items", "rating"}
    assert res.value("rmse") == pytest.approx(
        np.sqrt(
            mean_squared_error(sp_.test.ratings, bias.predict_idx(sp_.test.users, sp_.test.items))
        )
    )
    # the full protocol masks train + validation items and keeps test ratings >= 4
    direct = full_ranking(
        bias.score_users,
        sp_.train_full.tocsr("ones"),
        sp_.test.tocsr("ratings"),
        ks=(5, 10),
        relevance_threshold=4,
    )
    assert res.value("ndcg", 10, protocol="full") == pytest.approx(direct.values["ndcg@10"])
    frame = res.per_user("full")
    assert (frame["user_id"] == sp_.test.user_ids.to_ids(frame["user"])).all()
    assert len(frame) == table.query("protocol == 'full'")["n_users"].iloc[0]
    with pytest.raises(ConfigError):
        res.value("ndcg", 10)  # computed by several protocols: ambiguous


def test_evaluate_with_a_duck_typed_scorer_and_given_cases(setup):
    sp_, _, _ = setup
    oracle = Oracle(sp_.test, noise=0.1)
    res = evaluate(oracle, sp_, protocol=("rating", "full"), ks=(10,))
    assert set(res.table["metric"]) >= {"auc", "user_auc", "ndcg", "recall"}
    assert "rmse" not in set(res.table["metric"])  # it does not claim to predict ratings
    with pytest.raises(ConfigError, match="RMSE"):
        evaluate(oracle, sp_, protocol="rating", metrics=("rmse",))
    cases = sample_negatives(sp_.train_full.tocsr("ones"), sp_.test.tocsr("ones"), n_negatives=20)
    given = evaluate(oracle, sp_, protocol="sampled", cases=cases, ks=(5,))
    assert given.protocols == ["sampled-20"] and given.value("hit", 5) > 0.9


def test_evaluate_rejects_bad_requests(setup):
    sp_, bias, _ = setup
    with pytest.raises(ConfigError, match="protocol"):
        evaluate(bias, sp_, protocol="leave-one-out")
    with pytest.raises(ConfigError, match="metric"):
        evaluate(bias, sp_, protocol="full", metrics=("rmse",))
    with pytest.raises(ConfigError, match="train="):
        evaluate(bias, sp_.test, protocol="full")
    with pytest.raises(ConfigError, match="ratings"):
        evaluate(bias, sp_.test.to_implicit(), train=sp_.train, relevance_threshold=4)


def test_paired_test_finds_the_better_model(setup):
    sp_, _, _ = setup
    good, bad = Oracle(sp_.test, noise=0.5), Oracle(sp_.test, noise=50.0, seed=1)
    a = evaluate(good, sp_, ks=(10,))
    b = evaluate(bad, sp_, ks=(10,))
    t = paired_test(a, b, "ndcg@10")
    assert t.a_better() and t.wilcoxon_pvalue < 1e-6 and t.diff > 0
    va, vb = a.per_user()["ndcg@10"].to_numpy(), b.per_user()["ndcg@10"].to_numpy()
    assert t.t_pvalue == pytest.approx(stats.ttest_rel(va, vb).pvalue)
    assert t.wilcoxon_pvalue == pytest.approx(stats.wilcoxon(va - vb).pvalue)
    assert not paired_test(b, a, "ndcg@10").a_better()
    same = paired_test(a, a, "ndcg@10")
    assert same.t_pvalue == 1.0 and same.wilcoxon_pvalue == 1.0 and not same.a_better()
    one_sided = paired_test(a, b, "ndcg@10", alternative="better")
    assert one_sided.wilcoxon_pvalue < t.wilcoxon_pvalue
    assert "ndcg@10" in str(t)


def test_paired_test_on_errors_and_protocol_labels(setup):
    sp_, bias, rand = setup
    a = evaluate(bias, sp_, protocol="rating")
    b = evaluate(rand, sp_, protocol="rating")
    t = paired_test(a, b, "rmse")
    assert not t.higher_is_better and t.diff < 0 and t.a_better()
    full = evaluate(bias, sp_, protocol="full")
    sampled = evaluate(bias, sp_, protocol="sampled")
    with pytest.raises(ConfigError, match="protocol"):
        paired_test(full.result(), sampled.result(), "hit@10")


@pytest.mark.realdata
def test_most_popular_reproduces_the_anchor_on_ml_latest_small():
    """ANCHORS.md: ml-latest-small random 80/20 (seed 42), relevant = test rating >= 4, full
    ranking over all 9066 movies: most-popular P@10 0.109, NDCG@10 0.138 (the anchor breaks
    equal counts by ascending movieId, so this scorer does too)."""
    home = os.environ.get("NEURALREC_DATA_HOME")
    path = Path(home or "") / "ml-latest-small" / "ratings.csv"
    if not home or not path.is_file():
        pytest.skip("ml-latest-small not found: set NEURALREC_DATA_HOME")
    frame = pd.read_csv(path, usecols=[0, 1, 2, 3]).rename(
        columns={"userId": "user", "movieId": "item"}
    )
    sp_ = split(Interactions.from_frame(frame), "random:0.2", seed=42, keep_cold=True)
    counts = sp_.train.item_counts().astype(np.float64)
    by_count_then_id = torch.from_numpy(counts - np.arange(len(counts)) / len(counts) / 2)
    model = type("Pop", (), {"score_users": lambda self, u: by_count_then_id.expand(len(u), -1)})()
    res = evaluate(model, sp_, ks=(10,), relevance_threshold=4, metrics=("precision", "ndcg"))
    assert res.value("precision", 10) == pytest.approx(0.109, abs=5e-4)
    assert res.value("ndcg", 10) == pytest.approx(0.138, abs=5e-4)
    assert res.table["n_users"].iloc[0] == 649
