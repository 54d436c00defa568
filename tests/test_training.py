"""The shared trainer: optimizers, early stopping, checkpoints and resume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from neuralrec.models import create
from neuralrec.models.mf import _FusedMSE
from neuralrec.training import TrainConfig, Trainer
from neuralrec.training.batches import TensorBatches
from neuralrec.training.optim import COMPILED, OPTIMIZERS, RowSparse
from neuralrec.training.trainer import TrainingDiverged


def test_fused_mse_matches_autograd():
    g = torch.Generator().manual_seed(0)
    p, q = (
        torch.randn(7, 5, generator=g, dtype=torch.float64),
        torch.randn(7, 5, generator=g, dtype=torch.float64),
    )
    a, b = (
        torch.randn(7, generator=g, dtype=torch.float64),
        torch.randn(7, generator=g, dtype=torch.float64),
    )
    r = torch.randint(1, 6, (7,), generator=g).double()
    mu, bl2 = 3.5, 0.01
    wu = torch.rand(7, generator=g, dtype=torch.float64) * 0.2
    wi = torch.rand(7, generator=g, dtype=torch.float64) * 0.2
    leaves = [t.clone().requires_grad_() for t in (p, q, a, b)]
    fused = _FusedMSE.apply(*leaves, r, mu, wu, wi, bl2)
    fused.backward()
    ref_leaves = [t.clone().requires_grad_() for t in (p, q, a, b)]
    pp, qq, aa, bb = ref_leaves
    err = (pp * qq).sum(1) + aa + bb + mu - r
    ref = (
        err.square().sum()
        + (wu * pp.square().sum(1)).sum()
        + (wi * qq.square().sum(1)).sum()
        + bl2 * (aa.square().sum() + bb.square().sum())
    ) / 7
    ref.backward()
    assert fused.item() == pytest.approx(ref.item(), rel=1e-12)
    for x, y in zip(leaves, ref_leaves, strict=True):
        torch.testing.assert_close(x.grad, y.grad)
    assert torch.autograd.gradcheck(
        lambda *t: _FusedMSE.apply(*t, r, mu, wu, wi, bl2),
        tuple(t.clone().requires_grad_() for t in (p, q, a, b)),
    )


TORCH_REFERENCE = {
    "sgd": lambda p, wd: torch.optim.SGD(p, lr=0.05, weight_decay=wd),
    "momentum": lambda p, wd: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=wd),
    "adagrad": lambda p, wd: torch.optim.Adagrad(p, lr=0.05, weight_decay=wd, eps=1e-10),
    "rmsprop": lambda p, wd: torch.optim.RMSprop(p, lr=0.05, weight_decay=wd),
    "adam": lambda p, wd: torch.optim.Adam(p, lr=0.05, weight_decay=wd),
    "adamw": lambda p, wd: torch.optim.AdamW(p, lr=0.05, weight_decay=wd),
}


@pytest.mark.parametrize("kind", sorted(TORCH_REFERENCE))
@pytest.mark.parametrize("sparse_grad", [True, False])
@pytest.mark.parametrize(
    "wd", [0.01, 0.0]
)  # without weight decay sparse rows take the compiled loops
def test_row_sparse_matches_torch_optim(kind, sparse_grad, wd):
    """Dense gradients, and sparse ones touching every row each step, match torch.optim."""
    torch.manual_seed(0)
    dense = nn.Embedding(4, 3)
    ours = nn.Embedding(4, 3, sparse=sparse_grad)
    ours.weight.data.copy_(dense.weight.data)
    ref = TORCH_REFERENCE[kind](dense.parameters(), wd)
    opt = RowSparse(ours.parameters(), kind, 0.05, weight_decay=wd)
    idx = torch.tensor([3, 0, 2, 1, 0])
    for step in range(4):
        for emb, o in ((dense, ref), (ours, opt)):
            o.zero_grad()
            (emb(idx) ** 2 * (step + 1)).sum().backward()
            o.step()
    torch.testing.assert_close(ours.weight.data, dense.weight.data, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", COMPILED)
def test_compiled_row_updates_match_the_torch_path(kind, monkeypatch):
    """The numba loops give the torch ops' result (rows, optimizer state) on sparse gradients
    that repeat rows and leave others untouched, and their state resumes on the torch path."""
    g = torch.Generator().manual_seed(0)
    start = torch.randn(50, 6, generator=g)
    batches = [torch.randint(0, 30, (40,), generator=g) for _ in range(5)]
    weights = [torch.randn(40, 6, generator=g) for _ in range(5)]

    def run(compiled, steps=range(5), emb=None, opt=None):
        monkeypatch.setattr("neuralrec.training.optim.COMPILED", COMPILED if compiled else ())
        if emb is None:
            emb = nn.Embedding(50, 6, sparse=True)
            emb.weight.data.copy_(start)
            opt = RowSparse(emb.parameters(), kind, 0.05)
        for s in steps:
            opt.zero_grad()
            (emb(batches[s]) * weights[s]).sum().backward()
            opt.step()
        return emb, opt

    torch_emb, torch_opt = run(False)
    fast_emb, fast_opt = run(True)
    torch.testing.assert_close(fast_emb.weight.data, torch_emb.weight.data, rtol=1e-5, atol=1e-5)
    for key, value in torch_opt.state_dict()["state"][0].items():
        torch.testing.assert_close(fast_opt.state_dict()["state"][0][key], value)
    assert (fast_emb.weight.data[30:] == start[30:]).all()  # rows never touched
    # three compiled steps, then two torch steps on the same state: the same as five torch ones
    emb, opt = run(True, range(3))
    emb, opt = run(False, range(3, 5), emb, opt)
    torch.testing.assert_close(emb.weight.data, torch_emb.weight.data, rtol=1e-5, atol=1e-5)


def test_row_sparse_leaves_untouched_rows_alone():
    emb = nn.Embedding(5, 2, sparse=True)
    before = emb.weight.detach().clone()
    opt = RowSparse(emb.parameters(), "adam", 0.1, weight_decay=0.1)
    opt.zero_grad()
    emb(torch.tensor([1, 3])).sum().backward()
    opt.step()
    changed = (emb.weight.detach() != before).any(dim=1).tolist()
    assert changed == [False, True, False, True, False]


def test_unknown_optimizer_is_rejected():
    with pytest.raises(ValueError, match="unknown optimizer"):
        TrainConfig(optimizer="lbfgs")
    assert set(OPTIMIZERS) >= {"sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"}


def _regression_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(256, generator=g)
    return x, y


def _linear_fit(cfg, tmp_path=None, validate=None, stop_after=None, batch_size=32):
    x, y = _regression_problem()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)

    def loss_fn(batch):
        xb, yb = batch
        return (model(xb).squeeze(-1) - yb).square().mean()

    def on_epoch(record):
        if stop_after is not None and record["epoch"] == stop_after:
            raise KeyboardInterrupt  # stands in for a kill after the checkpoint of this epoch

    trainer = Trainer(cfg, checkpoint_dir=tmp_path, on_epoch_end=on_epoch)
    history = trainer.fit(model, TensorBatches([x, y], batch_size=batch_size), loss_fn, validate)
    return model, history


@pytest.mark.parametrize("fused", [False, True], ids=["rowsparse", "torch-fused-adam"])
def test_resume_after_kill_gives_identical_result(tmp_path, monkeypatch, fused):
    if fused:  # large dense layers go to torch's fused Adam: its state must resume too
        monkeypatch.setattr("neuralrec.training.optim.FUSED_MIN_NUMEL", 0)
    cfg = TrainConfig(epochs=6, optimizer="adam", lr=0.05, early_stopping=False, seed=3)
    full, full_hist = _linear_fit(cfg)
    with pytest.raises(KeyboardInterrupt):
        _linear_fit(cfg, tmp_path, stop_after=3)
    # the kill hit after epoch 3's bookkeeping but before its checkpoint: resume redoes epoch 3
    resumed, hist = _linear_fit(cfg, tmp_path)
    torch.testing.assert_close(resumed.weight, full.weight, rtol=0, atol=0)
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in full_hist]


def test_weight_averaging_is_the_mean_of_the_epoch_end_weights():
    x, y = _regression_problem()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    seen = []

    def loss_fn(batch):
        xb, yb = batch
        return (model(xb).squeeze(-1) - yb).square().mean()

    def record(rec):  # runs after the epoch's update of the average, before the final swap
        if rec["epoch"] >= 3:
            seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    cfg = TrainConfig(epochs=7, optimizer="sgd", lr=0.05, average_from=3, early_stopping=False)
    Trainer(cfg, on_epoch_end=record).fit(model, TensorBatches([x, y], batch_size=32), loss_fn)
    assert len(seen) == 5
    assert not torch.equal(seen[0]["weight"], seen[-1]["weight"])  # the iterates did move
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, torch.stack([s[k] for s in seen]).mean(0))


def test_weight_averaging_is_what_is_validated_and_restored_as_best():
    scores = iter([0.5, 0.6, 0.7, 0.8, 0.75, 0.74, 0.73])
    x, y = _regression_problem()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    validated, iterates = [], []

    def loss_fn(batch):
        xb, yb = batch
        return (model(xb).squeeze(-1) - yb).square().mean()

    def validate():
        validated.append(model.weight.detach().clone())
        return {"ndcg@10": next(scores)}

    cfg = TrainConfig(
        epochs=7, optimizer="sgd", lr=0.05, monitor="ndcg@10", patience=10, average_from=2
    )
    Trainer(cfg, on_epoch_end=lambda r: iterates.append(model.weight.detach().clone())).fit(
        model, TensorBatches([x, y], batch_size=32), loss_fn, validate
    )
    torch.testing.assert_close(validated[0], iterates[0])  # before averaging: the iterate
    for e in (2, 4, 7):  # then the mean of the iterates since epoch 2
        torch.testing.assert_close(validated[e - 1], torch.stack(iterates[1:e]).mean(0))
    # epoch 4 validated best: its mean is restored, not the last iterate or the final mean
    torch.testing.assert_close(model.weight, validated[3])


@pytest.mark.parametrize("stop_after", [2, 4])
def test_resume_after_kill_with_weight_averaging_gives_identical_result(tmp_path, stop_after):
    # killed before averaging began (2) and in the middle of it (4)
    cfg = TrainConfig(
        epochs=6, optimizer="adam", lr=0.05, early_stopping=False, seed=3, average_from=3
    )
    full, full_hist = _linear_fit(cfg)
    with pytest.raises(KeyboardInterrupt):
        _linear_fit(cfg, tmp_path, stop_after=stop_after)
    resumed, hist = _linear_fit(cfg, tmp_path)
    torch.testing.assert_close(resumed.weight, full.weight, rtol=0, atol=0)
    torch.testing.assert_close(resumed.bias, full.bias, rtol=0, atol=0)
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in full_hist]
    again, _ = _linear_fit(cfg, tmp_path)  # a finished checkpoint holds the averaged weights
    torch.testing.assert_close(again.weight, full.weight, rtol=0, atol=0)


def test_resume_after_finish_returns_final_model(tmp_path):
    cfg = TrainConfig(epochs=3, optimizer="sgd", lr=0.01, early_stopping=False)
    first, _ = _linear_fit(cfg, tmp_path)
    again, hist = _linear_fit(cfg, tmp_path)
    assert len(hist) == 3
    torch.testing.assert_close(again.weight, first.weight, rtol=0, atol=0)


def test_checkpoint_of_other_config_is_refused(tmp_path):
    _linear_fit(TrainConfig(epochs=1, lr=0.01), tmp_path)
    with pytest.raises(Exception, match="different configuration"):
        _linear_fit(TrainConfig(epochs=1, lr=0.02), tmp_path)


def test_early_stopping_restores_best_weights():
    scores = iter([0.5, 0.6, 0.55, 0.54, 0.53, 0.52])
    snapshots = []
    x, y = _regression_problem()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)

    def validate():
        snapshots.append(model.weight.detach().clone())
        return {"ndcg@10": next(scores)}

    cfg = TrainConfig(epochs=6, lr=0.01, monitor="ndcg@10", patience=3)
    hist = Trainer(cfg).fit(
        model,
        TensorBatches([x, y], batch_size=64),
        lambda b: (model(b[0]).squeeze(-1) - b[1]).square().mean(),
        validate,
    )
    assert len(hist) == 5 and hist[-1]["best_epoch"] == 2
    torch.testing.assert_close(model.weight.detach(), snapshots[1])


def test_convergence_stop():
    cfg = TrainConfig(epochs=200, optimizer="sgd", lr=0.05, early_stopping=False, tol=1e-4)
    _, hist = _linear_fit(cfg, batch_size=256)  # full batch: no sampling noise
    assert len(hist) < 200
    assert hist[-1]["weight_change"] <= 1e-4


def test_divergence_is_reported():
    cfg = TrainConfig(epochs=3, optimizer="sgd", lr=1e6, early_stopping=False)
    with pytest.raises(TrainingDiverged, match="lower lr"):
        _linear_fit(cfg)


def test_training_is_deterministic(tiny_dataset):
    data = tiny_dataset.interactions
    a = create("biased-mf", epochs=3, factors=8, seed=5).fit(data)
    b = create("biased-mf", epochs=3, factors=8, seed=5).fit(data)
    np.testing.assert_array_equal(
        a.predict_idx(data.users, data.items), b.predict_idx(data.users, data.items)
    )


@pytest.mark.parametrize("schedule", ["step", "exponential", "cosine", "plateau"])
def test_lr_schedules_change_the_rate(schedule):
    cfg = TrainConfig(
        epochs=6, optimizer="sgd", lr=0.1, lr_schedule=schedule, lr_step=2, early_stopping=False
    )
    _, hist = _linear_fit(cfg)
    lrs = [h["lr"] for h in hist]
    assert lrs[0] == pytest.approx(0.1)
    if schedule != "plateau":  # plateau only drops when the loss stalls
        assert lrs[-1] < 0.1
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(lrs))


def test_row_sparse_state_round_trips(tmp_path):
    emb = nn.Embedding(5, 2, sparse=True)
    opt = RowSparse(emb.parameters(), "adam", 0.1)
    emb(torch.tensor([1, 3])).sum().backward()
    opt.step()
    other = RowSparse(emb.parameters(), "adam", 0.1)
    other.load_state_dict(opt.state_dict())
    for k, v in opt.state[emb.weight].items():
        torch.testing.assert_close(other.state[emb.weight][k], v)


def test_stop_epoch_replays_the_start_of_the_full_schedule():
    full_cfg = TrainConfig(epochs=6, optimizer="adam", lr=0.05, lr_schedule="cosine", seed=1)
    _, full = _linear_fit(full_cfg)
    _, part = _linear_fit(full_cfg.replace(stop_epoch=3))
    assert len(part) == 3
    # the lr still decays over 6 epochs, so the first 3 epochs are the full run's
    assert [h["lr"] for h in part] == [h["lr"] for h in full[:3]]
    assert [h["train_loss"] for h in part] == [h["train_loss"] for h in full[:3]]
    assert part[-1]["lr"] > full[-1]["lr"]


def test_amp_is_a_cuda_option_and_a_no_op_on_cpu():
    cfg = TrainConfig(epochs=3, optimizer="adam", lr=0.05, early_stopping=False, seed=2)
    plain, plain_hist = _linear_fit(cfg)
    mixed, mixed_hist = _linear_fit(cfg.replace(amp=True))
    torch.testing.assert_close(mixed.weight, plain.weight, rtol=0, atol=0)
    assert [h["train_loss"] for h in mixed_hist] == [h["train_loss"] for h in plain_hist]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_amp_on_cuda_trains_close_to_float32():
    cfg = TrainConfig(epochs=3, optimizer="adam", lr=0.05, early_stopping=False, seed=2)
    x, y = _regression_problem()
    losses = {}
    for amp in (False, True):
        torch.manual_seed(0)
        model = nn.Linear(4, 1).cuda()

        def loss_fn(batch, model=model):
            xb, yb = batch
            return (model(xb).squeeze(-1) - yb).square().mean()

        hist = Trainer(cfg.replace(amp=amp)).fit(
            model, TensorBatches([x.cuda(), y.cuda()], batch_size=32), loss_fn
        )
        losses[amp] = hist[-1]["train_loss"]
    assert losses[True] == pytest.approx(losses[False], rel=0.05)


@pytest.mark.parametrize("kind", ["adam", "rowwise-adagrad", "sgd"])
def test_lazy_rows_with_dense_gradients_match_sparse_gradients(kind):
    from neuralrec.training.optim import LAZY_ROWS, RowSparse

    # a repeated row would differ under row-wise Adagrad only: the sparse path counts each
    # occurrence as one sample, the dense gradient arrives already summed
    idx = torch.tensor([1, 3, 3, 4]) if kind != "rowwise-adagrad" else torch.tensor([1, 3, 4])
    tables = []
    for sparse in (True, False):
        torch.manual_seed(0)
        emb = nn.Embedding(6, 3, sparse=sparse)
        if not sparse:
            setattr(emb.weight, LAZY_ROWS, True)
        opt = RowSparse([emb.weight], kind, 0.1)
        for _ in range(3):
            opt.zero_grad()
            emb(idx[:2] if _ else idx).square().sum().backward()
            opt.step()
        tables.append(emb.weight.detach())
    # untouched rows (0, 2, 5) keep their initial values in both
    torch.testing.assert_close(tables[1], tables[0], rtol=1e-5, atol=1e-5)


def test_biased_mf_hand_written_gradients_match_autograd():
    """The one-process path writes sparse gradients itself; they equal autograd's."""
    from neuralrec.data.synthetic import synthetic_ratings

    data = synthetic_ratings(n_users=30, n_items=20, n_ratings=300, seed=0)
    model = create("biased-mf", factors=4, epochs=1, init_std=0.3, bias_l2=0.1, threads=1)
    model.fit(data)
    m = model.module_
    users = torch.tensor([0, 3, 3, 7, 29], dtype=torch.int64)
    items = torch.tensor([1, 2, 2, 19, 0], dtype=torch.int64)
    ratings = torch.tensor([4.0, 2.0, 5.0, 3.0, 1.0])
    out = model._loss((users, items, ratings))
    manual = [p.grad.coalesce().to_dense() for p in m.parameters()]
    for p in m.parameters():
        p.grad = None
    wu, wi = model._row_l2[0][users], model._row_l2[1][items]
    pu, qi = m.P(users), m.Q(items)
    a, b = m.user_bias(users).squeeze(1), m.item_bias(items).squeeze(1)
    err = (pu * qi).sum(1) + a + b + m.mu - ratings
    ref = (
        err.square().sum()
        + (wu * pu.square().sum(1)).sum()
        + (wi * qi.square().sum(1)).sum()
        + model.config.bias_l2 * (a.square().sum() + b.square().sum())
    ) / len(users)
    ref.backward()
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-5)
    for got, p in zip(manual, m.parameters(), strict=True):
        torch.testing.assert_close(got, p.grad.coalesce().to_dense(), rtol=1e-5, atol=1e-5)


def test_compiled_step_follows_replaced_state_and_storage():
    """The compiled step caches array views of a parameter and its state: loading a state
    dict or swapping the parameter's storage must not leave it writing to the old arrays."""
    emb = nn.Embedding(5, 2, sparse=True)
    opt = RowSparse(emb.parameters(), "adam", 0.1)
    emb(torch.tensor([1, 3])).sum().backward()
    opt.step()
    saved = {k: v.clone() for k, v in opt.state[emb.weight].items()}
    opt.step()  # same gradient: moves the state on
    opt.load_state_dict({"state": {0: saved}, "param_groups": opt.state_dict()["param_groups"]})
    opt.step()
    assert opt.state[emb.weight]["row_step"][1].item() == 2
    emb.weight.data = emb.weight.data.clone()
    before = emb.weight.detach().clone()
    opt.step()
    assert not torch.equal(emb.weight.detach()[1], before[1])
    assert opt.state[emb.weight]["row_step"][1].item() == 3


def test_subnormals_are_flushed_while_training_only():
    """Subnormal arithmetic is many times slower on x86: the trainer flushes it to zero while
    it trains and leaves the process as it found it afterwards."""
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # below float32's smallest normal
    x, y = _regression_problem()
    model = nn.Linear(4, 1)
    flushed = []

    def loss_fn(batch):
        flushed.append(float((tiny * 1.0).item()) == 0.0)
        xb, yb = batch
        return (model(xb).squeeze(-1) - yb).square().mean()

    cfg = TrainConfig(epochs=1, optimizer="sgd", lr=0.05, early_stopping=False)
    Trainer(cfg).fit(model, TensorBatches([x, y], batch_size=32), loss_fn)
    assert flushed and all(flushed)
    assert float((tiny * 1.0).item()) != 0.0
