"""Sampled ranking (NCF protocol): negatives, ranks, ties and the NCF files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from neuralrec.data.idmap import IdMap
from neuralrec.errors import ConfigError, DataError
from neuralrec.evaluation.sampled import (
    SampledCases,
    read_ncf_test,
    sample_negatives,
    sampled_ranking,
)


def make_mats(seed=0, n_users=30, n_items=300):
    rng = np.random.default_rng(seed)
    u = rng.random((n_users, n_items))
    train = sp.csr_matrix((u < 0.2).astype(np.float32))
    test = sp.csr_matrix(((u >= 0.2) & (u < 0.22)) * rng.integers(1, 6, u.shape).astype(np.float32))
    return train, test


def scorer_of(scores):
    table = torch.as_tensor(np.asarray(scores, np.float32))
    return lambda users: table[torch.from_numpy(np.asarray(users, np.int64))]


def test_negatives_are_unseen_distinct_and_seeded():
    train, test = make_mats()
    cases = sample_negatives(train, test, n_negatives=100, seed=3)
    seen = (train + test).toarray() > 0
    assert len(cases.users) == test.nnz and cases.negatives.shape == (test.nnz, 100)
    for u, pos, neg in zip(cases.users, cases.positives, cases.negatives, strict=True):
        assert test[u, pos] != 0
        assert len(np.unique(neg)) == 100 and not seen[u, neg].any()
    again = sample_negatives(train, test, n_negatives=100, seed=3)
    np.testing.assert_array_equal(again.negatives, cases.negatives)
    other = sample_negatives(train, test, n_negatives=100, seed=4)
    assert not np.array_equal(other.negatives, cases.negatives)
    relevant = sample_negatives(train, test, relevance_threshold=4, seed=3)
    assert len(relevant.users) == int((test.data >= 4).sum())


def test_negatives_padded_when_the_user_saw_almost_everything():
    train = sp.csr_matrix(np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1]], np.float32))
    test = sp.csr_matrix(np.array([[0, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0]], np.float32))
    cases = sample_negatives(train, test, n_negatives=3, seed=0)
    assert sorted(cases.negatives[0][cases.negatives[0] >= 0]) == [4, 5]
    assert (cases.negatives[0] == -1).sum() == 1
    row = set(cases.negatives[1].tolist())
    assert len(row) == 3 and row <= {1, 2, 3, 4}


def test_ranks_by_hand_and_ties():
    # user 0: positive item 0 scores 5; negatives score 9, 5, 5, 1 -> 1 higher, 2 tied
    scores = np.array([[5.0, 9.0, 5.0, 5.0, 1.0, 0.0]])
    cases = SampledCases(np.array([0]), np.array([0]), np.array([[1, 2, 3, 4]]))
    pess = sampled_ranking(scorer_of(scores), cases, ks=(1, 2, 4))
    assert pess.cases["rank"].tolist() == [4.0]
    assert pess.values["hit@2"] == 0.0 and pess.values["hit@4"] == 1.0
    assert pess.values["ndcg@4"] == pytest.approx(1 / np.log2(5))
    assert pess.values["mrr"] == pytest.approx(1 / 4)
    ranks = [
        sampled_ranking(scorer_of(scores), cases, ties="random", seed=s).cases["rank"][0]
        for s in range(60)
    ]
    assert set(ranks) == {2.0, 3.0, 4.0}


def test_constant_model_does_not_get_full_hit_rate():
    train, test = make_mats(1)
    cases = sample_negatives(train, test, n_negatives=100, seed=0)
    const = scorer_of(np.zeros(train.shape))
    pess = sampled_ranking(const, cases, ks=(10,))
    assert pess.values["hit@10"] == 0.0 and (pess.cases["rank"] == 101).all()
    rand = sampled_ranking(const, cases, ks=(10,), ties="random", seed=0)
    assert rand.values["hit@10"] == pytest.approx(10 / 101, abs=0.06)


def test_sampled_ranking_matches_naive_loop():
    train, test = make_mats(2)
    scores = np.random.default_rng(2).integers(0, 6, train.shape).astype(np.float32)
    cases = sample_negatives(train, test, n_negatives=50, seed=1)
    res = sampled_ranking(scorer_of(scores), cases, ks=(5, 10), batch_size=4)
    for j, (u, p, negs) in enumerate(
        zip(cases.users, cases.positives, cases.negatives, strict=True)
    ):
        rank = 1 + (scores[u, negs] >= scores[u, p]).sum()
        assert res.cases["rank"][j] == rank
        assert res.cases["ndcg@10"][j] == pytest.approx(1 / np.log2(rank + 1) if rank <= 10 else 0)
    # per-user values average the user's cases; the summary averages cases
    per_case = res.cases.groupby("user")["hit@10"].mean()
    np.testing.assert_allclose(res.per_user["hit@10"], per_case.loc[res.users].to_numpy())
    assert res.values["hit@10"] == pytest.approx(res.cases["hit@10"].mean())
    assert res.protocol == "sampled-50"


def write_ncf(tmp_path, lines_neg, lines_rating):
    neg = tmp_path / "toy.test.negative"
    rat = tmp_path / "toy.test.rating"
    neg.write_text("".join(line + "\n" for line in lines_neg))
    rat.write_text("".join(line + "\n" for line in lines_rating))
    return neg, rat


def test_read_ncf_files_as_is(tmp_path):
    neg, rat = write_ncf(
        tmp_path,
        ["(0,3)\t1\t2\t4", "(1,0)\t2\t3\t4"],
        ["0\t3\t5\t978824351", "1\t0\t4\t978824352"],
    )
    cases = read_ncf_test(neg, rat)
    assert cases.users.tolist() == [0, 1] and cases.positives.tolist() == [3, 0]
    assert cases.negatives.tolist() == [[1, 2, 4], [2, 3, 4]]
    assert cases.source == "sampled-3-file"
    # raw ids mapped through the training vocabularies (here ids 10.., items reversed)
    users = IdMap([1, 0])
    items = IdMap([4, 3, 2, 1, 0])
    mapped = read_ncf_test(neg, user_ids=users, item_ids=items)
    assert mapped.users.tolist() == [1, 0] and mapped.positives.tolist() == [1, 4]
    assert mapped.negatives[0].tolist() == [3, 2, 0]
    scores = np.tile(np.arange(5, dtype=np.float32), (2, 1))  # higher item index scores higher
    res = sampled_ranking(scorer_of(scores), cases, ks=(1,))
    assert res.cases["rank"].tolist() == [2.0, 4.0]


def test_read_ncf_rejects_mismatched_files(tmp_path):
    neg, rat = write_ncf(tmp_path, ["(0,3)\t1\t2"], ["0\t2\t5\t1"])
    with pytest.raises(DataError):
        read_ncf_test(neg, rat)
    bad = tmp_path / "bad.test.negative"
    bad.write_text("0,3\t1\t2\n")
    with pytest.raises(DataError):
        read_ncf_test(bad)


def test_bad_arguments():
    train, test = make_mats()
    with pytest.raises(ConfigError):
        sample_negatives(train, test, n_negatives=0)
    cases = SampledCases(np.array([0]), np.array([0]), np.array([[1]]))
    with pytest.raises(ConfigError, match="NaN"):
        sampled_ranking(scorer_of(np.full((1, 2), np.nan)), cases)
