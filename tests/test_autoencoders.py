"""Autoencoder models: AutoRec (I/U), DeepRec and CDAE, and the sparse row batches they share."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from neuralrec.data import Interactions, split
from neuralrec.data.synthetic import synthetic_ratings
from neuralrec.evaluation.ranking import full_ranking
from neuralrec.models import Recommender, create
from neuralrec.models._rows import RatingOutput, RowMatrix, SparseInputLinear
from neuralrec.models._sparse_ops import observed_linear, sparse_rows_matmul
from neuralrec.training import TrainConfig, Trainer
from neuralrec.training.batches import TensorBatches
from neuralrec.training.optim import make_optimizers

# small networks and few epochs: every test here trains in well under a second
FAST = {
    "autorec-i": dict(hidden=16, epochs=25, lr=1e-2, ema=0.8),
    "autorec-u": dict(hidden=16, epochs=25, lr=1e-2, ema=0.8),
    "deeprec": dict(layers=(16,), epochs=25, lr=1e-2, dropout=0.5),
    "cdae": dict(hidden=16, epochs=25, lr=1e-2),
}
RATING_MODELS = ["autorec-i", "autorec-u", "deeprec"]


def _model(name: str, **extra) -> Recommender:
    return create(name, **{**FAST[name], "threads": 1, **extra})


@pytest.fixture(scope="module")
def parts(small_dataset):
    return split(small_dataset.interactions, "random:0.2", seed=0, valid_fraction=0.1)


@pytest.fixture(scope="module")
def fitted(parts):
    return {name: _model(name).fit(parts.train, parts.valid) for name in FAST}


def _rmse(model: Recommender, data: Interactions) -> float:
    pred = model.predict(data.user_ids.to_ids(data.users), data.item_ids.to_ids(data.items))
    return float(np.sqrt(np.mean((pred - data.ratings) ** 2)))


# ---------------------------------------------------------------------------- sparse rows
def test_row_matrix_dense_and_batch_match_scipy():
    rng = np.random.default_rng(0)
    mat = sp.random(7, 9, density=0.3, format="csr", random_state=1, dtype=np.float32)
    rows = RowMatrix.from_csr(mat, "item")  # items x users
    pick = torch.tensor([8, 0, 3, 3])
    expected = mat.T.toarray()[pick.numpy()]
    np.testing.assert_array_equal(rows.dense(pick).numpy(), expected)
    np.testing.assert_array_equal(rows.batch(pick).to_dense().numpy(), expected)
    layer = SparseInputLinear(7, 5)
    x = torch.from_numpy(rng.random((4, 7)).astype(np.float32)) * (rows.dense(pick) > 0)
    sparse_x = RowMatrix(sp.csr_matrix(x.numpy())).batch(torch.arange(4))
    torch.testing.assert_close(layer(sparse_x), layer(x))
    assert set(rows.nonempty().tolist()) == set(np.flatnonzero(mat.getnnz(axis=0)))


def test_rating_output_spans_the_scale_and_inverts():
    for name in ("identity", "sigmoid", "tanh"):
        out = RatingOutput(name, 1.0, 5.0)
        y = torch.tensor([1.5, 3.0, 4.5])
        torch.testing.assert_close(out(out.inverse(y)), y, rtol=1e-4, atol=1e-4)
    sig = RatingOutput("sigmoid", 1.0, 5.0)
    assert float(sig(torch.tensor(-50.0))) == pytest.approx(1.0)
    assert float(sig(torch.tensor(50.0))) == pytest.approx(5.0)


# ---------------------------------------------------------------------------- losses
def _tiny() -> Interactions:
    users = [0, 0, 1, 2, 2, 2]
    items = [0, 2, 1, 0, 1, 3]
    ratings = [5.0, 3.0, 4.0, 1.0, 2.0, 5.0]
    return Interactions.from_arrays(users, items, ratings)


def test_an_sgd_step_descends_the_papers_objective():
    """One full-batch SGD step equals a step on (Σ_observed err² + λ/2 (‖V‖² + ‖W‖²)) / n."""
    data = _tiny()
    cfg = dict(hidden=3, l2=0.7, dropout=0.0, input_dropout=0.0, optimizer="sgd", ema=0.0)
    cfg.update(batch_size=100, epochs=1, early_stopping=False, threads=1, seed=3)
    start = create("autorec-i", **{**cfg, "lr": 1e-30}).fit(data).module_  # the initial weights
    stepped = create("autorec-i", **{**cfg, "lr": 0.1}).fit(data).module_
    m = copy.deepcopy(start)
    out = m(torch.from_numpy(data.tocsr().T.toarray()))  # dense items x users reconstruction
    sse = sum(
        (out[i, u] - float(r)) ** 2
        for u, i, r in zip(data.users, data.items, data.ratings, strict=True)
    )
    penalty = 0.7 / 2 * (m.encoder.weight.square().sum() + m.decoder.weight.square().sum())
    ((sse + penalty) / len(data)).backward()
    for (name, p), q in zip(m.named_parameters(), stepped.parameters(), strict=True):
        torch.testing.assert_close(p.detach() - 0.1 * p.grad, q.detach(), msg=name)


def test_kernelised_loss_is_the_sparse_fc_objective():
    """With kernel_dim the weights are W ⊙ max(0, 1 - ‖u_i - v_j‖²), and the loss (value and
    gradients) is (Σ err² + λ/2 (‖V‖² + ‖W‖²) + λ_s/2 (‖K_V‖² + ‖K_W‖²)) / n."""
    data = _tiny()
    cfg = dict(hidden=3, l2=0.7, kernel_dim=2, kernel_l2=0.3, dropout=0.0, input_dropout=0.0)
    cfg.update(ema=0.0, epochs=1, early_stopping=False, threads=1, seed=3)
    model = create("autorec-i", **cfg).fit(data)
    m = model.module_.train()
    with torch.no_grad():  # spread the unit vectors so that some kernel entries are cut to 0
        for k in m.kernels:
            k.u.normal_(0, 0.6)
            k.v.normal_(0, 0.6)
    m.zero_grad(set_to_none=True)
    ref = copy.deepcopy(m)
    kernels = [k() for k in ref.kernels]
    assert any((k == 0).any() for k in kernels) and all((k <= 1).all() for k in kernels)
    u, v = ref.kernels[0].u, ref.kernels[0].v
    expected = (1 - torch.cdist(u, v).square()).clamp_min(0)
    torch.testing.assert_close(kernels[0], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ref.weights()[0], ref.encoder.weight * expected)
    out = ref(torch.from_numpy(data.tocsr().T.toarray()))  # dense items x users
    sse = sum(
        (out[i, u] - float(r)) ** 2
        for u, i, r in zip(data.users, data.items, data.ratings, strict=True)
    )
    penalty = 0.7 / 2 * (ref.encoder.weight.square().sum() + ref.decoder.weight.square().sum())
    penalty = penalty + 0.3 / 2 * sum(k.square().sum() for k in kernels)
    objective = (sse + penalty) / len(data)
    objective.backward()
    loss = model._loss((torch.arange(data.n_items),))
    loss.backward()
    torch.testing.assert_close(loss, objective)
    for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda s, name=name: f"{name}: {s}")


def test_moving_average_of_the_weights_is_what_scores():
    """ema: after each step avg ← avg + (1 - decay)(w - avg); eval mode scores with the average
    and training mode with the trained weights."""
    data = _tiny()
    cfg = dict(hidden=3, dropout=0.0, input_dropout=0.0, optimizer="sgd", ema=0.5)
    cfg.update(batch_size=100, epochs=2, early_stopping=False, threads=1, seed=3)
    model = create("autorec-i", **{**cfg, "lr": 0.1}).fit(data)
    one = create("autorec-i", **{**cfg, "lr": 0.1, "epochs": 1}).fit(data).module_
    init = create("autorec-i", **{**cfg, "lr": 1e-30, "epochs": 1}).fit(data).module_
    m = model.module_
    for name, p in m.named_parameters():
        w0, w1 = init.get_parameter(name).detach(), one.get_parameter(name).detach()
        # two steps of decay 0.5 from the initial weights: 0.25 w0 + 0.25 w1 + 0.5 w2
        expected = 0.25 * w0 + 0.25 * w1 + 0.5 * p.detach()
        torch.testing.assert_close(getattr(m, "ema_" + name.replace(".", "_")), expected)
    x = torch.from_numpy(data.tocsr().T.toarray())
    with torch.no_grad():
        avg = m.eval()(x)
        trained = m.train()(x)
        m.eval()
    assert not torch.allclose(avg, trained)
    pred = model.predict(data.user_ids.to_ids(data.users), data.item_ids.to_ids(data.items))
    expected = avg[data.items, data.users].clamp(1, 5).numpy()
    np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-5)


def test_masked_loss_ignores_unobserved_entries():
    """No gradient reaches the decoder row of a user without a rating in the batch's items."""
    data = _tiny()
    model = create(
        "autorec-i", hidden=3, epochs=1, l2=0.0, dropout=0.0, input_dropout=0.0, ema=0.0, threads=1
    ).fit(data)
    m = model.module_
    m.zero_grad()
    model._loss((torch.tensor([1, 3]),)).backward()  # items 1, 3: rated by users 1, 2 only
    w, c = m.decoder.weight.grad, m.decoder.bias.grad
    assert (w[0] == 0).all() and c[0] == 0
    assert (w[1:] != 0).any(dim=1).all() and (c[1:] != 0).all()


def test_sparse_products_match_dense_ones():
    g = torch.Generator().manual_seed(0)
    dense = torch.rand(5, 9, generator=g) * (torch.rand(5, 9, generator=g) < 0.4)
    rows = RowMatrix(sp.csr_matrix(dense.numpy())).batch(torch.arange(5))
    w_in = torch.randn(9, 4, generator=g, requires_grad=True)
    w_out = torch.randn(9, 4, generator=g, requires_grad=True)
    bias = torch.randn(9, generator=g, requires_grad=True)
    local = torch.repeat_interleave(torch.arange(5), torch.diff(rows.crow))

    def run(sparse: bool):
        for t in (w_in, w_out, bias):
            t.grad = None
        h = torch.tanh(
            sparse_rows_matmul(w_in, rows.crow, rows.cols, rows.values) if sparse else dense @ w_in
        )
        if sparse:
            out = observed_linear(h, w_out, bias, rows.crow, rows.cols)
        else:
            out = torch.nn.functional.linear(h, w_out, bias)[local, rows.cols]
        (out.square() * torch.arange(len(out))).sum().backward()
        return out.detach(), [t.grad.clone() for t in (w_in, w_out, bias)]

    out_s, grads_s = run(True)
    out_d, grads_d = run(False)
    torch.testing.assert_close(out_s, out_d)
    for a, b in zip(grads_s, grads_d, strict=True):
        torch.testing.assert_close(a, b)


def test_deeprec_first_loss_is_masked_mse():
    data = _tiny()
    model = create("deeprec", layers=(4,), dropout=0.0, refeed=0, epochs=1, threads=1).fit(data)
    rows = torch.tensor([0, 1, 2])
    loss = model._loss((rows,))
    with torch.no_grad():
        out = model.module_(model.rows_.dense(rows))
        users = torch.tensor(data.users, dtype=torch.long)
        items = torch.tensor(data.items, dtype=torch.long)
        err = out[users, items] - torch.tensor(data.ratings)
    assert float(loss.detach()) == pytest.approx(float(err.square().mean()), rel=1e-5)


# ---------------------------------------------------------------------------- re-feeding
def test_trainer_steps_after_each_yielded_loss():
    """A loss function may yield several losses; each gets its own step on fresh weights."""
    w = torch.nn.Parameter(torch.tensor([1.0]))
    module = torch.nn.Module()
    module.w = w
    seen = []

    def loss_fn(batch):
        seen.append(float(w.detach()))
        yield (w - 3.0).square().sum()
        seen.append(float(w.detach()))  # after the first step
        yield (w - 3.0).square().sum() * 10

    cfg = TrainConfig(epochs=1, optimizer="sgd", lr=0.1, early_stopping=False)
    hist = Trainer(cfg).fit(module, TensorBatches([torch.zeros(1)], batch_size=1), loss_fn)
    assert seen[0] == 1.0 and seen[1] == pytest.approx(1.4)  # 1 - 0.1 * 2 * (1 - 3)
    assert float(w) == pytest.approx(1.4 + 0.1 * 20 * (3 - 1.4))
    assert hist[0]["train_loss"] == pytest.approx(4.0)  # the first loss only


def test_dense_refeeding_takes_a_second_step(parts, monkeypatch):
    steps = []
    original = torch.optim.Adam.step

    def counting(self, *a, **k):
        steps.append(1)
        return original(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", counting)
    counts = {}
    for refeed in (0, 1, 2):
        steps.clear()
        _model("deeprec", epochs=1, refeed=refeed, batch_size=64).fit(parts.train)
        counts[refeed] = len(steps)
    assert counts[1] == 2 * counts[0] and counts[2] == 3 * counts[0]


# ---------------------------------------------------------------------------- learning
@pytest.mark.parametrize("name", RATING_MODELS)
def test_rating_autoencoders_beat_the_global_mean(name):
    data = synthetic_ratings(60, 400, 10000, seed=2).interactions
    if name == "autorec-i":
        # the generator skews item popularity, not user activity; I-AutoRec reconstructs items,
        # so it gets the transposed matrix (skewed rows, as MovieLens items are), which makes
        # it the exact mirror of autorec-u on the original
        data = Interactions(data.items, data.users, data.item_ids, data.user_ids, data.ratings)
    parts = split(data, "random:0.2", seed=0, valid_fraction=0.1)
    model = _model(name, epochs=20, batch_size=32).fit(parts.train, parts.valid)
    baseline = create("global-mean").fit(parts.train)
    assert _rmse(model, parts.test) < _rmse(baseline, parts.test) - 0.02


def test_cdae_ranks_better_than_random(parts, fitted):
    train, test = parts.train.tocsr("ones"), parts.test.tocsr("ones")
    cdae = full_ranking(fitted["cdae"].score_users, train, test, ks=(10,)).summary()
    rand = create("random").fit(parts.train)
    rnd = full_ranking(rand.score_users, train, test, ks=(10,)).summary()
    assert cdae["ndcg@10"] > 2 * rnd["ndcg@10"]
    assert fitted["cdae"].history_[-1]["best_epoch"] >= 1


@pytest.mark.parametrize("name", RATING_MODELS)
def test_scores_agree_with_pairwise_predictions(name, parts, fitted):
    model = fitted[name]
    users = np.array([0, 3, 7])
    scores = model.score_users(users).numpy()
    assert scores.shape == (3, parts.train.n_items) and np.isfinite(scores).all()
    items = np.arange(parts.train.n_items)
    for row, u in enumerate(users):
        pairs = model.predict_idx(np.full(len(items), u), items)
        np.testing.assert_allclose(scores[row], pairs, rtol=1e-5, atol=1e-5)
    assert scores.min() >= 1.0 and scores.max() <= 5.0  # clipped to the rating scale


@pytest.mark.parametrize("name", list(FAST))
def test_save_load_round_trip_gives_identical_predictions(name, parts, fitted, tmp_path):
    model = fitted[name]
    loaded = Recommender.load(model.save(tmp_path / name))
    users = parts.test.user_ids.to_ids(parts.test.users)
    items = parts.test.item_ids.to_ids(parts.test.items)
    np.testing.assert_array_equal(model.predict(users, items), loaded.predict(users, items))
    idx = np.arange(5)
    torch.testing.assert_close(model.score_users(idx), loaded.score_users(idx), rtol=0, atol=0)
    hist = parts.train.item_ids.to_ids([0, 1, 2])
    np.testing.assert_array_equal(
        model.recommend_from_history(hist, 5)[0], loaded.recommend_from_history(hist, 5)[0]
    )


@pytest.mark.parametrize("name", RATING_MODELS)
def test_unseen_users_and_items_fall_back_to_the_bias_model(name, parts, fitted):
    model = fitted[name]
    bias = create("bias").fit(parts.train)
    known_user = parts.train.user_ids.to_ids([0])[0]
    known_item = parts.train.item_ids.to_ids([0])[0]
    pred = model.predict([known_user, "nobody", "nobody"], ["no-such-item", known_item, "x"])
    expected = bias.predict([known_user, "nobody", "nobody"], ["no-such-item", known_item, "x"])
    np.testing.assert_allclose(pred, expected, rtol=1e-6)
    assert pred[2] == pytest.approx(model.global_mean_)


@pytest.mark.parametrize("name", list(FAST))
def test_training_is_deterministic_given_a_seed(name, tiny_dataset):
    data = tiny_dataset.interactions
    kw = {"epochs": 3, "seed": 4}
    a = _model(name, **kw).fit(data)
    b = _model(name, **kw).fit(data)
    c = _model(name, **{**kw, "seed": 5}).fit(data)
    users = np.arange(10)
    torch.testing.assert_close(a.score_users(users), b.score_users(users), rtol=0, atol=0)
    assert not torch.equal(a.score_users(users), c.score_users(users))


@pytest.mark.parametrize("name", list(FAST))
def test_visitor_history_is_scored_without_retraining(name, fitted):
    model = fitted[name]
    ids, scores = model.recommend_from_history(model.item_ids_.to_ids([0, 1, 2]), 5)
    assert len(ids) == 5 and np.isfinite(scores).all()
    assert not set(ids) & set(model.item_ids_.to_ids([0, 1, 2]))
    # the visitor's history changes the list (it is not popularity in disguise)
    other, _ = model.recommend_from_history(model.item_ids_.to_ids([40, 60, 80]), 5)
    assert list(ids) != list(other)


# ---------------------------------------------------------------------------- configs
def test_deeprec_layers_from_text_and_config_round_trip():
    model = create("deeprec", layers="512, 512,1024")
    assert model.config.layers == (512, 512, 1024)
    again = type(model.config).model_validate(model.config.model_dump(mode="json"))
    assert again == model.config
    with pytest.raises(Exception, match="layers"):
        create("deeprec", layers="")


def test_rating_autoencoders_refuse_implicit_data(tiny_dataset):
    with pytest.raises(Exception, match="explicit ratings"):
        create("autorec-i", epochs=1).fit(tiny_dataset.interactions.to_implicit())


def test_cdae_sampled_negatives_keep_every_positive(parts):
    model = _model("cdae", epochs=1, negatives=2.0).fit(parts.train)
    target = model.rows_.dense(torch.arange(50))
    torch.manual_seed(0)
    mask = model._sampled_mask(target)
    assert (mask[target > 0] == 1).all()
    ratio = float((mask.sum() - target.sum()) / target.sum())
    assert 1.5 < ratio < 2.5


def test_cdae_popularity_output_bias_starts_at_item_log_odds(parts):
    # lr so small that one epoch leaves the initial bias in place
    model = _model("cdae", epochs=1, lr=1e-8, output_bias="popularity").fit(parts.train)
    seen = parts.train.tocsr("ones")
    n = int((np.diff(seen.indptr) > 0).sum())
    freq = np.bincount(seen.indices, minlength=seen.shape[1]) / n
    freq = np.clip(freq, 0.5 / n, 1 - 0.5 / n)
    bias = model.module_.decoder.bias.detach().numpy()
    np.testing.assert_allclose(bias, np.log(freq / (1 - freq)), atol=1e-4)
    # starting from the item frequencies, the first epoch's loss is well below a zero start's
    zero = _model("cdae", epochs=1, lr=1e-8).fit(parts.train)
    assert model.history_[0]["train_loss"] < 0.8 * zero.history_[0]["train_loss"]


def test_fused_adam_matches_the_reference_update():
    torch.manual_seed(0)
    a = torch.nn.Linear(6, 4)
    b = torch.nn.Linear(6, 4)
    b.load_state_dict(a.state_dict())
    opt_a = make_optimizers(a, "adam", 0.01, weight_decay=0.1)[0]
    opt_b = torch.optim.Adam(
        [
            {"params": [b.bias], "weight_decay": 0.0},
            {"params": [b.weight], "weight_decay": 0.1},
        ],
        lr=0.01,
        foreach=False,
    )
    x = torch.randn(8, 6)
    for _ in range(5):
        for mod, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            mod(x).square().sum().backward()
            opt.step()
    torch.testing.assert_close(a.weight, b.weight, rtol=1e-5, atol=1e-6)
