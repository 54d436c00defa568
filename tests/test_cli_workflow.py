"""End to end: train -> evaluate -> recommend -> similar through the CLI, on generated files."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from neuralrec.cli.main import app
from neuralrec.data.synthetic import synthetic_ratings
from neuralrec.workflow import RunConfig, load

runner = CliRunner()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A MovieLens-style directory (ratings.csv + movies.csv) written from generated data."""
    ds = synthetic_ratings(80, 50, 1600, seed=3)
    root = tmp_path_factory.mktemp("toydata")
    frame = ds.interactions.to_frame()
    frame.columns = ["userId", "movieId", "rating", "timestamp"]
    frame.to_csv(root / "ratings.csv", index=False)
    items = ds.items.reset_index()
    pd.DataFrame(
        {
            "movieId": items["item"],
            "title": items["title"],
            "genres": ["|".join(g) for g in items["genres"]],
        }
    ).to_csv(root / "movies.csv", index=False)
    return root


def _invoke(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_train_evaluate_recommend_similar(data_dir, tmp_path):
    out = tmp_path / "run"
    res = _invoke(
        [
            "train",
            "biased-mf",
            "--dataset",
            str(data_dir),
            "--split",
            "random:0.2",
            "--seed",
            "1",
            "--set",
            "epochs=5",
            "--set",
            "factors=8",
            "--out",
            str(out),
            "--quiet",
            "--json",
        ]
    )
    trained = json.loads(res.stdout)
    assert trained["metrics"]["rating/rmse"] < 1.5
    for name in (
        "neuralrec.json",
        "config.toml",
        "weights.safetensors",
        "metrics.json",
        "history.json",
        "learning_curve.png",
    ):
        assert (out / name).exists(), name

    evaluated = json.loads(_invoke(["evaluate", str(out), "--json"]).stdout)
    assert evaluated == pytest.approx(trained["metrics"])

    model = load(out)
    user = str(model.user_ids_.ids[0])
    rec = json.loads(_invoke(["recommend", str(out), "--user", user, "-k", "5", "--json"]).stdout)
    assert len(rec["items"]) == 5 and not rec["cold_start"]
    seen = set(model.seen_[0].indices)
    assert not {model.item_ids_.index_of(r["item"]) for r in rec["items"]} & seen
    assert all("title" in r for r in rec["items"])

    cold = json.loads(
        _invoke(["recommend", str(out), "--user", "no-such-user", "-k", "3", "--json"]).stdout
    )
    assert cold["cold_start"] and len(cold["items"]) == 3

    title = model.item_titles_[0]
    sim = json.loads(_invoke(["similar", str(out), "--item", title, "-k", "4", "--json"]).stdout)
    assert sim["item"]["title"] == title and len(sim["similar"]) == 4
    assert title not in [r["title"] for r in sim["similar"]]


@pytest.mark.parametrize("valid", [None, "0.1"])
def test_default_biased_mf_gibbs_trains_saves_and_recommends(data_dir, tmp_path, valid):
    """No trainer option set: biased-mf samples (its history holds sweeps, no training loss)."""
    out = tmp_path / "gibbs"
    args = ["train", "biased-mf", "--dataset", str(data_dir), "--split", "random:0.2"]
    args += ["--set", "samples=12", "--set", "burn_in=4", "--out", str(out), "--quiet"]
    if valid:
        args += ["--valid-fraction", valid]
    _invoke(args)
    model = load(out)
    assert model.config.estimator == "gibbs" and len(model.history_) == 12
    assert "train_loss" not in model.history_[0]
    # with a validation part the sweeps carry its RMSE and are plotted; without, nothing is
    assert (out / "learning_curve.png").exists() == bool(valid)
    top = json.loads(_invoke(["recommend", str(out), "--user", "1", "-k", "3", "--json"]).stdout)
    assert len(top["items"]) == 3


def test_compare_report_with_sampled_closed_form_and_trained_models(data_dir, tmp_path):
    out = tmp_path / "cmp"
    sampled_only = ["compare", "bias", "biased-mf", "ease", "--dataset", str(data_dir)]
    sampled_only += ["--set", "biased-mf.samples=12", "--out", str(out), "--quiet"]
    _invoke(sampled_only)
    for name in ("compare.md", "compare.html", "compare.json", "metrics.png"):
        assert (out / name).exists(), name
    # no model recorded a loss or a validation metric: no empty chart, no section for it
    assert not (out / "curves.png").exists()
    assert "Learning curves" not in (out / "compare.html").read_text()
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["bias", "biased-mf", "ease"]
    trained = tmp_path / "cmp2"
    with_loss = ["compare", "bias", "biased-mf", "--dataset", str(data_dir)]
    _invoke([*with_loss, "--set", "biased-mf.epochs=3", "--out", str(trained), "--quiet"])
    assert (trained / "curves.png").exists()
    assert "Learning curves" in (trained / "compare.html").read_text()


def test_config_round_trip_reproduces_metrics(data_dir, tmp_path):
    first = tmp_path / "a"
    _invoke(
        [
            "train",
            "biased-mf",
            "--dataset",
            str(data_dir),
            "--split",
            "user-random:0.2",
            "--seed",
            "4",
            "--set",
            "epochs=4",
            "--set",
            "factors=6",
            "--out",
            str(first),
            "--quiet",
        ]
    )
    cfg = RunConfig.from_file(first)
    assert cfg.params == {"epochs": 4, "factors": 6} and cfg.seed == 4
    second = tmp_path / "b"
    _invoke(["train", "--config", str(first / "config.toml"), "--out", str(second), "--quiet"])
    a = json.loads((first / "metrics.json").read_text())
    b = json.loads((second / "metrics.json").read_text())
    assert a == b


def test_bad_input_gives_clear_errors(data_dir, tmp_path):
    res = runner.invoke(
        app, ["train", "no-such-model", "--dataset", str(data_dir), "--out", str(tmp_path / "x")]
    )
    assert res.exit_code != 0 and "unknown model" in str(res.exception)
    res = runner.invoke(
        app,
        [
            "train",
            "bias",
            "--dataset",
            str(data_dir),
            "--split",
            "sideways",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert res.exit_code != 0 and "unknown split" in str(res.exception)
    res = runner.invoke(
        app,
        [
            "train",
            "bias",
            "--dataset",
            str(data_dir),
            "--set",
            "nope=1",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert res.exit_code != 0 and "nope" in str(res.exception)


def test_quickstart_end_to_end_with_a_report(data_dir, tmp_path):
    """The main job on generated data: its default models (Gibbs-sampled MF among them), the
    comparison table, a top-10 with titles, neighbours, and the report on disk."""
    out = tmp_path / "qs"
    args = ["quickstart", "--dataset", str(data_dir), "--split", "random:0.2"]
    res = _invoke([*args, "--item", "Movie 0 (1979)", "--out", str(out)])
    assert "top-10 for user 1" in res.output and "movies most similar to Movie 0" in res.output
    assert (out / "compare.html").exists() and (out / "compare.json").exists()
