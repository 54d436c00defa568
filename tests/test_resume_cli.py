"""A training run killed with SIGKILL resumes from its last checkpoint and ends with exactly
the result of an uninterrupted run (issue: resume-after-kill)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuralrec.data.synthetic import synthetic_ratings

ROOT = Path(__file__).resolve().parents[1]


def _cmd(data: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "neuralrec",
        "train",
        "mf-history",
        "--dataset",
        str(data / "ratings.csv"),
        "--split",
        "random:0.2",
        "--seed",
        "2",
        "--set",
        "epochs=30",
        "--set",
        "early_stopping=false",
        "--set",
        "factors=16",
        "--set",
        "batch_size=256",
        "--set",
        "threads=1",
        "--out",
        str(out),
        "--quiet",
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_result(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    frame = synthetic_ratings(400, 200, 12000, seed=5).interactions.to_frame()
    frame.to_csv(data / "ratings.csv", index=False)

    reference = tmp_path / "reference"
    subprocess.run(_cmd(data, reference), check=True, env=_env(), capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    ckpt = tmp_path / ".killed.checkpoints" / "checkpoint.safetensors"
    proc = subprocess.Popen(
        _cmd(data, killed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # let it get a few epochs in
    if proc.poll() is not None:
        pytest.fail(
            f"training finished before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not (killed / "metrics.json").exists()

    resumed = subprocess.run(_cmd(data, killed), env=_env(), capture_output=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert json.loads((killed / "metrics.json").read_text()) == json.loads(
        (reference / "metrics.json").read_text()
    )
    hist_a = json.loads((reference / "history.json").read_text())
    hist_b = json.loads((killed / "history.json").read_text())
    assert [h["train_loss"] for h in hist_a] == [h["train_loss"] for h in hist_b]
    assert not ckpt.parent.exists()  # checkpoints are removed once the run is saved
