"""GMF, MLP, NeuMF and BPR-trained BiasedMF: gradients, learning, pretraining, persistence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuralrec.data.interactions import Interactions
from neuralrec.data.splits import split
from neuralrec.data.synthetic import synthetic_implicit, synthetic_ratings
from neuralrec.errors import ConfigError
from neuralrec.evaluation import evaluate
from neuralrec.models import Recommender, create
from neuralrec.models.ncf_fused import _dropout, dropout_mask
from neuralrec.models.ncf_module import NCFModule

FAST = {"epochs": 15, "batch_size": 64, "lr": 0.02, "threads": 1, "patience": 15}


@pytest.fixture(scope="module")
def planted():
    """Implicit data with 4 taste groups, split per user with a validation part."""
    data = synthetic_implicit(120, 60, per_user=12, seed=0)
    return split(data, "user-random:0.2", seed=0, valid_fraction=0.1)


@pytest.fixture(scope="module")
def popularity_ndcg(planted):
    model = create("popularity").fit(planted.train)
    return evaluate(model, planted).value("ndcg", 10)


@pytest.mark.parametrize(
    ("g", "layers", "dropout"),
    [(6, (8, 6, 4), 0.0), (0, (8, 4), 0.0), (6, (), 0.0), (6, (8, 6, 4), 0.3)],
)
def test_fused_head_matches_autograd(g, layers, dropout):
    torch.manual_seed(0)
    mod = NCFModule(7, 11, g, layers, init_std=0.5, dropout=dropout).double()
    users = torch.randint(0, 7, (5,))
    items = torch.randint(0, 11, (5, 3))
    weights = torch.randn(5, 3, dtype=torch.float64)
    torch.manual_seed(1)
    out = mod(users, items)
    (out * weights).sum().backward()
    fused = {k: p.grad.to_dense().clone() for k, p in mod.named_parameters()}
    mod.zero_grad()
    if dropout:
        # the reference: the same masks (same seed), applied layer by layer through autograd
        torch.manual_seed(1)
        seed = int(torch.randint(0, 2**62, (1,)))
        gen = torch.Generator().manual_seed(seed)
        masks = []

        def drop(h: torch.Tensor) -> torch.Tensor:
            keep = ~dropout_mask(h.shape, dropout, gen)
            masks.append(keep)
            return h * keep / (1 - dropout)

        mod._drop = drop  # type: ignore[method-assign]
    ref = mod._head(mod.user(users), mod.item(items), None)
    torch.testing.assert_close(out, ref)
    (ref * weights).sum().backward()
    for name, p in mod.named_parameters():
        torch.testing.assert_close(fused[name], p.grad.to_dense(), msg=name)
    if dropout:
        kept = torch.cat([m.flatten() for m in masks]).double().mean().item()
        assert masks and abs(kept - (1 - dropout)) < 0.1


def test_dropout_mask_rate_and_determinism():
    gen = torch.Generator().manual_seed(3)
    mask = dropout_mask(torch.Size([301, 7, 13]), 0.1, gen)
    assert mask.shape == (301, 7, 13) and mask.dtype == torch.bool
    assert abs(mask.double().mean().item() - 0.1) < 0.005
    again = dropout_mask(torch.Size([301, 7, 13]), 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(mask, again)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("gmf", {"loss": "bce"}),
        ("mlp", {"loss": "bce", "layers": (32, 16, 8)}),
        ("neumf", {"loss": "bce", "factors": 8, "layers": (32, 16, 8)}),
        ("neumf", {"loss": "bpr", "factors": 8, "layers": (16, 8)}),
        ("biased-mf", {"loss": "bpr", "factors": 8, "init_std": 0.1}),
        ("biased-mf", {"loss": "bce", "factors": 8, "init_std": 0.1}),
    ],
)
def test_learns_planted_structure(planted, popularity_ndcg, name, params):
    model = create(name, **{**FAST, **params}).fit(planted.train, planted.valid)
    assert model.task == "ranking" and not model.predicts_ratings
    ndcg = evaluate(model, planted).value("ndcg", 10)
    assert ndcg > popularity_ndcg + 0.15, (ndcg, popularity_ndcg)


def test_mse_makes_a_rating_model(small_dataset):
    data = small_dataset.interactions
    parts = split(data, "random:0.2", seed=0)
    model = create("neumf", loss="mse", factors=8, layers=(16, 8), epochs=10, lr=0.01)
    model.fit(parts.train)
    assert model.task == "rating" and model.predicts_ratings
    pred = model.predict(
        data.user_ids.to_ids(parts.test.users), data.item_ids.to_ids(parts.test.items)
    )
    rmse = float(np.sqrt(np.mean((pred - parts.test.ratings) ** 2)))
    mean_rmse = float(np.sqrt(np.mean((parts.train.ratings.mean() - parts.test.ratings) ** 2)))
    assert rmse < mean_rmse


@pytest.mark.parametrize(
    ("gmf_head", "neumf_head"), [("learned", "learned"), ("ones", "ones"), ("learned", "ones")]
)
def test_neumf_pretraining_copies_the_pretrained_weights(planted, tmp_path, gmf_head, neumf_head):
    common = {**FAST, "epochs": 2, "factors": 8, "layers": (16, 8, 4)}
    gmf = create("gmf", **common, gmf_head=gmf_head).fit(planted.train)
    mlp = create("mlp", **common).fit(planted.train)
    gmf.save(tmp_path / "gmf")
    mlp.save(tmp_path / "mlp")
    neumf = create(
        "neumf",
        **common,
        gmf_head=neumf_head,
        alpha=0.3,
        pretrained_gmf=str(tmp_path / "gmf"),
        pretrained_mlp=str(tmp_path / "mlp"),
    )
    # the initialisation step of fit(), before any training
    neumf._setup(planted.train, None)
    neumf.meta_ = neumf._module_meta(planted.train, None)
    neumf.module_ = neumf._build_module(neumf.meta_)
    neumf._prepare(planted.train, None)
    m, gm, mm = neumf.module_, gmf.module_, mlp.module_
    assert torch.equal(m.user.weight[:, :8], gm.user.weight)
    assert torch.equal(m.item.weight[:, 8:], mm.item.weight)
    for mine, theirs in zip(m.tower, mm.tower, strict=True):
        assert torch.equal(mine.weight, theirs.weight) and torch.equal(mine.bias, theirs.bias)
    h_gmf = gm.head_weight().detach()
    if neumf_head == "learned":
        assert torch.equal(m.item.weight[:, :8], gm.item.weight)
        torch.testing.assert_close(m.out.weight[:, :8], 0.3 * h_gmf)
    else:  # α h ⊙ q folded into the item rows under a head of ones
        torch.testing.assert_close(m.item.weight[:, :8], gm.item.weight * 0.3 * h_gmf)
        assert torch.equal(m.head_weight()[:, :8], torch.ones(1, 8))
    if gmf_head == "ones":
        assert torch.equal(h_gmf, torch.ones(1, 8))
    torch.testing.assert_close(m.out.weight[:, 8:], 0.7 * mm.out.weight)
    torch.testing.assert_close(m.out.bias, 0.3 * gm.out.bias + 0.7 * mm.out.bias)
    # so the fused model starts as the α-blend of the two pretrained scorers
    users = np.arange(10)
    blend = 0.3 * gmf.score_users(users) + 0.7 * mlp.score_users(users)
    torch.testing.assert_close(neumf.score_users(users), blend, rtol=1e-5, atol=1e-5)
    # and fit() runs end to end from there
    neumf.fit(planted.train)
    assert len(neumf.history_) == 2


def test_fixed_gmf_head_is_plain_mf_and_stays_fixed(planted):
    """gmf_head="ones": the score is pᵀq + b (NCF section 3.2's MF case), training leaves the
    head at one (the optimizer never sees a gradient there), and the choice is saved."""
    model = create("gmf", **FAST, factors=8, gmf_head="ones", l2=1e-3).fit(planted.train)
    mod = model.module_
    assert torch.equal(mod.head_weight(), torch.ones(1, 8))
    assert torch.equal(mod.out.weight, torch.ones(1, 8))
    users = np.arange(5)
    p, q = mod.user.weight[:5].detach(), mod.item.weight.detach()
    torch.testing.assert_close(model.score_users(users), p @ q.T + mod.out.bias.detach())
    assert model.meta_["gmf_head"] == "ones"
    learned = create("gmf", **FAST, factors=8, gmf_head="learned").fit(planted.train)
    assert not torch.equal(learned.module_.head_weight(), torch.ones(1, 8))


def test_pretrained_model_must_match(planted, tmp_path):
    other = synthetic_implicit(50, 30, seed=5)
    create("gmf", **{**FAST, "epochs": 1, "factors": 8}).fit(other).save(tmp_path / "g")
    create("mlp", **{**FAST, "epochs": 1}).fit(planted.train).save(tmp_path / "m")
    with pytest.raises(ConfigError, match="other users/items"):
        create("neumf", epochs=1, factors=8, pretrained_gmf=str(tmp_path / "g")).fit(planted.train)
    with pytest.raises(ConfigError, match="must hold a gmf"):
        create("neumf", epochs=1, pretrained_gmf=str(tmp_path / "m")).fit(planted.train)
    with pytest.raises(ConfigError, match="not a saved model"):
        create("neumf", epochs=1, pretrained_mlp=str(tmp_path / "none")).fit(planted.train)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("neumf", {"factors": 8, "layers": (16, 8), "dropout": 0.2}),
        ("biased-mf", {"loss": "bpr", "factors": 8}),
    ],
)
def test_save_load_and_determinism(planted, tmp_path, name, params):
    cfg = {**FAST, "epochs": 3, **params}
    a = create(name, **cfg).fit(planted.train, planted.valid)
    b = create(name, **cfg).fit(planted.train, planted.valid)
    users = np.arange(planted.train.n_users)
    torch.testing.assert_close(a.score_users(users), b.score_users(users), rtol=0, atol=0)
    a.save(tmp_path / name)
    loaded = Recommender.load(tmp_path / name)
    assert loaded.task == "ranking" and loaded.config == a.config
    assert torch.equal(loaded.score_users(users), a.score_users(users))
    ids, _ = a.recommend(planted.train.user_ids.to_ids([0])[0], k=5)
    ids2, _ = loaded.recommend(planted.train.user_ids.to_ids([0])[0], k=5)
    assert list(ids) == list(ids2)
    c = create(name, **{**cfg, "seed": 1}).fit(planted.train, planted.valid)
    assert not torch.equal(c.score_users(users), a.score_users(users))


def test_layers_parse_from_text_and_are_checked():
    assert create("mlp", layers="64-32-16-8").config.layers == (64, 32, 16, 8)
    assert create("neumf", layers="16,8").config.layers == (16, 8)
    for bad in ("63,8", "64", (0, 8)):
        with pytest.raises(ConfigError, match="layers"):
            create("mlp", layers=bad)


def test_in_place_dropout_drops_what_the_mask_says():
    h = torch.rand(64, 3, 17) + 0.1
    dropped = _dropout(h.clone(), 0.25, torch.Generator().manual_seed(5))
    mask = dropout_mask(h.shape, 0.25, torch.Generator().manual_seed(5))
    assert torch.equal(dropped == 0, mask)
    torch.testing.assert_close(dropped[~mask], h[~mask] / 0.75)
    # the torch path (any dtype or device) applies the same mask
    torch.testing.assert_close(
        _dropout(h.double(), 0.25, torch.Generator().manual_seed(5)), dropped.double()
    )


@pytest.mark.parametrize(("g", "layers"), [(6, (8, 6, 4)), (0, (8, 4)), (6, ())])
def test_distinct_row_lookup_matches_per_pair_rows(g, layers):
    """Training looks each distinct user and item up once; scores, the per-occurrence L2
    penalty and every gradient equal the per-pair path (the one the GPU takes)."""
    torch.manual_seed(0)
    mod = NCFModule(7, 11, g, layers, init_std=0.5).double()
    users = torch.tensor([3, 1, 3, 3, 6])
    items = torch.tensor([[2, 9, 2], [4, 4, 0], [2, 10, 9], [7, 2, 2], [0, 5, 1]])
    weights = torch.randn(5, 3, dtype=torch.float64)

    def run(distinct: bool):
        mod.zero_grad()
        if distinct:
            out, sq = mod.scores_and_penalty(users, items)
        else:
            ue, ie = mod.user(users), mod.item(items)
            out, sq = mod._scores(ue, ie), ue.square().sum() + ie.square().sum()
        ((out * weights).sum() + 0.1 * sq).backward()
        grads = {k: p.grad.to_dense().clone() for k, p in mod.named_parameters()}
        return out.detach(), sq.detach(), grads

    out, sq, grads = run(True)
    ref_out, ref_sq, ref_grads = run(False)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(sq, ref_sq)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, msg=name)


@pytest.mark.parametrize("scale", [1.0, 1 / 0.9])
def test_compiled_relu_backward_matches_aten(scale):
    from neuralrec.models.ncf_fused import _relu_grad

    torch.manual_seed(0)
    dh, h = torch.randn(33, 2, 17), torch.relu(torch.randn(33, 2, 17))
    want = torch.ops.aten.threshold_backward(dh, h, 0.0) * scale
    torch.testing.assert_close(_relu_grad(dh.clone(), h, scale), want)
    # the same on a non-contiguous input, which takes aten's path
    torch.testing.assert_close(
        _relu_grad(dh.transpose(0, 2), h.transpose(0, 2), scale), want.transpose(0, 2)
    )


def _random_head(g, layers, seed=0):
    gen = torch.Generator().manual_seed(seed)
    width = g + (layers[0] // 2 if layers else 0)
    ue, ie = torch.randn(7, width, generator=gen), torch.randn(11, width, generator=gen)
    u_inv = torch.randint(0, 7, (9,), generator=gen)
    i_inv = torch.randint(0, 11, (9, 3), generator=gen)
    w_out = torch.randn(1, g + (layers[-1] if layers else 0), generator=gen)
    tower = []
    for a, b in itertools.pairwise(layers):
        tower += [torch.randn(b, a, generator=gen), torch.randn(b, generator=gen)]
    grad = torch.randn(9, 3, generator=gen)
    return ue, ie, u_inv, i_inv, w_out, torch.randn(1, generator=gen), tower, grad


@pytest.mark.parametrize(
    ("g", "layers", "p"),
    [(8, (16, 12, 6), 0.0), (8, (16, 12, 6), 0.3), (0, (16, 8), 0.2), (8, (), 0.0),
     (6, (8, 4, 6, 2), 0.4)],
)  # fmt: skip
def test_compiled_head_matches_the_torch_head(g, layers, p, monkeypatch):
    """The CPU float32 head's compiled gathers, ReLU/dropout passes and scatters give the
    torch ops' activations (the same dropout masks), logits and gradients."""
    from neuralrec.models import ncf_fused

    ue, ie, u_inv, i_inv, w_out, b_out, tower, grad = _random_head(g, layers)

    def run():
        logits, hs = ncf_fused.head_forward(
            ue, ie, u_inv, i_inv, g, p, 123, 0.5, w_out, b_out, tower
        )
        g_ue, g_ie, g_wout, g_bout, g_tower = ncf_fused.head_backward(
            grad, ue, ie, u_inv, i_inv, g, p, w_out, tower, hs
        )
        return [logits, *hs], [g_ue, g_ie, g_wout, g_bout, *g_tower]

    assert ncf_fused._compiled(ue, ie, u_inv, i_inv, w_out, tower)
    outs, grads = run()
    monkeypatch.setattr(ncf_fused, "_compiled", lambda *a: False)
    ref_outs, ref_grads = run()
    for a, b in zip(outs, ref_outs, strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    if p:  # some entries of every layer were dropped
        assert all((h == 0).any() for h in outs[1:])


@pytest.mark.parametrize("loss", ["bce", "bpr", "mse"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("gmf_head", "dense_l2"), [("learned", 0.0), ("ones", 0.03)])
def test_hand_written_step_matches_autograd(loss, dtype, gmf_head, dense_l2):
    """loss_with_grads (one CPU process: no autograd graph; float32 runs the compiled head)
    gives the loss and every parameter's gradient that autograd gives, L2 penalties included;
    a fixed GMF head gets no gradient either way."""
    from neuralrec.training.losses import implicit_loss, mse

    torch.manual_seed(0)
    mu = 3.0 if loss == "mse" else 0.0
    mod = NCFModule(7, 11, 6, (8, 6, 4), init_std=0.5, mu=mu, gmf_head=gmf_head)
    mod = mod.to(dtype)
    users = torch.tensor([3, 1, 3, 3, 6])
    m = 1 if loss == "mse" else 3
    items = torch.randint(0, 11, (5, m))
    target = torch.rand(5, dtype=dtype) * 4 + 1 if loss == "mse" else None
    l2 = 0.05
    value = mod.loss_with_grads(users, items, loss, l2, target, dense_l2)
    hand = {k: p.grad.to_dense().clone() for k, p in mod.named_parameters()}
    assert mod.user.weight.grad.is_sparse and mod.user.weight.grad.is_coalesced()
    mod.zero_grad()
    logits, penalty = mod.scores_and_penalty(users, items)
    if loss == "mse":
        ref = mse(logits[:, 0], target)
    else:
        ref = implicit_loss(loss, logits[:, 0], logits[:, 1:])
    ref = ref + l2 * penalty / len(users) + dense_l2 * mod.dense_penalty()
    ref.backward()
    torch.testing.assert_close(value, ref.detach())
    for name, p in mod.named_parameters():
        torch.testing.assert_close(hand[name], p.grad.to_dense(), msg=name)
    if gmf_head == "ones":
        assert not hand["out.weight"][:, :6].any() and not mod.out.weight.grad[:, :6].any()
    if dense_l2:  # the penalty is really there: 2λW on top of the loss's own gradient
        mod.zero_grad()
        mod.loss_with_grads(users, items, loss, l2, target, 0.0)
        params = dict(mod.named_parameters())
        w = params["tower.0.weight"].detach()
        torch.testing.assert_close(
            hand["tower.0.weight"] - params["tower.0.weight"].grad, 2 * dense_l2 * w
        )
        h = params["out.weight"].detach().clone()
        h[:, :6] = 0  # the fixed GMF head is not penalised
        torch.testing.assert_close(hand["out.weight"] - params["out.weight"].grad, 2 * dense_l2 * h)


def test_distinct_rows_scan_equals_unique():
    mod = NCFModule(50, 3000, 4, (8, 4))
    gen = torch.Generator().manual_seed(0)
    for n, rows in [(1, 50), (7, 50), (400, 50), (40, 3000), (400, 3000)]:
        idx = torch.randint(0, rows, (n, 3), generator=gen)
        uniq, inv = mod._distinct(idx, rows)
        want_uniq, want_inv = torch.unique(idx, return_inverse=True)
        assert torch.equal(uniq, want_uniq) and torch.equal(inv, want_inv)


def test_kernel_warm_up_runs_once_before_training_for_models_that_use_the_loops(
    planted, monkeypatch
):
    from neuralrec.training import kernels

    calls = []
    monkeypatch.setattr(kernels, "warm_up", lambda: calls.append(1))
    create("gmf", **{**FAST, "epochs": 1}).fit(planted.train)
    create("biased-mf", loss="bpr", **{**FAST, "epochs": 1}).fit(planted.train)
    assert len(calls) == 2
    create("cdae", epochs=1, threads=1).fit(planted.train)  # no compiled loops: no warm-up
    assert len(calls) == 2


def test_kernel_warm_up_covers_what_training_calls(planted):
    """kernels.warm_up loads every compiled loop a CPU fit calls with the argument types the
    fit passes: training adds no new compiled signature afterwards."""
    from numba.core.registry import CPUDispatcher

    from neuralrec.training import kernels

    kernels.warm_up()
    loops = {k: f for k, f in vars(kernels).items() if isinstance(f, CPUDispatcher)}
    before = {k: len(f.signatures) for k, f in loops.items()}
    assert before["ncf_first_layer"] and before["adam_rows"]
    for name, params in [("neumf", {"dropout": 0.2}), ("gmf", {"optimizer": "sgd"}),
                         ("mlp", {"layers": (16, 8), "optimizer": "rowwise-adagrad"}),
                         ("biased-mf", {"loss": "bpr"})]:  # fmt: skip
        create(name, **{**FAST, "epochs": 1, **params}).fit(planted.train)
    ratings = synthetic_ratings(40, 30, n_ratings=600, seed=0)
    create("biased-mf", estimator="map", epochs=1, threads=1).fit(ratings)
    after = {k: len(f.signatures) for k, f in loops.items()}
    assert after == before


# ---------------------------------------------------------------------- fold-in of visitors
def _expected_bce(u, q, bias, pos, w, k, lam):
    """The fold-in objective of a GMF with its head at ones, written out in numpy: BCE on the
    positives plus k expected negatives drawn from w, over 1 + k logits, plus λ‖u‖²."""
    s = q @ u + bias
    softplus = lambda x: np.logaddexp(0.0, x)  # noqa: E731
    return (softplus(-s[pos]).mean() + k * (w * softplus(s)).sum()) / (1 + k) + lam * u @ u


def _dense(t: torch.Tensor) -> torch.Tensor:
    return t.to_dense() if t.is_sparse else t


def test_gmf_fold_in_is_the_minimiser_of_the_expected_training_objective(planted):
    from scipy.optimize import minimize

    model = create("gmf", gmf_head="ones", l2=5e-3, **{**FAST, "epochs": 5}).fit(planted.train)
    m = model.module_
    before = {k: v.clone() for k, v in m.state_dict().items()}
    grads = [None if p.grad is None else _dense(p.grad).clone() for p in m.parameters()]
    history = np.array([0, 4, 8, 13])
    scores = model.score_history(history)
    # the network is untouched and its gradients (training's last) too
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    for g, p in zip(grads, m.parameters(), strict=True):
        assert (g is None and p.grad is None) or torch.equal(_dense(g), _dense(p.grad))
    q = m.item.weight.detach().double().numpy()
    bias = m.out.bias.item() + m.mu.item()
    w = np.ones(model.n_items)
    w[history] = 0.0
    w /= w.sum()
    args = (q, bias, history, w, model.config.negatives, model.config.l2)
    best = minimize(_expected_bce, np.zeros(q.shape[1]), args=args, method="BFGS", tol=1e-10)
    np.testing.assert_allclose(scores.numpy(), q @ best.x + bias, atol=2e-3)


@pytest.mark.parametrize("loss", ["bce", "bpr"])
@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf"])
def test_fold_in_row_is_a_local_minimum_for_every_loss(planted, name, loss):
    """No small step from the folded-in row lowers the objective (rebuilt here from scores)
    by more than 1e-3 of it. A step test, not a gradient test: the MLP's ReLUs make the
    objective kinked, and L-BFGS stops at a kink 1e-4 to 2e-4 above what a step can still
    find (GMF's smooth case is checked exactly above)."""
    # λ > 0 for every model (mlp's default is 0, which leaves the row unbounded)
    model = create(name, loss=loss, l2=1e-2, **{**FAST, "epochs": 3}).fit(planted.train)
    m, cfg = model.module_, model.config
    history = torch.tensor([1, 5, 9, 17, 21])
    w = torch.ones(model.n_items)
    w[history] = 0
    w /= w.sum()
    k = cfg.negatives

    def objective(u: torch.Tensor) -> float:
        with torch.no_grad():
            s = m.score_row(u)
            if loss == "bce":  # sampled BCE's mean over 1 + k logits, in expectation
                obj = (F.softplus(-s[history]).mean() + k * (w * F.softplus(s)).sum()) / (1 + k)
            else:
                obj = (F.softplus(s[None, :] - s[history][:, None]) * w).sum(1).mean()
            return float(obj + cfg.l2 * u.square().sum())

    start = m.user.weight.detach().mean(0)
    row = m.fold_in(history, start, loss=loss, l2=cfg.l2, negatives=k, neg_weights=w)
    best = objective(row)
    assert best < objective(start) * (1 - 1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(32):
        step = torch.randn(row.shape, generator=gen)
        step *= 1e-2 * (1 + row.norm()) / step.norm()
        assert objective(row + step) >= best * (1 - 1e-3)


def test_visitors_are_folded_in_not_served_popularity(planted, popularity_ndcg):
    """A visitor with a training user's items gets about that user's list; a visitor whose
    items come from one taste group gets that group's items."""
    model = create("neumf", **FAST).fit(planted.train, planted.valid)
    X = planted.train.tocsr("ones")
    overlap = []
    for user in range(0, 120, 7):
        trained = set(torch.topk(model.score_users(np.array([user]))[0], 10).indices.tolist())
        folded = set(torch.topk(model.score_history(X[user].indices), 10).indices.tolist())
        overlap.append(len(trained & folded))
    assert np.mean(overlap) >= 6, overlap
    group0 = np.array([0, 4, 8, 12])  # item index % 4 is its taste group
    ids, _ = model.recommend_from_history(planted.train.item_ids.to_ids(group0), k=10)
    idx = planted.train.item_ids.to_index(ids)
    assert np.mean(idx % 4 == 0) >= 0.8 and not set(idx) & set(group0)


def test_mse_fold_in_fits_the_given_ratings():
    ratings = synthetic_ratings(60, 40, n_ratings=900, seed=1)
    model = create("gmf", loss="mse", **{**FAST, "epochs": 10}).fit(ratings)
    items, given = np.array([2, 3, 5, 7, 11]), np.array([5.0, 5.0, 1.0, 1.0, 5.0])
    scores = model.score_history(items, given).numpy()
    # the row follows the ratings: loved items score above hated ones
    assert scores[[2, 3, 11]].min() > scores[[5, 7]].max()


def test_recency_boost_follows_each_users_latest_taste():
    # four item groups of 15; every user rated 6 items of one group long ago and 3 of another
    # lately: unboosted the old group should lead the recommendations, boosted the recent one
    rng = np.random.default_rng(0)
    users, items, times, old, new = [], [], [], [], []
    for u in range(160):
        g_old, g_new = rng.choice(4, 2, replace=False)
        old.append(g_old), new.append(g_new)
        for g, n, t in ((g_old, 6, 100), (g_new, 3, 1000)):
            for i in rng.choice(15, n, replace=False):
                users.append(u), items.append(15 * g + i), times.append(t + rng.integers(10))
    data = Interactions.from_arrays(users, items, timestamps=times)

    def shares(**params: float) -> tuple[float, float]:
        model = create("gmf", factors=8, epochs=40, early_stopping=False, seed=0, **params)
        top, _ = model.fit(data).recommend(np.arange(160), k=5)  # raw ids are the indices
        group = top // 15
        return float(np.mean(group == np.array(old)[:, None])), float(
            np.mean(group == np.array(new)[:, None])
        )

    plain, boosted = shares(), shares(recency_boost=16, recency_span=3)
    # (old, recent) shares of the top 5 here: (0.54, 0.31) plain, (0.35, 0.57) boosted
    assert plain[0] > plain[1] and boosted[1] > boosted[0] and boosted[1] > plain[1] + 0.15
