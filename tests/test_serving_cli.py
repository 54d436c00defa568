"""``neuralrec serve``: the real command in a subprocess, with the key from the environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import neuralrec
from neuralrec.cli.main import main
from serving_helpers import train, write_run

SRC = Path(neuralrec.__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


def test_serve_refuses_a_broken_directory_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["neuralrec", "serve", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a neuralrec model directory" in err


@pytest.fixture
def served(tmp_path):
    """``neuralrec serve`` on a free port with NEURALREC_API_KEY set; yields the base URL."""
    run = write_run(train("biased-mf"), tmp_path / "run")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "neuralrec", "serve", str(run), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=_env(NEURALREC_API_KEY="k3y"), stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "server did not start"
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(30)
    # uvicorn shuts down gracefully on SIGTERM (then exits by re-raising the signal)
    assert "Finished server process" in proc.stderr.read().decode()


def test_serve_runs_the_app_with_the_key_from_the_environment(served):
    assert httpx.get(served + "/recommend/5").status_code == 401
    res = httpx.get(served + "/recommend/5?k=3", headers={"X-API-Key": "k3y"})
    assert res.status_code == 200 and len(res.json()["items"]) == 3
    assert httpx.get(served + "/", timeout=5).status_code == 200
