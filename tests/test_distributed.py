"""Data-parallel training: 2 gloo processes under torchrun match one process with the same
seed and effective batch size, and rank 0's artifact loads and recommends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neuralrec.data.synthetic import synthetic_ratings
from neuralrec.workflow import load

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dist") / "ratings.csv"
    synthetic_ratings(300, 150, 9000, seed=5).interactions.to_frame().to_csv(path, index=False)
    return path


def _train(
    ratings_file: Path, out: Path, model: str, batch: int, sets: list[str], nproc: int = 1
) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "neuralrec",
        "train",
        model,
        "--dataset",
        str(ratings_file),
        "--split",
        "random:0.2",
        "--valid-fraction",
        "0.1",
        "--seed",
        "3",
        "--set",
        f"batch_size={batch}",
        "--set",
        "threads=1",
        "--out",
        str(out),
        "--quiet",
        "--json",
    ]
    for s in sets:
        cmd += ["--set", s]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _final_valid(out: Path, metric: str) -> float:
    history = json.loads((out / "history.json").read_text())
    best = history[-1]["best_epoch"]
    return next(h[metric] for h in history if h["epoch"] == best)


@pytest.mark.parametrize(
    ("model", "sets", "metric"),
    [
        ("biased-mf", ["epochs=12"], "rmse"),
        ("biased-mf", ["epochs=12", "optimizer=adam", "lr=0.01"], "rmse"),
        ("neumf", ["epochs=6", "patience=10"], "ndcg@10"),
        ("autorec-i", ["epochs=10", "hidden=64"], "rmse"),
    ],
)
def test_two_processes_match_one(ratings_file, tmp_path, model, sets, metric):
    single = _train(ratings_file, tmp_path / "one", model, 256, sets)
    multi = _train(ratings_file, tmp_path / "two", model, 128, sets, nproc=2)
    assert (
        abs(_final_valid(tmp_path / "one", metric) - _final_valid(tmp_path / "two", metric)) <= 0.01
    )
    key = (
        "rating/rmse"
        if metric == "rmse"
        else next(k for k in single["metrics"] if k.endswith(metric))
    )
    assert multi["metrics"][key] == pytest.approx(single["metrics"][key], abs=0.01)
    model_two = load(tmp_path / "two")
    ids, scores = model_two.recommend(model_two.user_ids_.ids[0], 5)
    assert len(ids) == 5 and scores[0] >= scores[-1]


def test_a_failed_worker_fails_the_launcher(tmp_path):
    cmd = [sys.executable, "-m", "neuralrec", "train", "biased-mf", "--dataset"]
    cmd += [str(tmp_path / "missing.csv"), "--out", str(tmp_path / "run"), "--nproc", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0, done.stderr[-2000:]
