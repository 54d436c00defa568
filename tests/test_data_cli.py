"""``neuralrec datasets list/info/download`` on generated files, then the real done-when checks."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from conftest import require_dataset
from neuralrec.cli.main import app, main
from neuralrec.errors import DataError

runner = CliRunner()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURALREC_CACHE_DIR", str(tmp_path / "cache"))


def info_json(*args: str) -> dict:
    result = runner.invoke(app, ["datasets", "info", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # stdout holds exactly one JSON object


def test_info_json_on_a_csv_with_column_mapping(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("who,what,stars\na,x,1\na,y,2\nb,x,2\n")
    out = info_json(str(path), "--columns", "user=who,item=what,rating=stars")
    assert (out["users"], out["items"], out["interactions"]) == (2, 2, 3)
    assert out["rating_histogram"] == {"1": 1, "2": 2}
    assert out["density"] == pytest.approx(0.75)


def test_info_with_separator_option_and_text_output(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("1;10;4\n2;10;5\n")
    out = info_json(str(path), "--sep", ";")
    assert out["interactions"] == 2
    result = runner.invoke(app, ["datasets", "info", str(path)])
    assert result.exit_code == 0
    assert "2 users x 1 items, 2 rows" in result.stdout and "ratings:" in result.stdout


def test_info_reports_bad_input_with_file_and_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("user,item,rating\n1,2,3\n1,3,9\n")
    result = runner.invoke(app, ["datasets", "info", str(path), "--rating-scale", "1,5"])
    assert isinstance(result.exception, DataError) and result.exception.line == 3
    monkeypatch.setattr(sys, "argv", ["neuralrec", "datasets", "info", str(path), "--sep", "|"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert "wrong separator" in capsys.readouterr().err


def test_list_shows_offline_copies(tmp_path, monkeypatch):
    d = tmp_path / "ml-100k"
    d.mkdir()
    for f in ("u.data", "u.item", "u.user"):
        (d / f).write_text("")
    monkeypatch.setenv("NEURALREC_DATA_HOME", str(tmp_path))
    result = runner.invoke(app, ["datasets", "list", "--json"])
    rows = {r["name"]: r for r in json.loads(result.stdout)["datasets"]}
    assert rows["ml-100k"]["offline"] == str(d) and rows["ml-1m"]["available"] is False
    assert rows["ml-1m"]["checksum"].startswith("sha256:")
    text = runner.invoke(app, ["datasets", "list"]).stdout
    assert "ml-25m" in text and "offline" in text


def test_download_of_an_offline_dataset_is_a_no_op(tmp_path, monkeypatch):
    d = tmp_path / "ml-100k"
    d.mkdir()
    for f in ("u.data", "u.item", "u.user"):
        (d / f).write_text("")
    monkeypatch.setenv("NEURALREC_DATA_HOME", str(tmp_path))
    result = runner.invoke(app, ["datasets", "download", "ml-100k"])
    assert result.exit_code == 0 and "available offline" in result.stdout


@pytest.mark.realdata
def test_done_when_ml100k_and_latest_small(monkeypatch):
    monkeypatch.setenv("NEURALREC_DATA_HOME", str(require_dataset("ml-100k").parent))
    out = info_json("ml-100k")
    assert (out["users"], out["items"], out["interactions"]) == (943, 1682, 100000)
    require_dataset("ml-latest-small")
    out = info_json("ml-latest-small")
    assert (out["users"], out["interactions"]) == (671, 100004)


@pytest.mark.realdata
def test_done_when_ml1m_triples_csv():
    path = require_dataset("ml-1m-triples") / "ratings.csv"
    out = info_json(str(path))
    assert (out["users"], out["items"], out["interactions"]) == (6040, 3706, 1000209)
    assert out["has_timestamps"] is False and "title" in out["item_features"]
