"""Tuning: validation-only search, refit, one test score; a killed study resumes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from neuralrec.data.synthetic import synthetic_ratings
from neuralrec.models import create
from neuralrec.tuning import tune
from neuralrec.tuning.search import _grid
from neuralrec.workflow import RunConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tune") / "ratings.csv"
    synthetic_ratings(100, 60, 2500, seed=3).interactions.to_frame().to_csv(path, index=False)
    return path


def test_tune_searches_on_validation_and_refits(ratings_file, tmp_path):
    out = tmp_path / "study"
    res = tune(
        "biased-mf",
        str(ratings_file),
        trials=3,
        out=out,
        split="random:0.2",
        seed=1,
        fixed={"epochs": 4},
    )
    assert res.n_trials == 3 and res.metric == "rmse" and res.best_params["epochs"] == 4
    summary = json.loads((out / "tune.json").read_text())
    values = [t["value"] for t in summary["trials"] if t["state"] == "COMPLETE"]
    assert res.best_value == pytest.approx(min(values))
    # the search starts from the model's defaults (the trainer's: its space is trainer options)
    first = summary["trials"][0]["params"]
    defaults = create("biased-mf", estimator="map").config
    assert first == {k: getattr(defaults, k) for k in first} and set(first) >= {"factors", "l2"}
    # the refitted run trains on train+validation and its config reproduces that
    cfg = RunConfig.from_file(out / "best")
    assert cfg.refit and cfg.valid_fraction == 0.1 and cfg.params == res.best_params
    run = json.loads((out / "best" / "run.json").read_text())
    assert run["valid_rows"] == 0 and run["train_rows"] == 2000
    assert json.loads((out / "best" / "metrics.json").read_text()) == pytest.approx(
        res.test_metrics
    )


def test_grid_sampler_covers_the_grid(ratings_file, tmp_path):
    space = {"factors": ("int", 4, 16, True), "l2": ("cat", [0.05, 0.2])}
    assert _grid(space) == {"factors": [4, 8, 16], "l2": [0.05, 0.2]}
    res = tune(
        "biased-mf",
        str(ratings_file),
        trials=6,
        sampler="grid",
        space=space,
        fixed={"epochs": 2},
        out=tmp_path / "grid",
        split="random:0.2",
    )
    seen = {
        (t["params"]["factors"], t["params"]["l2"])
        for t in json.loads((tmp_path / "grid" / "tune.json").read_text())["trials"]
    }
    assert seen == {(f, lam) for f in (4, 8, 16) for lam in (0.05, 0.2)} and res.n_trials == 6


@pytest.mark.slow
def test_killed_tuning_resumes(ratings_file, tmp_path):
    out = tmp_path / "study"
    cmd = [
        sys.executable,
        "-m",
        "neuralrec",
        "tune",
        "biased-mf",
        "--dataset",
        str(ratings_file),
        "--split",
        "random:0.2",
        "--trials",
        "8",
        "--set",
        "epochs=15",
        "--set",
        "threads=1",
        "--out",
        str(out),
        "--quiet",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    log = tmp_path / "tune.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    db = out / "study.db"

    def finished() -> int:
        # read-only: opening the store through optuna would create its schema when the file
        # is missing, racing the search doing the same (CI saw the search die of it)
        if not db.exists():
            return 0
        try:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
                return con.execute(
                    "SELECT COUNT(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED', 'FAIL')"
                ).fetchone()[0]
        except sqlite3.Error:
            return 0

    deadline = time.time() + 300
    while finished() < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, (
        f"the search ended before it could be killed:\n{log.read_text()[-2000:]}"
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = finished()
    assert 2 <= before < 8 and not (out / "tune.json").exists()
    done = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "tune.json").read_text())
    states = [t["state"] for t in summary["trials"]]
    # the trial that was running when killed stays RUNNING in the store; all others finished
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == 8
    assert json.loads(done.stdout)["trials"] == len(states)
