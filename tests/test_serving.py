"""HTTP service: every route against the model's own answers, on a small trained model."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from neuralrec.serving import create_app
from serving_helpers import IDLE_USER, METRICS, TITLES, expected_top, train, write_run


@pytest.fixture(scope="module")
def mf():
    return train("biased-mf")


@pytest.fixture(scope="module")
def client(mf, tmp_path_factory):
    app = create_app(write_run(mf, tmp_path_factory.mktemp("serve") / "run"))
    with TestClient(app) as c:
        yield c


def _ids(rows):
    return [r["item"] for r in rows]


def test_recommend_known_user_is_the_models_top_k(client, mf):
    res = client.get("/recommend/5", params={"k": 7})
    assert res.status_code == 200
    body = res.json()
    assert body["user"] == "5" and body["cold_start"] is False
    assert _ids(body["items"]) == expected_top(mf, 5, 7)
    seen = set(mf.item_ids_.to_ids(mf.seen_[mf.user_ids_.index_of(5)].indices).tolist())
    assert not seen & set(_ids(body["items"]))
    scores = [r["score"] for r in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert all(r["title"] == mf.item_title(r["item"]) for r in body["items"])


def test_recommend_can_include_seen_items(client, mf):
    body = client.get("/recommend/5?k=20&exclude_seen=false").json()
    ids, _ = mf.recommend(5, 20, exclude_seen=False)
    assert _ids(body["items"]) == ids.tolist()


@pytest.mark.parametrize("user", ["nobody", "99999", "-3", " "])
def test_unknown_user_gets_popular_items_flagged_cold_start(client, mf, user):
    body = client.get(f"/recommend/{user}", params={"k": 5}).json()
    assert body["cold_start"] is True
    popular = np.argsort(-mf.item_popularity_, kind="stable")[:5]
    assert _ids(body["items"]) == mf.item_ids_.to_ids(popular).tolist()


def test_user_without_training_rows_is_cold_start(client, mf):
    assert mf.user_counts_[mf.user_ids_.index_of(IDLE_USER)] == 0
    body = client.get(f"/recommend/{IDLE_USER}?k=3").json()
    assert body["cold_start"] is True
    assert _ids(body["items"]) == expected_top(mf, IDLE_USER, 3)


@pytest.mark.parametrize("k", ["0", "-1", "1001", "ten", "2.5"])
def test_bad_k_is_422(client, k):
    for url in (f"/recommend/5?k={k}", f"/similar/1?k={k}"):
        res = client.get(url)
        assert res.status_code == 422, url
        assert res.json()["detail"][0]["loc"] == ["query", "k"]


def test_k_larger_than_the_catalog_returns_every_unseen_item(client, mf):
    res = client.get("/recommend/5?k=1000")
    assert res.status_code == 200  # masked (-inf) scores are dropped, never sent as JSON
    n_seen = mf.seen_[mf.user_ids_.index_of(5)].nnz
    assert len(res.json()["items"]) == mf.n_items - n_seen


def test_post_recommend_folds_in_liked_items(client, mf):
    body = client.post("/recommend", json={"items": [1, 2], "k": 8}).json()
    assert body["cold_start"] is True and body["basis"] == "history"
    assert body["used_items"] == [1, 2] and body["unknown_items"] == []
    ids, _ = mf.recommend_from_history([1, 2], 8)
    assert _ids(body["items"]) == ids.tolist()
    assert not {1, 2} & set(_ids(body["items"]))


def test_post_recommend_with_ratings_and_unknown_items(client, mf):
    body = client.post(
        "/recommend", json={"items": [3, "nope", 4, 777], "ratings": [5, 1, 2, 4], "k": 5}
    ).json()
    assert body["used_items"] == [3, 4] and body["unknown_items"] == ["nope", 777]
    ids, _ = mf.recommend_from_history([3, 4], 5, ratings=[5, 2])
    assert _ids(body["items"]) == ids.tolist()


def test_post_recommend_with_no_known_item_serves_popularity(client, mf):
    body = client.post("/recommend", json={"items": ["nope"], "k": 3}).json()
    assert body["basis"] == "popularity"
    popular = np.argsort(-mf.item_popularity_, kind="stable")[:3]
    assert _ids(body["items"]) == mf.item_ids_.to_ids(popular).tolist()
    assert client.post("/recommend", json={"items": []}).json()["basis"] == "popularity"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"items": [1, 2',  # malformed JSON
        b"[1, 2]",  # not an object
        b'{"liked": [1]}',  # missing field (and an unknown one)
        b'{"items": [1], "k": 0}',
        b'{"items": [1], "k": 5000}',
        b'{"items": [true]}',  # a bool is not an id
        b'{"items": [1.5]}',
        b'{"items": [1, 2], "ratings": [4]}',  # one rating per item
        b'{"items": [1], "ratings": [NaN]}',
        b'{"items": [' + b",".join([b"1"] * 1001) + b"]}",  # too many items
    ],
)
def test_bad_post_body_is_422(client, payload):
    res = client.post("/recommend", content=payload, headers={"content-type": "application/json"})
    assert res.status_code == 422, res.text
    assert "detail" in res.json()


def test_oversized_body_is_413(client):
    big = b'{"items": [' + b",".join([b'"xxxxxxxxxxxxxxxxxxxx"'] * 4000) + b"]}"
    assert len(big) > 64 * 1024
    res = client.post("/recommend", content=big, headers={"content-type": "application/json"})
    assert res.status_code == 413
    assert "larger than" in res.json()["detail"]

    def chunks():  # streamed without a Content-Length: the real bytes are counted
        for _ in range(20):
            yield b" " * 8192

    res = client.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert res.status_code == 413


def test_similar_items_are_the_models(client, mf):
    body = client.get("/similar/1", params={"k": 6}).json()
    assert body["item"] == {
        "item": 1,
        "title": TITLES[1],
        "popularity": int(mf.item_popularity_[0]),
    }
    assert body["approximate"] is False
    ids, scores = mf.similar_items(1, 6)
    assert _ids(body["similar"]) == ids.tolist()
    np.testing.assert_allclose([r["score"] for r in body["similar"]], scores, rtol=1e-6)


@pytest.mark.parametrize("item", ["424242", "abc"])
def test_unknown_item_is_404_with_a_clear_message(client, item):
    res = client.get(f"/similar/{item}")
    assert res.status_code == 404
    assert res.json()["detail"].startswith(f"unknown item id '{item}'")


def test_title_search_is_case_insensitive_most_popular_first(client, mf):
    body = client.get("/items", params={"search": "TOY"}).json()
    assert body["query"] == "TOY"
    toy = sorted(TITLES.keys() - {3}, key=lambda i: -mf.item_popularity_[mf.item_ids_.index_of(i)])
    assert _ids(body["items"]) == toy
    assert [r["title"] for r in body["items"]] == [TITLES[i] for i in toy]
    assert client.get("/items?search=heat").json()["items"][0]["item"] == 3
    assert client.get("/items?search=no such film").json()["items"] == []


def test_item_listing_is_limited(client, mf):
    body = client.get("/items", params={"limit": 4}).json()  # no search: most popular
    popular = np.argsort(-mf.item_popularity_, kind="stable")[:4]
    assert _ids(body["items"]) == mf.item_ids_.to_ids(popular).tolist()
    for bad in ("limit=0", "limit=101", "search=" + "x" * 201):
        assert client.get(f"/items?{bad}").status_code == 422, bad


def test_health_and_model_info(client, mf):
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/model").json()
    assert info["model"] == "biased-mf" and info["dataset"] == "synthetic"
    assert info["metrics"] == METRICS
    assert info["trained_at"] == mf.fitted_at_ and info["format_version"] == 1
    assert info["n_items"] == mf.n_items and info["params"]["factors"] == 8
    assert info["run"]["model"] == "biased-mf" and info["similarity_index"] == "exact"


def test_docs_page_and_static_files(client):
    spec = client.get("/openapi.json").json()
    paths = {"/recommend/{user_id}", "/recommend", "/similar/{item_id}", "/items", "/health"}
    assert paths | {"/model", "/admin/reload"} <= set(spec["paths"])
    assert "HistoryRequest" in spec["components"]["schemas"]
    assert "swagger" in client.get("/docs").text.lower()
    page = client.get("/")
    assert page.status_code == 200 and 'id="search"' in page.text
    assert client.get("/static/app.js").status_code == 200


def test_every_answer_matches_its_documented_schema(client):
    from neuralrec.serving import schemas

    checks = [
        (client.get("/recommend/5"), schemas.Recommendations),
        (client.get("/recommend/nobody"), schemas.Recommendations),
        (client.post("/recommend", json={"items": [1, "x"]}), schemas.HistoryRecommendations),
        (client.get("/similar/1"), schemas.SimilarItems),
        (client.get("/items?search=toy"), schemas.ItemSearch),
        (client.get("/health"), schemas.Health),
        (client.get("/model"), schemas.ModelInfo),
        (client.get("/similar/nope"), schemas.ErrorResponse),
        (client.get("/recommend/5?k=0"), schemas.ErrorResponse),
    ]
    for res, schema in checks:
        schema.model_validate(res.json())  # extra="forbid": no undocumented fields either
