"""Feature preprocessing: years, multi-hot bags, scalers fitted on training data, categories."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import require_dataset
from neuralrec.data import Interactions, ItemFeatures, UserFeatures, load_dataset, split
from neuralrec.data.features import (
    CategoricalEncoder,
    MinMaxScaler,
    MultiHot,
    StandardScaler,
    bin_numeric,
    ordinal_encode,
    parse_year,
    parse_years,
)
from neuralrec.data.side_info import AGE_EDGES, ItemFeatureEncoder, UserFeatureEncoder


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURALREC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    ("title", "year"),
    [
        ("Toy Story (1995)", 1995),
        ("Hyena Road (2015) ", 2015),
        ("Ciao, Professore! (Io speriamo che me la cavo) (1992)", 1992),
        ("Fawlty Towers (1975-1979)", 1975),
        ("Babylon 5", None),
        ("Movie (199x)", None),
        ("1984 (Nineteen Eighty-Four)", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_year(title, year):
    assert parse_year(title) == year


def test_parse_years_gives_nan_for_missing():
    out = parse_years(["A (2001)", "B", None])
    assert out[0] == 2001 and math.isnan(out[1]) and math.isnan(out[2])


def test_multihot_layout_matches_embedding_bag():
    mh = MultiHot.from_lists([["Drama", "Comedy"], [], ["Comedy"], None])
    assert mh.vocab == ("Comedy", "Drama")
    assert mh.offsets.tolist() == [0, 2, 2, 3, 3] and mh.indices.tolist() == [0, 1, 0]
    assert mh.labels(0) == ["Comedy", "Drama"] and mh.labels(1) == []
    dense = mh.to_dense()
    assert dense.tolist() == [[1, 1], [0, 0], [1, 0], [0, 0]]
    bag = torch.nn.EmbeddingBag(len(mh.vocab), 3, mode="mean")
    out = bag(torch.from_numpy(mh.indices), torch.from_numpy(mh.bag_offsets))
    weight = bag.weight.detach()
    assert torch.allclose(out[0], weight.mean(0))
    assert torch.equal(out[1], torch.zeros(3))
    picked = mh.take(np.array([2, 0]))
    assert picked.labels(0) == ["Comedy"] and picked.labels(1) == ["Comedy", "Drama"]


def test_multihot_with_a_fixed_vocab_drops_unknown_labels():
    mh = MultiHot.from_lists([["Drama", "Western"]], vocab=("Comedy", "Drama"))
    assert mh.labels(0) == ["Drama"]


def test_minmax_is_fitted_on_training_data_only():
    sc = MinMaxScaler().fit([1990, 2000, np.nan])
    assert sc.transform([1990, 1995, 2010]).tolist() == [0.0, 0.5, 2.0]
    assert MinMaxScaler(clip=True).fit([0, 10]).transform([-5, 20]).tolist() == [0.0, 1.0]
    assert MinMaxScaler().fit([3, 3]).transform([3, 4]).tolist() == [0.0, 1.0]
    again = MinMaxScaler.from_dict(sc.to_dict())
    assert again.transform([1995]).tolist() == [0.5]
    assert np.allclose(sc.inverse_transform(sc.transform([1993])), [1993])
    with pytest.raises(ValueError):
        MinMaxScaler().fit([np.nan])


def test_standard_scaler_z_scores():
    train = np.array([1.0, 2.0, 3.0, 4.0])
    sc = StandardScaler().fit(train)
    z = sc.transform(train)
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    assert StandardScaler.from_dict(sc.to_dict()).transform([2.5]).tolist() == [0.0]
    assert np.allclose(sc.inverse_transform(z), train)
    assert StandardScaler().fit([5, 5]).transform([5, 6]).tolist() == [0.0, 1.0]


def test_categorical_encoder_reserves_zero_for_unknown():
    enc = CategoricalEncoder().fit(["M", "F", "M", None, 1.0])
    assert enc.categories_ == ["1", "F", "M"] and enc.n_codes == 4
    assert enc.transform(["F", "X", None, 1]).tolist() == [2, 0, 0, 1]
    assert enc.one_hot(["M", "X"]).tolist() == [[0, 0, 1], [0, 0, 0]]
    assert CategoricalEncoder.from_dict(enc.to_dict()).categories_ == enc.categories_


def test_binning_and_ordinal_encoding():
    ages = [1, 17, 18, 24, 25, 56, 70, np.nan]
    assert bin_numeric(ages, AGE_EDGES).tolist() == [0, 0, 1, 1, 2, 6, 6, -1]
    assert ordinal_encode(["low", "high", "mid", "?"], ["low", "mid", "high"]).tolist() == [
        0,
        2,
        1,
        -1,
    ]


def test_item_features_use_training_statistics_only(small_dataset):
    data = small_dataset.interactions
    sp = split(data, "random:0.2", seed=3)
    feats = ItemFeatures.from_dataset(small_dataset, data.item_ids, train=sp.train)
    assert len(feats) == data.n_items == len(feats.genres)
    counts = np.bincount(sp.train.items, minlength=data.n_items)
    sums = np.bincount(sp.train.items, weights=sp.train.ratings, minlength=data.n_items)
    seen = counts > 0
    assert np.allclose(feats.avg_rating[seen], sums[seen] / counts[seen], atol=1e-5)
    assert np.allclose(feats.avg_rating[~seen], sp.train.ratings.mean(), atol=1e-5)
    assert np.allclose(feats.avg_rating_scaled, (feats.avg_rating - 1) / 4, atol=1e-6)
    assert feats.year_scaled[seen].min() >= 0 and feats.year_scaled[seen].max() <= 1
    assert feats.dense().shape == (data.n_items, 2)
    # whatever the test ratings are, the features stay the same
    t = sp.test
    altered = Interactions(t.users, t.items, t.user_ids, t.item_ids, np.full(len(t), 5.0), None)
    leaked = dataclasses.replace(small_dataset, interactions=sp.train.concat(altered))
    again = ItemFeatures.from_dataset(leaked, data.item_ids, train=sp.train)
    assert np.array_equal(again.avg_rating, feats.avg_rating)
    assert np.array_equal(again.year_scaled, feats.year_scaled)
    everything = ItemFeatures.from_dataset(small_dataset, data.item_ids)
    assert not np.array_equal(everything.avg_rating, feats.avg_rating)


def test_item_encoder_scores_a_new_item_from_metadata(small_dataset):
    feats = ItemFeatures.from_dataset(small_dataset)
    enc = ItemFeatureEncoder.from_dict(feats.encoder.to_dict())
    new = pd.DataFrame({"title": ["Brand New (2019)"], "genres": [["Comedy", "Musical"]]})
    cold = enc.transform(new)
    assert cold.genres.labels(0) == ["Comedy"]  # "Musical" was never seen in training
    assert cold.year[0] == 2019
    assert cold.avg_rating[0] == pytest.approx(feats.encoder.rating_fill)
    no_meta = enc.transform(pd.DataFrame(index=[0]))
    assert no_meta.genres.labels(0) == [] and no_meta.year_scaled[0] == pytest.approx(
        enc.year.transform([enc.year_fill])[0]
    )


def test_user_features_one_hot_and_codes(small_dataset):
    feats = UserFeatures.from_dataset(small_dataset)
    enc = feats.encoder
    assert set(feats.codes) == {"gender", "age", "occupation"}
    width = sum(len(e.categories_) for e in enc.encoders.values())
    assert feats.one_hot.shape == (small_dataset.interactions.n_users, width)
    assert (feats.one_hot.sum(1) == 3).all()  # one category per field for every known user
    unknown = UserFeatureEncoder.from_dict(enc.to_dict()).transform(pd.DataFrame(index=[0]))
    assert all(c.tolist() == [0] for c in unknown.codes.values())
    assert unknown.one_hot.sum() == 0


@pytest.mark.realdata
def test_real_ml100k_features():
    home = require_dataset("ml-100k").parent
    ds = load_dataset("ml-100k", data_home=home)
    sp = split(ds.interactions, "u1")
    items = ItemFeatures.from_dataset(ds, ds.interactions.item_ids, train=sp.train)
    toy = ds.interactions.item_ids.index_of(1)
    assert items.genres.labels(toy) == ["Animation", "Children's", "Comedy"]
    assert items.year[toy] == 1995
    users = UserFeatures.from_dataset(ds)
    assert len(users.encoder.encoders["occupation"].categories_) == 21
