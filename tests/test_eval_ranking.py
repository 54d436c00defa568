"""Full ranking against a naive per-user loop, scikit-learn's ndcg_score and hand cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import ndcg_score

from neuralrec.errors import ConfigError
from neuralrec.evaluation.ranking import FULL_METRICS, full_ranking

KS = (1, 3, 10)


def make_case(seed: int = 0, n_users: int = 40, n_items: int = 25):
    """Random train/test matrices with the awkward users the protocol must handle."""
    rng = np.random.default_rng(seed)
    u = rng.random((n_users, n_items))
    train = (u < 0.3).astype(np.float32)
    test = ((u >= 0.3) & (u < 0.5)) * rng.integers(1, 6, (n_users, n_items)).astype(np.float32)
    test[0] = 0  # user 0: no test interaction at all (neither evaluated nor skipped)
    test[1] = 0
    test[1, np.flatnonzero(train[1])[:2]] = 5  # user 1: every test item was seen in training
    test[2] = 0
    test[2, np.flatnonzero(train[2] == 0)[0]] = 5  # user 2: a single relevant item
    train[3] = 1
    train[3, [4, 9, 17]] = 0  # user 3: three candidates, fewer than K = 10
    test[3] = 0
    test[3, 9] = 4
    test[4] = np.where(train[4] == 0, 2.0, 0.0)  # user 4: only ratings below 4
    return sp.csr_matrix(train), sp.csr_matrix(test)


def naive(scores, train, test, ks, threshold=None):
    """Per-user loop over every candidate; ties pessimistic (relevant after non-relevant)."""
    train, test = train.toarray() > 0, test.toarray()
    rel_all = (test >= threshold) if threshold is not None else test != 0
    out, users, pop = {}, [], train.sum(axis=0)
    covered = {k: set() for k in ks}
    for u in range(train.shape[0]):
        cand = np.flatnonzero(~train[u])
        rel = rel_all[u, cand]
        if not rel.any():
            continue
        users.append(u)
        order = np.lexsort((cand, rel, -scores[u, cand]))
        ranked, hits = cand[order], rel[order]
        n_rel = rel.sum()
        first = np.flatnonzero(hits)[0] + 1
        for k in ks:
            h = hits[:k]
            disc = 1 / np.log2(np.arange(2, len(h) + 2))
            ideal = (1 / np.log2(np.arange(2, min(n_rel, k) + 2))).sum()
            prec_at = np.cumsum(h) / np.arange(1, len(h) + 1)
            vals = {
                "precision": h.sum() / k,
                "recall": h.sum() / n_rel,
                "hit": float(h.any()),
                "ndcg": (h * disc).sum() / ideal,
                "map": (prec_at * h).sum() / min(n_rel, k),
                "mrr": 1 / first if first <= k else 0.0,
                "popularity": pop[ranked[:k]].mean(),
            }
            for name, v in vals.items():
                out.setdefault(f"{name}@{k}", []).append(v)
            covered[k].update(ranked[:k].tolist())
        out.setdefault("mrr_full", []).append(1 / first)
    cov = {f"coverage@{k}": len(covered[k]) / train.shape[1] for k in ks}
    return np.array(users), {k: np.array(v) for k, v in out.items()}, cov


def scorer_of(scores: np.ndarray):
    table = torch.from_numpy(scores.astype(np.float32))
    return lambda users: table[torch.from_numpy(np.asarray(users, np.int64))]


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("threshold", [None, 4.0])
def test_full_ranking_matches_naive_loop(tied, threshold):
    for seed in range(3):
        train, test = make_case(seed)
        rng = np.random.default_rng(100 + seed)
        scores = rng.integers(0, 4, train.shape) if tied else rng.normal(size=train.shape)
        scores = scores.astype(np.float32)
        res = full_ranking(
            scorer_of(scores), train, test, ks=KS, metrics=FULL_METRICS,
            relevance_threshold=threshold, batch_size=7,
        )  # fmt: skip
        users, ref, cov = naive(scores.astype(np.float64), train, test, KS, threshold)
        np.testing.assert_array_equal(res.users, users)
        assert 1 not in users and 0 not in users and 3 in users
        has_test = np.diff(test.indptr) > 0
        assert res.n_skipped == has_test.sum() - len(users)
        for key, want in ref.items():
            if tied and key.startswith("popularity"):
                continue  # which tied items fill a list is arbitrary; metrics above are not
            np.testing.assert_allclose(res.per_user[key], want, atol=1e-12, err_msg=key)
        if not tied:
            for key, want in cov.items():
                assert res.values[key] == pytest.approx(want)


def test_user_whose_items_were_all_seen_is_skipped_and_counted():
    train, test = make_case(0)
    res = full_ranking(scorer_of(np.zeros(train.shape)), train, test, ks=(10,))
    assert 1 not in res.users
    res4 = full_ranking(
        scorer_of(np.zeros(train.shape)), train, test, ks=(10,), relevance_threshold=4
    )
    assert 4 not in res4.users and res4.n_skipped > res.n_skipped


def test_ndcg_matches_sklearn_without_ties():
    train, test = make_case(5)
    scores = np.random.default_rng(5).normal(size=train.shape)
    res = full_ranking(scorer_of(scores), train, test, ks=(3, 10), metrics=("ndcg",))
    t, r = train.toarray() > 0, test.toarray() != 0
    for j, u in enumerate(res.users):
        cand = ~t[u]
        for k in (3, 10):
            want = ndcg_score([r[u, cand]], [scores[u, cand]], k=k)
            assert res.per_user[f"ndcg@{k}"][j] == pytest.approx(want, abs=1e-6)


def test_constant_model_scores_zero_pessimistically_and_chance_randomly():
    n_users, n_items, k = 400, 60, 10
    rng = np.random.default_rng(3)
    train = sp.csr_matrix((rng.random((n_users, n_items)) < 0.2).astype(np.float32))
    test = sp.csr_matrix(
        ((rng.random((n_users, n_items)) < 0.1) & (train.toarray() == 0)).astype(np.float32)
    )
    const = scorer_of(np.zeros((n_users, n_items)))
    metrics = ("precision", "hit", "mrr_full")
    pess = full_ranking(const, train, test, ks=(k,), metrics=metrics)
    assert pess.values[f"hit@{k}"] == 0.0
    n_cand = n_items - np.diff(train.indptr)[pess.users]
    n_rel = np.diff(test.indptr)[pess.users]
    assert pess.per_user["mrr_full"] == pytest.approx(1 / (n_cand - n_rel + 1))
    rand = full_ranking(const, train, test, ks=(k,), metrics=metrics, ties="random", seed=1)
    # under random order, E[precision@K] = n_rel / n_cand (all lists are longer than K)
    expected = (n_rel / n_cand).mean()
    assert rand.values[f"precision@{k}"] == pytest.approx(expected, abs=0.01)
    assert rand.values["mrr_full"] > pess.values["mrr_full"]


def test_batch_size_does_not_change_results():
    train, test = make_case(7)
    scores = np.random.default_rng(7).integers(0, 3, train.shape).astype(np.float32)
    a = full_ranking(scorer_of(scores), train, test, ks=KS, metrics=FULL_METRICS, batch_size=1)
    b = full_ranking(scorer_of(scores), train, test, ks=KS, metrics=FULL_METRICS)
    for key in a.per_user:
        np.testing.assert_allclose(a.per_user[key], b.per_user[key], rtol=0, atol=1e-12)


def test_scorer_tensors_are_left_intact_and_views_accepted():
    train, test = make_case(8)
    cache = torch.randn(train.shape)
    before = cache.clone()
    # a view into the scorer's own cache, written into for masking and restored afterwards
    res = full_ranking(lambda u: cache[u[0] : u[0] + 1], train, test, ks=(5,), batch_size=1)
    assert torch.equal(cache, before)
    row = torch.randn(train.shape[1])
    expanded = full_ranking(lambda u: row.expand(len(u), -1), train, test, ks=(5,))
    assert torch.equal(row, row.clone()) and expanded.n_users == res.n_users
    doubles = full_ranking(lambda u: cache[u].double(), train, test, ks=(5,))
    np.testing.assert_allclose(doubles.per_user["ndcg@5"], res.per_user["ndcg@5"])


def test_errors_are_clear():
    train, test = make_case(9)
    nan = np.full(train.shape, np.nan, dtype=np.float32)
    with pytest.raises(ConfigError, match="NaN"):
        full_ranking(scorer_of(nan), train, test)
    with pytest.raises(ConfigError, match="shape"):
        full_ranking(lambda u: torch.zeros(len(u), 3), train, test)
    with pytest.raises(ConfigError, match="unknown"):
        full_ranking(scorer_of(nan), train, test, metrics=("auc",))
    with pytest.raises(ConfigError, match="tie policy"):
        full_ranking(scorer_of(nan), train, test, ties="optimistic")


def test_summary_keys_used_by_the_trainer():
    train, test = make_case(10)
    res = full_ranking(
        scorer_of(np.random.default_rng(0).normal(size=train.shape)),
        train,
        test,
        ks=(10,),
        metrics=("ndcg", "recall"),
    )
    assert set(res.summary()) == {"ndcg@10", "recall@10"}
    assert res.protocol == "full"


def test_inputs_are_not_modified():
    train, test = make_case(11)
    copies = [(m.data.copy(), m.indices.copy(), m.indptr.copy()) for m in (train, test)]
    full_ranking(scorer_of(np.zeros(train.shape)), train, test, relevance_threshold=4)
    for m, (data, indices, indptr) in zip((train, test), copies, strict=True):
        np.testing.assert_array_equal(m.data, data)
        np.testing.assert_array_equal(m.indices, indices)
        np.testing.assert_array_equal(m.indptr, indptr)


def test_random_ties_never_score_below_pessimistic():
    train, test = make_case(12)
    scores = np.random.default_rng(12).integers(0, 3, train.shape).astype(np.float32)
    metrics = ("precision", "recall", "hit", "ndcg", "mrr_full")
    pess = full_ranking(scorer_of(scores), train, test, ks=(3, 10), metrics=metrics)
    for seed in range(5):
        rand = full_ranking(
            scorer_of(scores), train, test, ks=(3, 10), metrics=metrics, ties="random", seed=seed
        )
        for key, v in rand.per_user.items():
            assert (v >= pess.per_user[key] - 1e-12).all(), key
    assert rand.values["ndcg@3"] > pess.values["ndcg@3"]


def test_no_relevant_test_item_gives_nan_not_an_error():
    train, test = make_case(13)
    res = full_ranking(scorer_of(np.zeros(train.shape)), train, test, relevance_threshold=9)
    assert res.n_users == 0 and res.n_skipped == (np.diff(test.indptr) > 0).sum()
    assert np.isnan(res.values["ndcg@10"]) and res.values["coverage@10"] == 0.0
