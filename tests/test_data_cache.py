"""The parsed-dataset cache: hits, invalidation on edits, round trips, unwritable locations."""

from __future__ import annotations

import os

import numpy as np
import pytest

from neuralrec.data import load_dataset
from neuralrec.data.cache import CACHE_VERSION, load_entry


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("NEURALREC_CACHE_DIR", str(root))
    return root


def _files(tmp_path, string_ids=False):
    d = tmp_path / "data"
    d.mkdir()
    u = ["alice", "bob", "alice"] if string_ids else [3, 1, 3]
    rows = [f"{u[0]},10,4,100", f"{u[1]},20,3.5,90", f"{u[2]},20,5,80"]
    (d / "ratings.csv").write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    (d / "movies.csv").write_text("movieId,title,genres\n10,A (1999),Drama|War\n20,B,Comedy\n")
    return d / "ratings.csv"


def _same(a, b):
    x, y = a.interactions, b.interactions
    for name in ("users", "items", "ratings", "timestamps"):
        assert np.array_equal(getattr(x, name), getattr(y, name)), name
    assert x.user_ids == y.user_ids and x.item_ids == y.item_ids
    assert a.items.equals(b.items)


@pytest.mark.parametrize("string_ids", [False, True])
def test_reload_hits_the_cache_and_round_trips(tmp_path, cache_root, string_ids):
    path = _files(tmp_path, string_ids)
    first = load_dataset(path)
    second = load_dataset(path)
    assert (first.info["cache"], second.info["cache"]) == ("miss", "hit")
    _same(first, second)
    assert second.items.loc[10, "genres"] == ["Drama", "War"]
    assert isinstance(second.items.loc[10, "genres"], list)
    assert load_entry(cache_root / "parsed" / os.path.basename(second.info["cache_path"]))


def test_editing_a_source_file_invalidates_the_entry(tmp_path, cache_root):
    path = _files(tmp_path)
    load_dataset(path)
    text = path.read_text().replace("3,20,5,80", "3,20,1,80")
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    reloaded = load_dataset(path)
    assert reloaded.info["cache"] == "miss"
    assert reloaded.interactions.ratings.tolist() == [4.0, 3.5, 1.0]
    # the stale entry is gone: one entry per source
    assert len(list((cache_root / "parsed").iterdir())) == 1
    (path.parent / "movies.csv").write_text("movieId,title,genres\n10,C (2001),Drama\n")
    assert load_dataset(path).items.loc[10, "title"] == "C (2001)"


def test_options_are_part_of_the_key(tmp_path, cache_root):
    path = _files(tmp_path)
    load_dataset(path)
    implicit = load_dataset(path, columns="user=user,item=item,rating=none")
    assert implicit.info["cache"] == "miss" and implicit.interactions.ratings is None


def test_no_cache_and_unwritable_cache(tmp_path, monkeypatch):
    path = _files(tmp_path)
    ds = load_dataset(path, cache=False)
    assert "cache_path" not in ds.info
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("NEURALREC_CACHE_DIR", str(blocker))
    with pytest.warns(UserWarning, match="could not write the parsed-data cache"):
        ds = load_dataset(path)
    assert ds.info["cache"] == "unwritable" and len(ds.interactions) == 3


def test_corrupt_entry_is_ignored_and_rebuilt(tmp_path, cache_root):
    path = _files(tmp_path)
    entry = load_dataset(path).info["cache_path"]
    manifest = os.path.join(entry, "manifest.json")
    with open(manifest, "w") as fh:
        fh.write(f'{{"version": {CACHE_VERSION}, "name": "x"}}')  # missing arrays/keys
    os.remove(os.path.join(entry, "users.npy"))
    with pytest.warns(UserWarning, match="ignoring unreadable cache entry"):
        ds = load_dataset(path)
    assert ds.info["cache"] == "miss" and len(ds.interactions) == 3


def test_cached_arrays_are_read_only_and_usable(tmp_path, cache_root):
    from neuralrec.data import split

    path = _files(tmp_path)
    load_dataset(path)
    data = load_dataset(path).interactions
    with pytest.raises(ValueError):
        data.ratings[0] = 1.0
    sp = split(data, "random:0.34", seed=0, keep_cold=True)
    assert len(sp.train) + len(sp.test) == 3
    assert data.tocsr().sum() == pytest.approx(12.5)
