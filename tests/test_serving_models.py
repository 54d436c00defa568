"""The server answers as the model itself does, for every model family, and changes no model."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from neuralrec.serving import create_app
from serving_helpers import expected_top, train, write_run


@pytest.mark.parametrize(
    "name",
    [
        "popularity",
        "bias",
        "global-mean",
        "random",
        "mf-history",
        "ease",
        "item-knn",
        "gmf",
        "neumf",
    ],
)
def test_answers_match_the_model(name, tmp_path):
    model = train(name)
    popularity = model.item_popularity_.copy()
    with TestClient(create_app(write_run(model, tmp_path / name))) as c:
        for user in (5, 17):
            body = c.get(f"/recommend/{user}?k=10").json()
            assert [r["item"] for r in body["items"]] == expected_top(model, user, 10)
        body = c.post("/recommend", json={"items": [1, 2, 3], "k": 10}).json()
        ids, _ = model.recommend_from_history([1, 2, 3], 10)
        assert [r["item"] for r in body["items"]] == ids.tolist()
        body = c.get("/similar/4?k=10").json()
        ids, _ = model.similar_items(4, 10)
        assert [r["item"] for r in body["similar"]] == ids.tolist()
    np.testing.assert_array_equal(model.item_popularity_, popularity)  # nothing written back
