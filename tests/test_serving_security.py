"""HTTP service: API key, body limit, no stack traces, and the similarity indices."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient

from neuralrec.errors import ConfigError
from neuralrec.serving import ann, create_app
from neuralrec.serving.middleware import BodyLimit
from serving_helpers import train, write_run

KEY = "s3cret-key"
PROTECTED = [
    ("GET", "/recommend/5", None),
    ("POST", "/recommend", {"items": [1]}),
    ("GET", "/similar/1", None),
    ("GET", "/items?search=toy", None),
    ("GET", "/model", None),
    ("POST", "/admin/reload", None),
]


@pytest.fixture(scope="module")
def mf():
    return train("biased-mf")


@pytest.fixture(scope="module")
def run_dir(mf, tmp_path_factory):
    return write_run(mf, tmp_path_factory.mktemp("secure") / "run")


@pytest.fixture(scope="module")
def locked(run_dir):
    with TestClient(create_app(run_dir, api_key=KEY)) as c:
        yield c


@pytest.mark.parametrize(("method", "url", "body"), PROTECTED)
def test_every_data_route_needs_the_key(locked, method, url, body):
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
        res = locked.request(method, url, json=body, headers=headers)
        assert res.status_code == 401, (url, headers)
        assert "API key" in res.json()["detail"]
    for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        assert locked.request(method, url, json=body, headers=headers).status_code == 200


def test_health_page_and_docs_stay_open(locked):
    for url in ("/health", "/", "/static/app.js", "/docs", "/openapi.json"):
        assert locked.get(url).status_code == 200, url
    schemes = locked.get("/openapi.json").json()["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"apiKey", "http"}


def test_without_a_key_everything_is_open(run_dir):
    with TestClient(create_app(run_dir)) as c:
        assert c.get("/recommend/5").status_code == 200


def test_unexpected_errors_are_a_generic_500_without_trace(run_dir, caplog):
    app = create_app(run_dir)
    served = app.state.holder.current

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals at /srv/models")

    served.similar = explode
    with TestClient(app, raise_server_exceptions=False) as c, caplog.at_level(logging.ERROR):
        res = c.get("/similar/1")
    assert res.status_code == 500
    assert res.json() == {"detail": "internal server error"}
    assert "secret" not in res.text and "Traceback" not in res.text
    assert "secret internals" in caplog.text  # the trace is logged server-side


def _call(app, headers, chunks):
    """Drive an ASGI app by hand: (status, body) for a request whose body arrives in chunks."""
    sent: list[dict] = []
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_body_limit_counts_real_bytes_not_the_declared_length():
    reached = []

    async def inner(scope, receive, send):
        reached.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limited = BodyLimit(inner, max_bytes=100)
    # a Content-Length that lies: 10 declared, 3 x 60 bytes sent
    assert _call(limited, [(b"content-length", b"10")], [b"x" * 60] * 3)[0] == 413
    assert _call(limited, [(b"content-length", b"5000")], [b"x"])[0] == 413
    assert _call(limited, [(b"content-length", b"-1")], [b"x"])[0] == 413
    assert not reached  # the app never saw an oversized body
    assert _call(limited, [], [b"a" * 50, b"b" * 50]) == (200, b"ok")
    assert reached == [b"a" * 50 + b"b" * 50]


def test_exact_sparse_similarity_matches_the_model(tmp_path):
    pop = train("popularity")  # no item vectors: cosine over training-matrix columns
    with TestClient(create_app(write_run(pop, tmp_path / "pop"))) as c:
        body = c.get("/similar/3?k=5").json()
    ids, _ = pop.similar_items(3, 5)
    assert [r["item"] for r in body["similar"]] == ids.tolist()


def test_approximate_index_finds_the_exact_neighbours(mf):
    pytest.importorskip("usearch", reason="usearch (the ann extra) is not installed")
    vectors = mf.item_vectors()
    exact = ann.build_similarity(vectors, mf.seen_, mode="off")
    approx = ann.build_similarity(vectors, mf.seen_, mode="auto", threshold=50)
    assert approx.kind == "usearch" and approx.approximate
    assert ann.build_similarity(vectors, mf.seen_, mode="auto").kind == "exact"  # small catalog
    recall = []
    for item in range(0, mf.n_items, 7):
        e, _ = exact.search(item, 10)
        a, a_sims = approx.search(item, 10)
        assert item not in a and len(a) == 10
        recall.append(len(set(e) & set(a)) / 10)
        np.testing.assert_allclose(np.sort(a_sims)[::-1], a_sims, atol=1e-5)
    assert np.mean(recall) >= 0.9


def test_ann_on_without_usearch_is_a_clear_error(mf, monkeypatch):
    monkeypatch.setattr(ann, "ann_available", lambda: False)
    with pytest.raises(ConfigError, match="neuralrec\\[ann\\]"):
        ann.build_similarity(mf.item_vectors(), mf.seen_, mode="on")
    assert ann.build_similarity(mf.item_vectors(), mf.seen_, threshold=1).kind == "exact"


def test_the_api_says_when_similar_items_are_approximate(run_dir):
    pytest.importorskip("usearch", reason="usearch (the ann extra) is not installed")
    with TestClient(create_app(run_dir, ann="on")) as c:
        body = c.get("/similar/1?k=5").json()
        assert body["approximate"] is True and len(body["similar"]) == 5
        assert c.get("/model").json()["similarity_index"] == "usearch"
