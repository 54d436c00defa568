"""Downloads against a local fake GroupLens: checksums, atomic writes, offline zips, messages."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import zipfile
from pathlib import Path
from typing import ClassVar

import pytest

from neuralrec.data import download as dl
from neuralrec.data import load_dataset, registry
from neuralrec.data.loader import dataset_status, download_dataset
from neuralrec.errors import ChecksumError, DataError, DatasetNotFoundError

FILES = {
    "u.data": "1\t1\t5\t10\n2\t1\t3\t11\n",
    "u.item": "1|A (1990)|||" + "|0" * 18 + "|1\n",
    "u.user": "1|20|M|writer|00000\n2|30|F|other|11111\n",
}


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURALREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NEURALREC_DATA_HOME", raising=False)


def make_zip(path: Path, members: dict[str, str], folder: str = "ml-100k") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(f"{folder}/{name}" if folder else name, text)
    return path


@pytest.fixture
def fake_spec(tmp_path, monkeypatch):
    """ml-100k served from a file:// URL, with the checksum of that fake archive."""
    archive = make_zip(tmp_path / "served.zip", FILES)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    spec = dataclasses.replace(
        registry.REGISTRY["ml-100k"], url=archive.as_uri(), sha256=digest, md5=None
    )
    monkeypatch.setitem(registry.REGISTRY, "ml-100k", spec)
    return spec


def no_network(*args, **kwargs):
    raise AssertionError("the network must not be used here")


def test_download_verifies_extracts_and_is_reused(tmp_path, fake_spec, monkeypatch):
    seen = []
    ds = load_dataset("ml-100k", data_home=tmp_path / "empty", progress=lambda d, t: seen.append(d))
    assert len(ds.interactions) == 2 and ds.items.loc[1, "genres"] == ["Western"]
    target = tmp_path / "cache" / "datasets" / "ml-100k"
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES)
    assert seen and seen[-1] == (tmp_path / "served.zip").stat().st_size
    assert not list((tmp_path / "cache" / "downloads").iterdir())  # zip removed after extract
    monkeypatch.setattr(dl, "urlopen", no_network)
    assert len(load_dataset("ml-100k", cache=False).interactions) == 2
    assert dataset_status("ml-100k")["cached"] == str(target)


def test_checksum_mismatch_names_the_url_and_leaves_nothing(tmp_path, fake_spec, monkeypatch):
    bad = dataclasses.replace(fake_spec, sha256="0" * 64)
    monkeypatch.setitem(registry.REGISTRY, "ml-100k", bad)
    with pytest.raises(ChecksumError, match="sha256 checksum mismatch") as err:
        load_dataset("ml-100k")
    assert err.value.source == bad.url
    cache = tmp_path / "cache"
    leftovers = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert leftovers == []


def test_md5_is_used_where_no_sha256_is_published(fake_spec, monkeypatch):
    archive = Path(fake_spec.url.removeprefix("file://"))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    good = dataclasses.replace(fake_spec, sha256=None, md5=md5)
    assert dl.verify_checksum(archive, good) == "md5"
    with pytest.raises(ChecksumError, match="md5 checksum mismatch"):
        dl.verify_checksum(archive, dataclasses.replace(good, md5="f" * 32))
    with pytest.raises(ChecksumError, match="no published checksum"):
        dl.verify_checksum(archive, dataclasses.replace(good, md5=None))


def test_interrupted_download_leaves_no_partial_file(tmp_path, fake_spec, monkeypatch):
    class Broken(io.BytesIO):
        headers: ClassVar[dict[str, str]] = {}

        def read(self, n=-1):
            if self.tell() > 10:
                raise OSError("connection reset")
            return super().read(11)

    monkeypatch.setattr(dl, "urlopen", lambda url, timeout: Broken(b"x" * 100))
    with pytest.raises(DatasetNotFoundError, match="connection reset"):
        download_dataset("ml-100k")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_offline_zip_in_data_home_is_verified_and_used(tmp_path, fake_spec, monkeypatch):
    monkeypatch.setattr(dl, "urlopen", no_network)
    home = tmp_path / "home"
    home.mkdir()
    (home / "ml-100k.zip").write_bytes((tmp_path / "served.zip").read_bytes())
    assert dataset_status("ml-100k", data_home=home)["offline_zip"]
    assert len(load_dataset("ml-100k", data_home=home).interactions) == 2
    (home / "ml-100k.zip").write_bytes(b"corrupt")
    monkeypatch.setenv("NEURALREC_CACHE_DIR", str(tmp_path / "cache2"))
    with pytest.raises(ChecksumError):
        load_dataset("ml-100k", data_home=home)


def test_offline_without_copy_says_where_to_put_the_files(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("ml-1m", download=False)
    msg = str(err.value)
    assert "$NEURALREC_DATA_HOME/ml-1m/ratings.dat" in msg and "NEURALREC_DATA_HOME" in msg
    with pytest.raises(DatasetNotFoundError, match=re.escape(f"{tmp_path}/ml-1m/users.dat")):
        load_dataset("ml-1m", data_home=tmp_path, download=False)
    monkeypatch.setattr(dl, "urlopen", lambda url, timeout: (_ for _ in ()).throw(OSError("down")))
    with pytest.raises(DatasetNotFoundError, match=r"Downloading .* failed: down"):
        load_dataset("ml-1m", data_home=tmp_path)


def test_extract_refuses_incomplete_or_unsafe_archives(tmp_path, fake_spec):
    partial = make_zip(tmp_path / "p.zip", {"u.data": FILES["u.data"]})
    with pytest.raises(DataError, match=re.escape("archive lacks ml-100k/u.item")):
        dl.extract(fake_spec, partial, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    unsafe = make_zip(tmp_path / "s.zip", {**FILES, "../../evil": "x"})
    with pytest.raises(DataError, match="unsafe member"):
        dl.extract(fake_spec, unsafe, tmp_path / "out")
    (tmp_path / "nz.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        dl.extract(fake_spec, tmp_path / "nz.zip", tmp_path / "out")


def test_registry_entries_are_complete():
    assert set(registry.known_names()) == {
        "ml-100k",
        "ml-1m",
        "ml-10m",
        "ml-20m",
        "ml-25m",
        "ml-32m",
        "ml-latest-small",
    }
    for spec in registry.REGISTRY.values():
        assert spec.url == f"https://files.grouplens.org/datasets/movielens/{spec.name}.zip"
        assert spec.sha256 or spec.md5, spec.name
        assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        assert spec.md5 is None or re.fullmatch(r"[0-9a-f]{32}", spec.md5)
        assert spec.files and spec.rating_scale[0] < spec.rating_scale[1]
