"""MovieLens layouts (100K, .dat, .csv) on small hand-written copies, then on the real files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import require_dataset
from neuralrec.data import load_dataset, split
from neuralrec.data.movielens import detect_layout
from neuralrec.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NEURALREC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def _ml100k(root: Path) -> Path:
    d = root / "ml-100k"
    d.mkdir()
    (d / "u.data").write_text("3\t1\t4\t890\n1\t2\t5\t880\n1\t1\t3\t870\n")
    flags = ["0"] * 19
    anim = flags.copy()
    anim[3] = anim[5] = "1"  # Animation, Comedy
    unknown = flags.copy()
    unknown[0] = "1"
    lines = [
        "|".join(["1", "Café Olé (1995)", "01-Jan-1995", "", "http://x", *anim]),
        "|".join(["2", "unknown", "", "", "", *unknown]),
    ]
    (d / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (d / "u.user").write_text("1|24|M|technician|85711\n3|53|F|other|94043\n")
    return d


def _ml1m(root: Path, name: str = "ml-1m") -> Path:
    d = root / name
    d.mkdir()
    (d / "ratings.dat").write_text(
        "1::10::5::978300760\n2::20::3::978302109\n1::20::4::978301968\n"
    )
    movies = (
        "10::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n20::Amélie (2001)::Comedy\n"
    )
    (d / "movies.dat").write_bytes(movies.encode("latin-1"))
    (d / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    return d


def _mlcsv(root: Path, name: str = "ml-latest-small") -> Path:
    d = root / name
    d.mkdir()
    (d / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3,1260759179\n2,31,4,1\n"
    )
    (d / "movies.csv").write_text(
        'movieId,title,genres\n31,"Dangerous Minds, Part 2 (1995)",Drama\n'
        "1029,Untitled,(no genres listed)\n"
    )
    return d


def test_100k_layout_by_name_from_data_home(tmp_path):
    _ml100k(tmp_path)
    ds = load_dataset("ml-100k", data_home=tmp_path, download=False)
    frame = ds.interactions.to_frame()
    assert frame.values.tolist() == [[3, 1, 4, 890], [1, 2, 5, 880], [1, 1, 3, 870]]
    assert ds.rating_scale == (1.0, 5.0)
    assert ds.items.loc[1, "title"] == "Café Olé (1995)"
    assert ds.items.loc[1, "genres"] == ["Animation", "Comedy"]
    assert ds.items.loc[1, "year"] == 1995
    assert ds.items.loc[2, "genres"] == [] and math.isnan(ds.items.loc[2, "year"])
    assert ds.users.loc[3].tolist() == ["F", 53, "other", "94043"]


def test_dat_layout_latin1_and_colons_in_titles(tmp_path):
    _ml1m(tmp_path)
    ds = load_dataset("ml-1m", data_home=tmp_path, download=False)
    assert len(ds.interactions) == 3 and ds.interactions.timestamps is not None
    assert ds.items.loc[10, "title"] == "Star Wars: Episode IV - A New Hope (1977)"
    assert ds.items.loc[20, "title"] == "Amélie (2001)"
    assert ds.users.loc[1, "occupation"] == "K-12 student"
    assert ds.users.loc[2, "age"] == 56


def test_csv_layout_quoted_titles_and_release_detection(tmp_path):
    _mlcsv(tmp_path)
    ds = load_dataset("ml-latest-small", data_home=tmp_path, download=False)
    assert ds.items.loc[31, "title"] == "Dangerous Minds, Part 2 (1995)"
    assert ds.items.loc[1029, "genres"] == []
    assert ds.info["release"] == "unknown"  # neither the 2016 nor the 2018 size
    assert ds.interactions.ratings.tolist() == [2.5, 3.0, 4.0]


def test_layout_detected_from_a_directory_path(tmp_path):
    d = _ml1m(tmp_path, "my-copy")
    assert detect_layout(d) == "dat"
    ds = load_dataset(d)
    assert ds.name == "my-copy" and len(ds.interactions) == 3 and ds.items is not None


def test_ratings_file_with_metadata_beside_it(tmp_path):
    d = tmp_path / "triples"
    d.mkdir()
    (d / "ratings.csv").write_text("user,movie,rating\n1,10,5\n2,20,3\n")
    (d / "movies.dat").write_text("10::A (1990)::Drama\n20::B::Comedy|Drama\n")
    (d / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    for target in (d, d / "ratings.csv"):
        ds = load_dataset(target)
        assert ds.interactions.timestamps is None
        assert ds.items.loc[20, "genres"] == ["Comedy", "Drama"]
        assert ds.users.loc[2, "gender"] == "M"


def test_metadata_errors_name_the_line(tmp_path):
    d = _ml1m(tmp_path)
    (d / "movies.dat").write_text("10::A (1990)::Drama\nbroken line\n")
    with pytest.raises(DataError, match="line 2") as err:
        load_dataset("ml-1m", data_home=tmp_path, download=False)
    assert err.value.source.endswith("movies.dat")


def test_out_of_range_rating_in_a_named_dataset(tmp_path):
    d = _ml100k(tmp_path)
    (d / "u.data").write_text("3\t1\t4\t890\n1\t2\t7\t880\n")
    with pytest.raises(DataError, match="outside the rating scale") as err:
        load_dataset("ml-100k", data_home=tmp_path, download=False)
    assert err.value.line == 2 and err.value.source.endswith("u.data")


def test_named_dataset_refuses_file_options(tmp_path):
    with pytest.raises(ConfigError):
        load_dataset("ml-100k", data_home=tmp_path, columns="user=a,item=b")


# ------------------------------------------------------------------------- real files
@pytest.mark.realdata
def test_real_ml100k_counts_order_and_u1():
    home = require_dataset("ml-100k").parent
    ds = load_dataset("ml-100k", data_home=home)
    s = ds.summary()
    assert (s["users"], s["items"], s["interactions"]) == (943, 1682, 100000)
    first = ds.interactions.to_frame().iloc[0].tolist()
    assert first == [196, 242, 3, 881250949]  # line 1 of u.data
    sp = split(ds.interactions, "u1", keep_cold=True)
    assert len(sp.test) == 20000
    assert np.array_equal(sp.test.users, ds.interactions.users[:20000])
    assert ds.items.loc[1, "title"] == "Toy Story (1995)"
    assert ds.items.loc[1, "genres"] == ["Animation", "Children's", "Comedy"]
    assert ds.users.loc[1, "occupation"] == "technician"


@pytest.mark.realdata
def test_real_ml_latest_small_2016_layout():
    home = require_dataset("ml-latest-small").parent
    ds = load_dataset("ml-latest-small", data_home=home)
    s = ds.summary()
    assert (s["users"], s["interactions"]) == (671, 100004)
    assert ds.info["release"] == "2016"
    assert ds.rating_scale == (0.5, 5.0) and ds.items.loc[1, "year"] == 1995


@pytest.mark.realdata
def test_real_ml1m_triples_through_the_csv_loader():
    d = require_dataset("ml-1m-triples")
    ds = load_dataset(d / "ratings.csv")
    s = ds.summary()
    assert (s["users"], s["items"], s["interactions"]) == (6040, 3706, 1000209)
    assert s["rating_histogram"] == {
        "1": 56174,
        "2": 107557,
        "3": 261197,
        "4": 348971,
        "5": 226310,
    }
    assert ds.items.loc[1, "title"] == "Toy Story (1995)" and ds.users is not None


def test_a_path_object_is_never_taken_for_a_name(tmp_path, monkeypatch):
    _ml100k(tmp_path)
    monkeypatch.chdir(tmp_path)
    ds = load_dataset(Path("ml-100k"))
    assert ds.name == "ml-100k" and ds.info["source"] == "ml-100k"
    assert load_dataset("./ml-100k").info["layout"] == "ml-100k"


def test_other_folders_of_the_offline_directory_load_by_name(tmp_path, monkeypatch):
    _ml1m(tmp_path, "ml-1m-copy")
    monkeypatch.setenv("NEURALREC_DATA_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path.parent)
    assert len(load_dataset("ml-1m-copy").interactions) == 3
