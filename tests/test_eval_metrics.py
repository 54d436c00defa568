"""Metric functions against hand-computed cases and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from neuralrec.errors import ConfigError
from neuralrec.evaluation.metrics import (
    catalog_coverage,
    discounts,
    grouped_roc_auc,
    log_loss,
    mae,
    rmse,
    roc_auc,
    sampled_metrics,
    topk_metrics,
)


def test_rmse_mae_by_hand():
    truth = np.array([4.0, 3.0, 5.0, 1.0])
    pred = np.array([3.5, 3.0, 4.0, 2.0])  # errors -0.5, 0, -1, +1
    assert rmse(truth, pred) == pytest.approx(np.sqrt((0.25 + 0 + 1 + 1) / 4))
    assert mae(truth, pred) == pytest.approx(2.5 / 4)
    assert np.isnan(rmse(np.zeros(0), np.zeros(0)))


def test_auc_by_hand_with_ties():
    # positives 0.9, 0.5; negatives 0.5, 0.1 -> pairs: (0.9>0.5), (0.9>0.1), (0.5=0.5), (0.5>0.1)
    assert roc_auc([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == pytest.approx(3.5 / 4)
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_auc_matches_sklearn_on_random_data_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.random(300) < rng.uniform(0.1, 0.9)
        s = rng.integers(0, 8, 300).astype(float)  # heavy ties
        assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_grouped_auc_matches_per_group_sklearn():
    rng = np.random.default_rng(1)
    g = rng.integers(0, 12, 800)
    y = rng.random(800) < 0.4
    s = rng.integers(0, 5, 800).astype(float)
    got = grouped_roc_auc(g, y, s, 13)  # group 12 is empty
    for j in range(12):
        yj, sj = y[g == j], s[g == j]
        if yj.all() or not yj.any():
            assert np.isnan(got[j])
        else:
            assert got[j] == pytest.approx(roc_auc_score(yj, sj), abs=1e-12)
    assert np.isnan(got[12])


def test_log_loss_matches_sklearn_and_rejects_non_probabilities():
    rng = np.random.default_rng(2)
    y = rng.random(200) < 0.5
    p = rng.random(200)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p), rel=1e-9)
    with pytest.raises(ConfigError):
        log_loss(y, p * 5)


def test_topk_metrics_anchor_toy_case():
    # the anchor's reference case: after masking the two training items the relevant items
    # {2, 5, 11} sit at ranks 1, 4 and 10 of the list
    hits = np.zeros((1, 10), bool)
    hits[0, [0, 3, 9]] = True
    m = topk_metrics(hits, np.array([3]), ks=[10])
    dcg = 1 / np.log2(2) + 1 / np.log2(5) + 1 / np.log2(11)
    idcg = 1 / np.log2(2) + 1 / np.log2(3) + 1 / np.log2(4)
    assert m["precision@10"][0] == pytest.approx(0.3)
    assert m["recall@10"][0] == pytest.approx(1.0)
    assert m["ndcg@10"][0] == pytest.approx(dcg / idcg)
    assert m["hit@10"][0] == 1.0
    assert m["map@10"][0] == pytest.approx((1 / 1 + 2 / 4 + 3 / 10) / 3)
    assert m["mrr@10"][0] == pytest.approx(1.0)


def test_topk_metrics_cut_at_k_single_relevant_and_short_lists():
    hits = np.array(
        [
            [False, False, True, False, False],  # one relevant item at rank 3
            [False, False, False, False, False],  # no hit
            [False, True, False, False, False],  # list shorter than K matters below
        ]
    )
    n_rel = np.array([1, 2, 4])
    m = topk_metrics(hits, n_rel, ks=[2, 3, 8])
    assert m["mrr@2"].tolist() == [0.0, 0.0, 0.5]
    assert m["mrr@3"][0] == pytest.approx(1 / 3)
    assert m["ndcg@3"][0] == pytest.approx(1 / np.log2(4))  # IDCG = 1 with one relevant item
    # K = 8 is longer than the 5 listed positions: missing positions are misses
    assert m["precision@8"][2] == pytest.approx(1 / 8)
    assert m["recall@8"][2] == pytest.approx(1 / 4)
    ideal = discounts(4).sum()
    assert m["ndcg@8"][2] == pytest.approx(1 / np.log2(3) / ideal)
    assert m["map@8"][2] == pytest.approx((1 / 2) / 4)
    assert m["hit@2"].tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ConfigError):
        topk_metrics(hits, np.array([1, 0, 1]), ks=[2])
    with pytest.raises(ConfigError):
        topk_metrics(hits, n_rel, ks=[2], metrics=["auc"])


def test_sampled_metrics_by_hand():
    m = sampled_metrics(np.array([1, 3, 11, 101]), ks=[10])
    assert m["hit@10"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert m["ndcg@10"].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert m["mrr"].tolist() == pytest.approx([1.0, 1 / 3, 1 / 11, 1 / 101])


def test_catalog_coverage():
    assert catalog_coverage(np.array([[0, 1], [1, 3]]), 8) == pytest.approx(3 / 8)
    assert catalog_coverage(np.array([[0, -1]]), 4) == pytest.approx(1 / 4)
