"""Property tests of every split: disjoint, complete, deterministic, and true to its definition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralrec.data import Interactions, SplitSpec, kfold, split
from neuralrec.errors import ConfigError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def interactions(draw, timestamps: bool = True) -> Interactions:
    """Unique (user, item) pairs with tied timestamps allowed."""
    n_users = draw(st.integers(1, 10))
    n_items = draw(st.integers(1, 12))
    pair = st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1))
    pairs = draw(st.lists(pair, min_size=1, max_size=70, unique=True))
    n = len(pairs)
    ts = draw(st.lists(st.integers(0, 15), min_size=n, max_size=n)) if timestamps else None
    ratings = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
    u, i = zip(*pairs, strict=True)
    return Interactions.from_arrays(np.array(u), np.array(i), np.array(ratings), ts)


fraction = st.sampled_from([0.1, 0.2, 0.25, 0.5, 0.7])
kinds = st.sampled_from(["random", "user-random", "temporal", "user-temporal"])


def keys(data: Interactions) -> list[tuple[int, int]]:
    return list(zip(data.users.tolist(), data.items.tolist(), strict=True))


def parts(sp):
    return [sp.train, sp.test] + ([sp.valid] if sp.valid is not None else [])


def assert_partition(data, sp):
    got = [k for p in parts(sp) for k in keys(p)]
    assert len(got) == len(data), "a row is lost or repeated"
    assert sorted(got) == sorted(keys(data))


def spec_strategy():
    fixed = st.sampled_from(["leave-one-out", "kfold:3:1", "kfold:4:4", "kfold:2:2"])
    with_fraction = st.builds(lambda k, f: f"{k}:{f}", kinds, fraction)
    return st.one_of(with_fraction, fixed)


@FAST
@given(interactions(), spec_strategy(), st.sampled_from([None, 0.1, 0.2]), st.integers(0, 3))
def test_every_split_is_a_deterministic_partition(data, spec, valid, seed):
    sp = split(data, spec, seed=seed, valid_fraction=valid, keep_cold=True)
    assert_partition(data, sp)
    again = split(data, spec, seed=seed, valid_fraction=valid, keep_cold=True)
    for a, b in zip(parts(sp), parts(again), strict=True):
        assert keys(a) == keys(b)
    assert (sp.valid is None) == (valid is None)


@FAST
@given(interactions(), spec_strategy(), st.integers(0, 3))
def test_dropping_cold_rows_leaves_only_known_users_and_items(data, spec, seed):
    kept = split(data, spec, seed=seed, valid_fraction=0.1)
    full = split(data, spec, seed=seed, valid_fraction=0.1, keep_cold=True)
    known_u = set(kept.train.users.tolist())
    known_i = set(kept.train.items.tolist())
    for part in (kept.test, kept.valid):
        assert set(part.users.tolist()) <= known_u and set(part.items.tolist()) <= known_i
        assert set(keys(part)) <= set(keys(data))
    assert keys(kept.train) == keys(full.train)
    assert kept.dropped_cold == len(full.test) - len(kept.test)


@FAST
@given(
    interactions(),
    st.sampled_from(["user-random", "user-temporal", "leave-one-out"]),
    fraction,
    st.sampled_from([None, 0.1, 0.2]),
)
def test_per_user_splits_keep_a_training_row_for_every_user(data, kind, f, valid):
    spec = kind if kind == "leave-one-out" else f"{kind}:{f}"
    sp = split(data, spec, seed=1, valid_fraction=valid, keep_cold=True)
    assert set(sp.train.users.tolist()) == set(data.users.tolist())


@FAST
@given(interactions(), st.booleans())
def test_leave_one_out_holds_out_each_users_latest(data, with_valid):
    sp = split(data, "leave-one-out", seed=0, valid_fraction=0.1 if with_valid else None)
    sizes = data.user_counts()
    latest = {u: data.timestamps[data.users == u].max() for u in np.flatnonzero(sizes)}
    held = split(data, "leave-one-out", keep_cold=True, valid_fraction=0.1 if with_valid else None)
    assert sorted(held.test.users.tolist()) == sorted(np.flatnonzero(sizes >= 2).tolist())
    for u, t in zip(held.test.users.tolist(), held.test.timestamps.tolist(), strict=True):
        assert t == latest[u]
        assert t >= held.train.timestamps[held.train.users == u].max()
    if with_valid:
        for u, t in zip(held.valid.users.tolist(), held.valid.timestamps.tolist(), strict=True):
            assert t >= held.train.timestamps[held.train.users == u].max()
    assert len(sp.test) <= len(held.test)


@FAST
@given(interactions(), fraction, st.sampled_from([None, 0.1]))
def test_temporal_splits_put_the_future_in_test(data, f, valid):
    sp = split(data, f"temporal:{f}", valid_fraction=valid, keep_cold=True)
    if len(sp.train) and len(sp.test):
        assert sp.test.timestamps.min() >= sp.train.timestamps.max()
    if valid and len(sp.valid) and len(sp.test):
        assert sp.test.timestamps.min() >= sp.valid.timestamps.max()
    sp = split(data, f"user-temporal:{f}", keep_cold=True)
    for u in set(sp.test.users.tolist()):
        assert sp.test.timestamps[sp.test.users == u].min() >= (
            sp.train.timestamps[sp.train.users == u].max()
        )


@FAST
@given(interactions(), st.integers(2, 5), st.integers(0, 3))
def test_kfold_test_sets_partition_the_rows(data, k, seed):
    folds = kfold(data, k, seed=seed, keep_cold=True)
    tests = [k_ for sp in folds for k_ in keys(sp.test)]
    assert sorted(tests) == sorted(keys(data))
    for sp in folds:
        assert_partition(data, sp)


@pytest.fixture(scope="module")
def medium():
    rng = np.random.default_rng(0)
    pairs = rng.choice(60 * 50, size=600, replace=False)
    return Interactions.from_arrays(pairs // 50, pairs % 50, rng.integers(1, 6, 600), pairs % 97)


@pytest.mark.parametrize("spec", ["random:0.2", "user-random:0.2", "kfold:5:2", "leave-one-out"])
def test_random_kinds_differ_across_seeds(medium, spec):
    # without timestamps, leave-one-out holds out a random item per user
    data = Interactions(medium.users, medium.items, medium.user_ids, medium.item_ids)
    tests = {tuple(keys(split(data, spec, seed=s, keep_cold=True).test)) for s in range(4)}
    assert len(tests) == 4


def test_random_split_keeps_its_exact_definition(medium):
    f, seed = 0.2, 42
    sp = split(medium, f"random:{f}", seed=seed, keep_cold=True)
    perm = np.random.default_rng(seed).permutation(len(medium))
    n_train = int((1 - f) * len(medium))
    assert sorted(keys(sp.train)) == sorted(keys(medium.subset(perm[:n_train])))


def test_canonical_u_folds_test_their_block_of_lines():
    n = 100_000
    rng = np.random.default_rng(0)
    pairs = rng.choice(1000 * 1000, size=n, replace=False)
    data = Interactions.from_arrays(pairs // 1000, pairs % 1000, rng.integers(1, 6, n))
    for k in range(1, 6):
        sp = split(data, f"u{k}", keep_cold=True)
        block = slice((k - 1) * 20_000, k * 20_000)
        assert np.array_equal(sp.test.users, data.users[block])
        assert np.array_equal(sp.test.items, data.items[block])
        assert len(sp.train) == 80_000
    with pytest.raises(ConfigError, match="100000 rows"):
        split(data.subset(np.arange(10)), "u1")


@pytest.mark.parametrize(
    "bad", ["random:0.1.2", "random:.", "random:1.5", "kfold:1", "kfold:3:4", "u1:0.2", "nope"]
)
def test_malformed_split_names_are_config_errors(bad):
    with pytest.raises(ConfigError):
        SplitSpec.parse(bad)


def test_fractions_must_leave_training_data(medium):
    with pytest.raises(ConfigError, match="leave no training data"):
        split(medium, "random:0.5", valid_fraction=0.5)
    with pytest.raises(ConfigError):
        kfold(medium, 1)
