"""BiasedMF, the latent factor model (LFM) of the lectures and of Koren et al. (2009).

r̂_ui = μ + a_u + b_i + p_uᵀq_i. Two estimators (``estimator``; ``auto`` picks, see
docs/defaults.md): ``gibbs``, the posterior mean of Bayesian biased MF drawn by Gibbs sampling
(:mod:`neuralrec.models._gibbs`; the default for ratings), and ``map``, mini-batch SGD-family
optimizers on mean (r_ui − r̂_ui)² + λ(‖p_u‖² + ‖q_i‖²) + λ_b(a_u² + b_i²) over the rows of
each batch (L2 on the parameters the batch uses, as per-sample SGD applies it).

With ``loss=bpr`` (Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback",
UAI 2009) or ``loss=bce`` it is a ranking model on implicit feedback: score = b_i + p_uᵀq_i,
trained against sampled negatives with λ(‖p_u‖² + ‖q_i‖² + ‖q_j‖²) + λ_b b² on the rows a
batch uses (:mod:`neuralrec.training.implicit`); the implicit defaults are in
``BiasedMFConfig.LOSS_DEFAULTS`` (search: docs/implicit.md).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.distributed as dist
from pydantic import Field, model_validator
from torch import nn

from neuralrec.data.interactions import Interactions
from neuralrec.errors import ConfigError
from neuralrec.models._fold_in import fit_row, implicit_visitor, mean_user_row
from neuralrec.models._gibbs import ESTIMATOR_HELP, refuse_data_parallel, resolve_estimator
from neuralrec.models.cold_start import ridge_fold_in
from neuralrec.models.registry import register
from neuralrec.models.torch_base import TorchRecommender
from neuralrec.training.batches import Batch, BatchSource, TensorBatches
from neuralrec.training.checkpoint import (
    load_matching_checkpoint,
    save_checkpoint,
    state_fingerprint,
)
from neuralrec.training.config import LRSchedule
from neuralrec.training.implicit import ImplicitTrainConfig, implicit_batches
from neuralrec.training.losses import GradientsSet, implicit_loss
from neuralrec.training.trainer import CHECKPOINT_NAME
from neuralrec.utils.seeding import set_threads


class BiasedMFConfig(ImplicitTrainConfig):
    """Hyperparameters of :class:`BiasedMF`. Defaults: see docs/defaults.md for the search
    (mse) and docs/implicit.md (bpr, bce)."""

    factors: int = Field(128, ge=1, description="latent dimension d of p_u and q_i")
    l2: float = Field(1.0, ge=0, description="λ on the factor rows a batch uses")
    reg_exponent: float = Field(
        0.5,
        ge=0,
        le=1,
        description="row L2 grows as n^α with the row's rating count n: 1 = per-rating (SGD's), 0 = once per row",
    )
    bias_l2: float = Field(0.01, ge=0, description="λ_b on the biases a batch uses")
    init_std: float = Field(0.01, gt=0, description="std of the normal initialisation of factors")
    epochs: int = 40
    batch_size: int = 1024
    optimizer: str = "adam"
    lr: float = 0.002
    lr_schedule: LRSchedule = "cosine"
    monitor: str = "rmse"
    patience: int = 5
    loss: Literal["mse", "bce", "bpr"] = Field(
        "mse", description="mse on ratings; bpr or bce on implicit feedback (sampled negatives)"
    )
    estimator: Literal["auto", "map", "gibbs"] = Field("auto", description=ESTIMATOR_HELP)
    samples: int = Field(100, ge=1, description="estimator=gibbs: sweeps of the sampler")
    burn_in: int = Field(
        20, ge=0, description="estimator=gibbs: first sweeps left out of the posterior mean"
    )

    #: defaults of the implicit losses (fields the user sets win); mse uses the ones above
    LOSS_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        loss: {
            "factors": 64,
            "l2": 5e-3,
            "bias_l2": 0.0,
            "init_std": 0.01,
            "optimizer": "adam",
            "lr": 2e-3,
            "epochs": 200,
            "batch_size": 1024,
            "negatives": 2,
            "patience": 15,
            "lr_schedule": "constant",
            # bpr: a running mean of the weights from epoch 30 (docs/implicit.md: +0.0026
            # validation NDCG@10 over seeds 0-2 on ML-100K, better on each)
            **({"average_from": 30} if loss == "bpr" else {}),
        }
        for loss in ("bpr", "bce")
    }
    #: options only the MAP estimator uses (besides the trainer's): setting one picks it
    MAP_FIELDS: ClassVar[frozenset[str]] = frozenset({"l2", "reg_exponent", "bias_l2"})
    #: defaults under estimator=gibbs (docs/defaults.md: 64 factors were no better than 32)
    GIBBS_DEFAULTS: ClassVar[dict[str, Any]] = {"factors": 32}

    @model_validator(mode="after")
    def _pick_estimator(self) -> BiasedMFConfig:
        resolve_estimator(self, self.MAP_FIELDS, self.GIBBS_DEFAULTS, implicit=self.implicit)
        return self


def _fold_in_prior(rows: Mapping[str, torch.Tensor], train: Interactions, mu: float) -> dict:
    """What a new user's row is folded in under, after Gibbs sampling: the spread of the
    training users' rows [a_u, p_u] (a Normal prior per coordinate) and the residual variance."""
    rows = {k: v.detach().cpu() for k, v in rows.items()}
    user_rows = torch.cat([rows["user_bias"], rows["P"]], 1).double()
    u = torch.from_numpy(train.users.astype(np.int64))
    i = torch.from_numpy(train.items.astype(np.int64))
    pred = (
        mu
        + rows["user_bias"][u, 0].double()
        + rows["item_bias"][i, 0].double()
        + (rows["P"][u].double() * rows["Q"][i].double()).sum(1)
    )
    noise = float((torch.from_numpy(train.ratings.astype(np.float64)) - pred).square().mean())
    return {
        "mean": user_rows.mean(0).tolist(),
        "var": user_rows.var(0).clamp_min(1e-6).tolist(),
        "noise": max(noise, 1e-6),
    }


def _mse_terms(
    p: torch.Tensor,
    q: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    r: torch.Tensor,
    mu: float,
    wu: torch.Tensor,
    wi: torch.Tensor,
    bias_l2: float,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The regularised squared error of a batch and its gradients w.r.t. ``p, q, a, b``.

    ``wu``/``wi`` are the per-row L2 weights of each sample's user and item (λ times a
    frequency factor). Written out by hand: autograd through the dozen small ops of the plain
    expression costs more than the arithmetic (a test checks value and gradients against it).
    """
    n = r.shape[0]
    err = torch.linalg.vecdot(p, q).add_(a).add_(b).add_(mu).sub_(r)
    loss = (
        torch.dot(err, err)
        + torch.dot(wu, torch.linalg.vecdot(p, p))
        + torch.dot(wi, torch.linalg.vecdot(q, q))
        + bias_l2 * (torch.dot(a, a) + torch.dot(b, b))
    ) / n
    e = err.mul_(2.0 / n)
    col = e.unsqueeze(1)
    gp = torch.addcmul(p * wu.mul(2.0 / n).unsqueeze(1), q, col)
    gq = torch.addcmul(q * wi.mul(2.0 / n).unsqueeze(1), p, col)
    ga = torch.add(e, a, alpha=2.0 * bias_l2 / n)
    gb = torch.add(e, b, alpha=2.0 * bias_l2 / n)
    return loss, (gp, gq, ga, gb)


def _mse_terms_compiled(
    tables: tuple[torch.Tensor, ...],
    users: torch.Tensor,
    items: torch.Tensor,
    ratings: torch.Tensor,
    mu: float,
    wu: torch.Tensor,
    wi: torch.Tensor,
    bias_l2: float,
    buffers: tuple[torch.Tensor, ...],
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """:func:`_mse_terms` for float32 CPU tables, in one compiled pass over the batch
    (``wu``/``wi`` here are the per-row weights of the whole user and item tables); the
    gradients are written to the first rows of ``buffers``."""
    from neuralrec.training import kernels

    grads = tuple(b[: len(ratings)] for b in buffers)
    loss = kernels.mf_mse_grads(
        *(t.detach().numpy() for t in tables),
        wu.numpy(),
        wi.numpy(),
        users.numpy(),
        items.numpy(),
        ratings.float().numpy(),
        mu,
        bias_l2,
        *(g.numpy() for g in grads),
    )
    return torch.tensor(loss), grads


class _FusedMSE(torch.autograd.Function):
    """:func:`_mse_terms` as one autograd node (the data-parallel path, whose gradient
    all-reduce hooks need a graph)."""

    @staticmethod
    def forward(ctx: Any, *args: Any) -> torch.Tensor:
        loss, grads = _mse_terms(*args)
        ctx.save_for_backward(*grads)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        return (*(g * grad_out for g in ctx.saved_tensors), *([None] * 5))


class MFModule(nn.Module):
    """Factor and bias tables; sparse gradients so only touched rows are updated."""

    def __init__(
        self, n_users: int, n_items: int, factors: int, init_std: float, mu: float
    ) -> None:
        super().__init__()
        self.P = nn.Embedding(n_users, factors, sparse=True)
        self.Q = nn.Embedding(n_items, factors, sparse=True)
        self.user_bias = nn.Embedding(n_users, 1, sparse=True)
        self.item_bias = nn.Embedding(n_items, 1, sparse=True)
        nn.init.normal_(self.P.weight, 0.0, init_std)
        nn.init.normal_(self.Q.weight, 0.0, init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.register_buffer("mu", torch.tensor(float(mu)))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.P(users) * self.Q(items)).sum(-1)
        return self.mu + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1) + dot

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for ``users``: one matrix product."""
        base = self.mu + self.user_bias(users)
        return torch.addmm(base + self.item_bias.weight.T, self.P(users), self.Q.weight.T)


@register
class BiasedMF(TorchRecommender):
    """Biased matrix factorisation (LFM) for rating prediction."""

    name = "biased-mf"
    Config = BiasedMFConfig
    cpu_kernels: ClassVar[bool] = True
    search_space: ClassVar[dict[str, tuple]] = {
        "factors": ("int", 16, 256, True),
        "l2": ("float", 0.05, 5.0, True),
        "bias_l2": ("float", 1e-3, 0.1, True),
        "lr": ("float", 5e-4, 1e-2, True),
        "reg_exponent": ("float", 0.25, 1.0, False),
    }
    config: BiasedMFConfig

    def __init__(self, config: BiasedMFConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        # a rating model with mse, a ranking model with an implicit loss
        self.task = "ranking" if self.config.implicit else "rating"  # type: ignore[misc]

    def _fit(
        self,
        train: Interactions,
        valid: Interactions | None,
        *,
        dataset: Any,
        checkpoint_dir: Any,
        quiet: bool,
    ) -> None:
        cfg = self.config
        if cfg.estimator == "map":
            super()._fit(train, valid, dataset=dataset, checkpoint_dir=checkpoint_dir, quiet=quiet)
            return
        if cfg.implicit or train.ratings is None:
            raise ConfigError("biased-mf: estimator=gibbs needs loss=mse and explicit ratings")
        refuse_data_parallel(self)
        self._fit_gibbs(train, valid, dataset, checkpoint_dir)

    def _fit_gibbs(
        self,
        train: Interactions,
        valid: Interactions | None,
        dataset: Any,
        checkpoint_dir: Any = None,
    ) -> None:
        """Gibbs sampling instead of the trainer; the module ends with the posterior mean of
        the rows. With ``checkpoint_dir`` the sampler's state is saved after every sweep and
        a rerun into the same directory continues the chain from there."""
        from neuralrec.models._gibbs import gibbs_mf

        cfg = self.config
        set_threads(cfg.threads)
        self.meta_ = self._module_meta(train, dataset)
        self.module_ = self._build_module(self.meta_).to(self.device)
        validate = self._validator(train, valid) if valid is not None and len(valid) else None
        history: list[dict[str, Any]] = []
        start = time.perf_counter()
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT_NAME
        expected = state_fingerprint(
            "gibbs", cfg.model_dump(mode="json"), train.n_users, train.n_items, len(train)
        )
        resume = None
        if ckpt is not None and ckpt.exists():
            saved = load_matching_checkpoint(ckpt, expected)
            resume, history = saved["sampler"], saved["history"]
            start -= history[-1]["seconds"] if history else 0.0

        def on_state(state: dict[str, Any]) -> None:
            if ckpt is not None:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                save_checkpoint(
                    ckpt, {"fingerprint": expected, "sampler": state, "history": history}
                )

        def on_sweep(sweep: int, rows: dict[str, torch.Tensor]) -> None:
            record: dict[str, Any] = {"epoch": sweep, "averaged": max(sweep - cfg.burn_in, 0)}
            if validate is not None:
                self._load_rows(rows)
                record.update({k: float(v) for k, v in validate().items()})
            record["seconds"] = time.perf_counter() - start
            history.append(record)
            if self._epoch_callback is not None:
                self._epoch_callback(record)

        rows = gibbs_mf(
            train.users,
            train.items,
            train.ratings,
            train.n_users,
            train.n_items,
            factors=cfg.factors,
            mu=float(self.meta_["mu"]),
            samples=cfg.samples,
            burn_in=min(cfg.burn_in, cfg.samples - 1),
            init_std=cfg.init_std,
            seed=cfg.seed,
            device=self.device,
            on_sweep=on_sweep,
            resume=resume,
            on_state=on_state,
        )
        self._load_rows(rows)
        self.meta_["fold_in"] = _fold_in_prior(rows, train, float(self.meta_["mu"]))
        self.history_ = history
        self.module_.eval()

    @torch.no_grad()
    def _load_rows(self, rows: Mapping[str, torch.Tensor]) -> None:
        m = self.module_
        for name, table in (
            ("P", m.P),
            ("Q", m.Q),
            ("user_bias", m.user_bias),
            ("item_bias", m.item_bias),
        ):
            table.weight.copy_(rows[name])

    def _module_meta(self, train: Interactions, dataset: Any) -> dict[str, Any]:
        mu = 0.0 if self.config.implicit else self.global_mean_
        return {"n_users": train.n_users, "n_items": train.n_items, "mu": mu}

    def _build_module(self, meta: Mapping[str, Any]) -> nn.Module:
        cfg = self.config
        return MFModule(meta["n_users"], meta["n_items"], cfg.factors, cfg.init_std, meta["mu"])

    def _prepare(self, train: Interactions, dataset: Any) -> None:
        # per-occurrence weight λ·n^(α-1), so a row seen n times is penalised λ·n^α per epoch
        cfg = self.config
        nu = np.maximum(train.user_counts(), 1).astype(np.float64)
        ni = np.maximum(train.item_counts(), 1).astype(np.float64)
        self._row_l2 = (
            torch.tensor(
                cfg.l2 * nu ** (cfg.reg_exponent - 1), dtype=torch.float32, device=self.device
            ),
            torch.tensor(
                cfg.l2 * ni ** (cfg.reg_exponent - 1), dtype=torch.float32, device=self.device
            ),
        )

    def _batches(self, train: Interactions) -> BatchSource:
        if self.config.implicit:
            return implicit_batches(train, self.config, self.device)
        if train.ratings is None:
            raise ValueError("biased-mf with loss=mse needs explicit ratings")
        dev = self.device
        tensors = [torch.from_numpy(x.astype(np.int64)).to(dev) for x in (train.users, train.items)]
        tensors.append(torch.tensor(train.ratings, device=dev))
        return TensorBatches(tensors, batch_size=self.config.batch_size)

    def _loss(self, batch: Batch) -> torch.Tensor | GradientsSet:
        if self.config.implicit:
            return self._implicit_loss(*batch)
        users, items, ratings = batch
        m = self.module_
        mu, bias_l2 = float(m.mu), self.config.bias_l2
        tables = (m.P.weight, m.Q.weight, m.user_bias.weight, m.item_bias.weight)
        index = (users, items, users, items)
        row_l2 = self._row_l2
        if dist.is_available() and dist.is_initialized():
            embeddings = (m.P, m.Q, m.user_bias, m.item_bias)
            p, q, a, b = (e(i) for e, i in zip(embeddings, index, strict=True))
            wu, wi = self._batch_l2(users, items)
            return _FusedMSE.apply(p, q, a.squeeze(-1), b.squeeze(-1), ratings, mu, wu, wi, bias_l2)
        # one process: write the sparse gradients directly, skipping the autograd graph
        with torch.no_grad():
            if self.device.type == "cpu" and m.P.weight.dtype == torch.float32:
                loss, grads = _mse_terms_compiled(
                    tables, *batch, mu, *row_l2, bias_l2, self._grad_buffers(len(ratings))
                )
            else:
                p, q, a, b = (t.index_select(0, i) for t, i in zip(tables, index, strict=True))
                wu, wi = self._batch_l2(users, items)
                loss, grads = _mse_terms(
                    p, q, a.squeeze(-1), b.squeeze(-1), ratings, mu, wu, wi, bias_l2
                )
            for t, i, g in zip(tables, index, grads, strict=True):
                t.grad = torch.sparse_coo_tensor(
                    i.unsqueeze(0), g.view(len(i), -1), t.shape, check_invariants=False
                )
        return GradientsSet(loss)

    @torch.no_grad()
    def _batch_l2(
        self, users: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample L2 weights of the batch's users and items (the compiled pass reads the
        whole tables instead)."""
        return self._row_l2[0].index_select(0, users), self._row_l2[1].index_select(0, items)

    def _grad_buffers(self, n: int) -> tuple[torch.Tensor, ...]:
        # reused every step: a fresh megabyte-sized allocation per step costs page faults
        bufs = getattr(self, "_grad_bufs", None)
        if bufs is None or len(bufs[0]) < n:
            k = self.config.factors
            bufs = (torch.empty(n, k), torch.empty(n, k), torch.empty(n, 1), torch.empty(n, 1))
            self._grad_bufs = bufs
        return bufs

    def _implicit_loss(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> torch.Tensor:
        """bpr/bce on b_i + p_uᵀq_i for the positive and its negatives, plus L2 on used rows."""
        m = self.module_
        cfg = self.config
        items = torch.cat([pos.unsqueeze(1), neg], dim=1)
        p = m.P(users)
        q = m.Q(items)
        b = m.item_bias(items).squeeze(-1)
        scores = torch.bmm(q, p.unsqueeze(2)).squeeze(2) + b
        reg = cfg.l2 * (p.square().sum() + q.square().sum()) + cfg.bias_l2 * b.square().sum()
        return implicit_loss(cfg.loss, scores[:, 0], scores[:, 1:]) + reg / len(users)

    @torch.no_grad()
    def predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self.device)
        i = torch.as_tensor(np.asarray(items, dtype=np.int64), device=self.device)
        return self.module_(u, i).float().cpu().numpy()

    def item_vectors(self) -> np.ndarray:
        return self.module_.Q.weight.detach().cpu().numpy()

    def fallback_predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        m = self.module_
        out = np.full(len(users), self.global_mean_, dtype=np.float32)
        ku = (users >= 0) & (self.user_counts_[np.maximum(users, 0)] > 0)
        ki = (items >= 0) & (self.item_popularity_[np.maximum(items, 0)] > 0)
        out[ku] += m.user_bias.weight.detach().cpu().numpy()[users[ku], 0]
        out[ki] += m.item_bias.weight.detach().cpu().numpy()[items[ki], 0]
        return out

    @torch.no_grad()
    def score_history(self, items: np.ndarray, ratings: np.ndarray | None = None) -> torch.Tensor:
        """Fold-in: the ridge least-squares user vector and bias for the given ratings
        (implicit losses: the row minimising the training objective, :mod:`._fold_in`)."""
        m, cfg = self.module_, self.config
        if cfg.implicit:
            visitor = implicit_visitor(self, items, ratings)
            if visitor is None:
                return super().score_history(items, ratings)
            pos, weights = visitor
            q, b = m.Q.weight.detach(), m.item_bias.weight.detach()[:, 0]
            user = fit_row(
                lambda row: b + (row @ q.T)[0],
                mean_user_row(self, m.P.weight.detach()),
                pos,
                loss=cfg.loss,
                l2=cfg.l2,
                negatives=cfg.negatives,
                neg_weights=weights,
            )
            return (b + q @ user).float().cpu()
        q = m.Q.weight.detach().cpu().double()
        ib = m.item_bias.weight.detach().cpu().double()[:, 0]
        mu = float(m.mu)
        if ratings is None:  # liked items without ratings: as if rated a notch above the mean
            ratings = np.full(len(items), min(mu + 1.0, 5.0))
        idx = torch.from_numpy(np.asarray(items, dtype=np.int64))
        y = torch.from_numpy(np.asarray(ratings, dtype=np.float64)) - mu - ib[idx]
        prior = self.meta_.get("fold_in")
        if prior is not None:  # Gibbs: the posterior mean under the users' fitted prior
            # rows are [a_u, p_u]; the penalties are the prior's precisions over the noise's
            mean = torch.tensor(prior["mean"], dtype=torch.float64)
            pen = prior["noise"] / torch.tensor(prior["var"], dtype=torch.float64)
            w, a = ridge_fold_in(q[idx], y, pen[1:], float(pen[0]), (mean[1:], float(mean[0])))
        else:
            n = len(idx)
            w, a = ridge_fold_in(
                q[idx], y, max(self.config.l2, 1e-3) * n, max(self.config.bias_l2, 1e-3) * n
            )
        return (mu + a + ib + q @ w).float()
