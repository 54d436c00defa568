"""Where a torch model's weights live: every model trains and scores on CUDA as on the CPU, and a
model trained on a GPU loads on a machine without one. The CUDA tests skip where torch sees no
GPU (CI); the device machine runs them."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from neuralrec import create, split
from neuralrec.models.base import Recommender
from neuralrec.models.registry import available_models

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")

#: small but real settings per torch model, so each fit takes well under a second
FAST = {
    "biased-mf": {"factors": 8},
    "mf-history": {"factors": 8},
    "gmf": {"factors": 8, "loss": "bce"},
    "mlp": {"factors": 8, "layers": (32, 16, 8), "loss": "bce"},
    "neumf": {"factors": 8, "layers": (16, 8), "loss": "bce", "dropout": 0.2},
    "autorec-i": {"hidden": 16},
    "autorec-u": {"hidden": 16},
    "deeprec": {"layers": (16, 8)},
    "cdae": {"hidden": 16},
    "mf-dnn": {"factors": 8, "layers": (16, 16)},
    "mf-dnn-clf": {"factors": 8, "layers": (16, 16)},
}


def _torch_models() -> list[str]:
    return [n for n in available_models() if hasattr(create(n).config, "device")]


def test_every_torch_model_has_fast_settings_here():
    # a new torch model must be added to FAST, so the device machine exercises it too
    assert sorted(_torch_models()) == sorted(FAST)


def _fit(name: str, data, device: str, **extra):
    params = {**FAST[name], "epochs": 3, "device": device, "seed": 3, **extra}
    parts, dataset = data
    return create(name, **params).fit(parts.train, parts.valid, dataset=dataset)


@pytest.fixture(scope="module")
def data(small_dataset):
    return split(
        small_dataset.interactions, "random:0.2", seed=0, valid_fraction=0.1
    ), small_dataset


@needs_cuda
@pytest.mark.parametrize("name", sorted(FAST))
def test_trains_and_scores_on_cuda_as_on_the_cpu(name, data, small_dataset, tmp_path):
    gpu = _fit(name, data, "cuda")
    cpu = _fit(name, data, "cpu")
    parts = data[0]
    assert all(p.device.type == "cuda" for p in gpu.module_.parameters())
    users = np.arange(parts.train.n_users)
    g = gpu.score_users(users).cpu().numpy()
    c = cpu.score_users(users).numpy()
    assert np.isfinite(g).all()
    # it learns as much: the training loss per epoch follows the CPU run's
    np.testing.assert_allclose(
        [h["train_loss"] for h in gpu.history_],
        [h["train_loss"] for h in cpu.history_],
        rtol=0.1,
    )
    # same initialisation and data order; kernels and dropout draws differ between devices,
    # so the scores agree closely rather than exactly
    assert np.corrcoef(g.ravel(), c.ravel())[0, 1] > 0.9, name
    ids = small_dataset.interactions.user_ids.to_ids([0, 1])
    for u in ids:
        top_g, _ = gpu.recommend(u, k=5)
        assert len(set(top_g)) == 5
    # a GPU model saved and loaded on the CPU scores what it scored on the GPU
    gpu.save(tmp_path / name)
    back = Recommender.load(tmp_path / name, device="cpu")
    assert all(p.device.type == "cpu" for p in back.module_.parameters())
    np.testing.assert_allclose(back.score_users(users).numpy(), g, rtol=1e-4, atol=1e-4)
    # and the rest of the serving API answers alike on both devices
    inter = small_dataset.interactions
    some_users, some_items = inter.user_ids.to_ids(users[:20]), inter.item_ids.to_ids(np.arange(20))
    np.testing.assert_allclose(
        back.predict(some_users, some_items),
        gpu.predict(some_users, some_items),
        rtol=1e-4,
        atol=1e-4,
    )
    history = inter.item_ids.to_ids([1, 4, 9])
    for a, b in (
        (gpu.recommend_from_history(history, 5), back.recommend_from_history(history, 5)),
        (gpu.similar_items(history[0], 5), back.similar_items(history[0], 5)),
    ):
        np.testing.assert_allclose(a[1], b[1], rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_neumf_bf16_autocast_trains_close_to_float32(data, dropout):
    # three tower layers, as RecBole's settings: the fused head's backward in bfloat16
    deep = {"layers": (32, 16, 8), "dropout": dropout}
    plain = _fit("neumf", data, "cuda", **deep)
    mixed = _fit("neumf", data, "cuda", amp=True, **deep)
    a, b = plain.history_[-1]["train_loss"], mixed.history_[-1]["train_loss"]
    assert b != a  # autocast took effect
    assert b == pytest.approx(a, rel=0.05)
    assert all(p.dtype == torch.float32 for p in mixed.module_.parameters())


def test_a_gpu_artifact_loads_on_a_machine_without_one(small_dataset, tmp_path):
    parts = split(small_dataset.interactions, "random:0.2", seed=0)
    model = create("neumf", **FAST["neumf"], epochs=2).fit(parts.train)
    model.save(tmp_path / "m")
    cfg = tmp_path / "m" / "config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "device": "cuda"}))
    users = np.arange(parts.train.n_users)
    expected = model.score_users(users)
    # an explicit device is obeyed anywhere
    forced = Recommender.load(tmp_path / "m", device="cpu")
    assert forced.config.device == "cpu"
    torch.testing.assert_close(forced.score_users(users), expected, rtol=0, atol=0)
    if torch.cuda.is_available():
        return  # the fallback below only happens where CUDA is missing
    with pytest.warns(UserWarning, match="trained on cuda.*loading on the CPU"):
        loaded = Recommender.load(tmp_path / "m")
    assert loaded.config.device == "cpu"
    torch.testing.assert_close(loaded.score_users(users), expected, rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Recommender.load(tmp_path / "m", device="cpu")  # asked for: no warning


@needs_cuda
@pytest.mark.parametrize("name", ["biased-mf", "mf-history"])
def test_the_gibbs_estimator_runs_on_cuda(name, data, tmp_path):
    params = {"estimator": "gibbs", "factors": 4, "samples": 30, "burn_in": 10, "seed": 3}
    parts, dataset = data
    gpu = create(name, **params, device="cuda").fit(parts.train, parts.valid, dataset=dataset)
    cpu = create(name, **params, device="cpu").fit(parts.train, parts.valid, dataset=dataset)
    rmse = [h["rmse"] for h in (gpu.history_[-1], cpu.history_[-1])]
    assert rmse[0] == pytest.approx(rmse[1], abs=0.02)  # different draws, the same posterior
    history = parts.train.item_ids.to_ids([1, 4, 9])
    top, _ = gpu.recommend_from_history(history, 5, ratings=[5, 1, 4])
    assert len(top) == 5 and not set(top) & set(history)
    gpu.save(tmp_path / name)
    back = Recommender.load(tmp_path / name, device="cpu")
    users = np.arange(parts.train.n_users)
    np.testing.assert_allclose(
        back.score_users(users).numpy(), gpu.score_users(users).cpu().numpy(), rtol=1e-4, atol=1e-4
    )
