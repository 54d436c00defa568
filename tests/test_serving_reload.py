"""Hot reload: a new artifact is swapped in atomically, a broken one is refused, requests in
flight finish on the model they started with, and the directory watch reloads by itself."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
from fastapi.testclient import TestClient

from neuralrec.serving import create_app
from serving_helpers import expected_top, train, write_run


@pytest.fixture(scope="module")
def models():
    """Two models whose answers differ (different seeds)."""
    old, new = train("biased-mf", seed=0), train("biased-mf", seed=1)
    assert expected_top(old, 5, 10) != expected_top(new, 5, 10)
    return old, new


def _top(client, user=5):
    return [r["item"] for r in client.get(f"/recommend/{user}?k=10").json()["items"]]


def test_reload_swaps_in_the_new_artifact(models, tmp_path):
    old, new = models
    run = write_run(old, tmp_path / "run")
    with TestClient(create_app(run)) as c:
        assert _top(c) == expected_top(old, 5, 10)
        write_run(new, run)  # atomic: written beside, renamed into place
        assert _top(c) == expected_top(old, 5, 10)  # nothing changes until asked
        res = c.post("/admin/reload")
        assert res.status_code == 200
        body = res.json()
        assert body["previous"]["params"]["seed"] == 0 and body["current"]["params"]["seed"] == 1
        assert _top(c) == expected_top(new, 5, 10)
        assert c.get("/model").json()["params"]["seed"] == 1


def _break_manifest(run):
    manifest = json.loads((run / "neuralrec.json").read_text())
    (run / "neuralrec.json").write_text(json.dumps({**manifest, "format_version": 99}))


def _break_weights(run):
    (run / "weights.safetensors").write_bytes(b"\x00garbage")


def _remove(run):
    shutil.rmtree(run)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_break_manifest, "format version 99"),
        (_break_weights, "cannot read artifact"),
        (_remove, "not a neuralrec model directory"),
    ],
)
def test_a_broken_artifact_is_refused_and_the_old_model_keeps_serving(
    models, tmp_path, damage, message
):
    old, _ = models
    run = write_run(old, tmp_path / "run")
    with TestClient(create_app(run)) as c:
        damage(run)
        res = c.post("/admin/reload")
        assert res.status_code == 409
        detail = res.json()["detail"]
        assert detail.startswith("refused the new artifact, still serving biased-mf")
        assert message in detail
        assert _top(c) == expected_top(old, 5, 10)
        assert c.get("/health").status_code == 200


def test_requests_in_flight_finish_on_the_old_model(models, tmp_path):
    old, new = models
    run = write_run(old, tmp_path / "run")
    app = create_app(run, thread_items=0)  # score in the thread pool, so a request can wait
    model = app.state.holder.current.model
    entered, release = threading.Event(), threading.Event()
    score_users = model.score_users

    def slow_score_users(users):
        entered.set()
        assert release.wait(10)
        return score_users(users)

    model.score_users = slow_score_users
    answers = {}
    with TestClient(app) as c:
        slow = threading.Thread(target=lambda: answers.update(slow=_top(c)))
        slow.start()
        assert entered.wait(10)  # that request now holds the old model
        write_run(new, run)
        assert c.post("/admin/reload").status_code == 200
        assert _top(c, user=6) == expected_top(new, 6, 10)  # new requests: new model
        release.set()
        slow.join(10)
    assert answers["slow"] == expected_top(old, 5, 10)


def _wait_for(predicate, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_the_directory_watch_reloads_new_artifacts_and_refuses_broken_ones(models, tmp_path):
    old, new = models
    run = write_run(old, tmp_path / "run")
    with TestClient(create_app(run, watch_seconds=0.05)) as c:
        seed = lambda: c.get("/model").json()["params"]["seed"]  # noqa: E731
        write_run(new, run)
        assert _wait_for(lambda: seed() == 1)
        assert _top(c) == expected_top(new, 5, 10)
        # a broken artifact renamed into place: refused, the watch keeps the model it has
        broken = tmp_path / "broken"
        shutil.copytree(run, broken)
        _break_weights(broken)
        shutil.rmtree(run)
        broken.rename(run)
        holder = c.app.state.holder
        assert _wait_for(lambda: holder._refused is not None)
        assert seed() == 1 and _top(c) == expected_top(new, 5, 10)


def test_odd_run_files_do_not_stop_a_model_from_loading(models, tmp_path):
    old, _ = models
    run = write_run(old, tmp_path / "run")
    (run / "metrics.json").write_text(json.dumps({"rmse": 0.9, "note": "text", "n": 3}))
    (run / "run.json").write_text("{not json")
    with TestClient(create_app(run)) as c:
        info = c.get("/model").json()
    assert info["metrics"] == {"rmse": 0.9, "n": 3.0} and info["run"] is None
