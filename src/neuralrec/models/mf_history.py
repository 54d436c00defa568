"""MF with history: the user vector is a pooled embedding of the items the user rated.

r̂_ui = μ + c_u + b_i + p_uᵀq_i with p_u = pool_j∈H(u)∖{i} (w_uj · y_j) and c_u the same
pooling of per-item history biases, where pool is sum, mean or sqrtN (Σ w_j y_j / √Σ w_j²;
Koren 2008's asymmetric-SVD normalisation, which the lectures found best). The candidate item is
left out of its own history during training, so the model learns to score items a user has not
yet rated. No user-id parameter exists: a user who arrives after training is scored from their
history alone, without retraining.

Two estimators, as for biased-mf (``estimator``, ``auto`` picks): ``map`` trains the above with
the trainer; ``gibbs`` (the default for ratings) samples Bayesian biased MF and then fits the
history rows so that each training user's pooled history reproduces their sampled user row
(ridge, ``history_l2``; docs/defaults.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg
import torch
from pydantic import Field, model_validator
from torch import nn

from neuralrec.data.interactions import Interactions
from neuralrec.errors import ConfigError
from neuralrec.models._gibbs import ESTIMATOR_HELP, refuse_data_parallel, resolve_estimator
from neuralrec.models._sparse_ops import _csr
from neuralrec.models.registry import register
from neuralrec.models.torch_base import TorchRecommender
from neuralrec.training.batches import Batch, epoch_generator
from neuralrec.training.config import LRSchedule, TrainConfig

#: above this many items the history rows are solved by conjugate gradients, not densely
DENSE_SOLVE_ITEMS = 20_000


class MFHistoryConfig(TrainConfig):
    """Hyperparameters of :class:`MFHistory` (defaults: docs/defaults.md)."""

    factors: int = Field(128, ge=1)
    pooling: Literal["sum", "mean", "sqrtn"] = "sqrtn"
    weights: Literal["ones", "centered"] = Field(
        "centered", description="history weights w_uj: 1, or the rating minus the training mean"
    )
    l2: float = Field(
        0.2, ge=0, description="λ on the item rows a batch uses (q_i and the y_j pooled)"
    )
    bias_l2: float = Field(0.005, ge=0)
    init_std: float = Field(0.01, gt=0)
    epochs: int = 40
    batch_size: int = 1024
    optimizer: str = "adam"
    lr: float = 0.002
    lr_schedule: LRSchedule = "cosine"
    monitor: str = "rmse"
    patience: int = 5
    estimator: Literal["auto", "map", "gibbs"] = Field("auto", description=ESTIMATOR_HELP)
    samples: int = Field(100, ge=1, description="estimator=gibbs: sweeps of the sampler")
    burn_in: int = Field(
        20, ge=0, description="estimator=gibbs: first sweeps left out of the posterior mean"
    )
    history_l2: float = Field(
        0.1,
        gt=0,
        description="estimator=gibbs: ridge λ of the history rows fitted to the sampled user "
        "rows (small: training users as the factor model scores them; larger: better for "
        "users who arrive later)",
    )

    MAP_FIELDS: ClassVar[frozenset[str]] = frozenset({"l2", "bias_l2"})
    GIBBS_DEFAULTS: ClassVar[dict[str, Any]] = {"factors": 32}

    @model_validator(mode="after")
    def _pick_estimator(self) -> MFHistoryConfig:
        resolve_estimator(self, self.MAP_FIELDS, self.GIBBS_DEFAULTS, implicit=False)
        return self


class HistoryModule(nn.Module):
    """Target-item factors q and biases b; history factors y and history biases c."""

    def __init__(self, n_items: int, factors: int, init_std: float, mu: float) -> None:
        super().__init__()
        self.Q = nn.Embedding(n_items, factors, sparse=True)
        self.Y = nn.Embedding(n_items, factors, sparse=True)
        self.item_bias = nn.Embedding(n_items, 1, sparse=True)
        self.hist_bias = nn.Embedding(n_items, 1, sparse=True)
        for e in (self.Q, self.Y):
            nn.init.normal_(e.weight, 0.0, init_std)
        nn.init.zeros_(self.item_bias.weight)
        nn.init.zeros_(self.hist_bias.weight)
        self.register_buffer("mu", torch.tensor(float(mu)))


def pool_norm(pooling: str, count: torch.Tensor, sq_weight: torch.Tensor) -> torch.Tensor:
    """Divisor of the weighted history sum: 1 (sum), n (mean) or √Σw² (sqrtN); 0-safe."""
    if pooling == "sum":
        return torch.ones_like(count)
    denom = count if pooling == "mean" else sq_weight.clamp_min(0).sqrt()
    return torch.where(denom > 1e-12, denom, torch.ones_like(denom))


class _UserBlocks:
    """Batches made of whole users: each user's training rows land in one batch, so the batch
    itself holds every history it needs. User order is reshuffled every epoch."""

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        ratings: np.ndarray,
        weights: np.ndarray,
        n_users: int,
        batch_size: int,
        device: torch.device | str = "cpu",
    ) -> None:
        order = np.argsort(users, kind="stable")
        self.device = torch.device(device)
        self.items = torch.from_numpy(items[order].astype(np.int64)).to(self.device)
        self.ratings = torch.from_numpy(ratings[order].astype(np.float32)).to(self.device)
        self.weights = torch.from_numpy(weights[order].astype(np.float32)).to(self.device)
        counts = np.bincount(users, minlength=n_users)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.counts = counts
        self.present = np.flatnonzero(counts)
        self.batch_size = batch_size

    def num_batches(self, world_size: int = 1) -> int:
        return max(1, -(-int(self.counts.sum()) // (self.batch_size * world_size)))

    def epoch(self, epoch: int, seed: int, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        gen = epoch_generator(seed, epoch)
        perm = self.present[torch.randperm(len(self.present), generator=gen).numpy()]
        perm = perm[rank::world_size]
        sizes = self.counts[perm]
        ends = np.cumsum(sizes)
        cut = 0
        while cut < len(perm):
            # take users until the batch holds batch_size rows (at least one user)
            stop = int(
                np.searchsorted(ends, (ends[cut - 1] if cut else 0) + self.batch_size, side="right")
            )
            stop = max(stop, cut + 1)
            block = perm[cut:stop]
            cut = stop
            lens = self.counts[block]
            rows = np.repeat(
                self.starts[block] - np.cumsum(np.concatenate([[0], lens[:-1]])), lens
            ) + np.arange(lens.sum())
            rows_t = torch.from_numpy(rows).to(self.device)
            seg = torch.from_numpy(np.repeat(np.arange(len(block)), lens)).to(self.device)
            yield (
                self.items[rows_t],
                self.ratings[rows_t],
                self.weights[rows_t],
                seg,
                torch.tensor(len(block)),
            )


@register
class MFHistory(TorchRecommender):
    """MF whose user vectors are pooled from the items each user rated."""

    name = "mf-history"
    Config = MFHistoryConfig
    search_space: ClassVar[dict[str, tuple]] = {
        "factors": ("int", 16, 256, True),
        "l2": ("float", 0.02, 1.0, True),
        "bias_l2": ("float", 1e-3, 0.1, True),
        "lr": ("float", 5e-4, 1e-2, True),
        "weights": ("cat", ["ones", "centered"]),
    }

    def _module_meta(self, train: Interactions, dataset: Any) -> dict[str, Any]:
        return {"n_items": train.n_items, "mu": self.global_mean_}

    def _build_module(self, meta: Mapping[str, Any]) -> nn.Module:
        cfg = self.config
        return HistoryModule(meta["n_items"], cfg.factors, cfg.init_std, meta["mu"])

    def _weights(self, ratings: np.ndarray | None, n: int) -> np.ndarray:
        if self.config.weights == "centered" and ratings is not None:
            return (np.asarray(ratings, dtype=np.float32) - self.global_mean_).astype(np.float32)
        return np.ones(n, dtype=np.float32)

    def _prepare(self, train: Interactions, dataset: Any) -> None:
        if train.ratings is None:
            raise ValueError("mf-history needs explicit ratings")
        w = self._weights(train.ratings, len(train))
        self.history_ = []
        self._hist = sp.csr_matrix(
            (w, (train.users, train.items)), shape=train.shape, dtype=np.float32
        )
        self._hist.sort_indices()
        self._train = train

    def _batches(self, train: Interactions) -> _UserBlocks:
        w = self._weights(train.ratings, len(train))
        return _UserBlocks(
            train.users,
            train.items,
            train.ratings,
            w,
            train.n_users,
            self.config.batch_size,
            self.device,
        )

    def _loss(self, batch: Batch) -> torch.Tensor:
        items, ratings, w, seg, n_users = batch
        m, cfg = self.module_, self.config
        self._user_cache = None  # weights are about to change
        n = int(n_users)
        y = m.Y(items)
        c = m.hist_bias(items).squeeze(-1)
        q = m.Q(items)
        b = m.item_bias(items).squeeze(-1)
        wy = w.unsqueeze(1) * y
        wc = w * c
        dev = y.device
        sums = torch.zeros(n, y.shape[1], device=dev).index_add(0, seg, wy)
        bsum = torch.zeros(n, device=dev).index_add(0, seg, wc)
        cnt = torch.zeros(n, device=dev).index_add(0, seg, torch.ones_like(w))
        sq = torch.zeros(n, device=dev).index_add(0, seg, w * w)
        # leave the candidate item out of its own history
        norm = pool_norm(cfg.pooling, cnt[seg] - 1, sq[seg] - w * w).unsqueeze(1)
        p = (sums[seg] - wy) / norm
        hb = (bsum[seg] - wc) / norm.squeeze(1)
        pred = m.mu + hb + b + (p * q).sum(1)
        rows = ratings.shape[0]
        reg = cfg.l2 * (q.square().sum() + y.square().sum()) + cfg.bias_l2 * (
            b.square().sum() + c.square().sum()
        )
        return ((pred - ratings).square().sum() + reg) / rows

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def _pool(self, hist: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled vectors and history biases for rows of a (users x items) weight matrix."""
        m, dev = self.module_, self.device
        mat = _csr(  # scipy built a valid CSR: no invariant checks
            torch.from_numpy(hist.indptr.astype(np.int64)).to(dev),
            torch.from_numpy(hist.indices.astype(np.int64)).to(dev),
            torch.from_numpy(hist.data.astype(np.float32)).to(dev),
            hist.shape,
        )
        vec = mat @ m.Y.weight
        hb = (mat @ m.hist_bias.weight).squeeze(1)
        norm = self._pool_divisor(hist).to(dev)
        return vec / norm.unsqueeze(1), hb / norm

    def _pool_divisor(self, hist: sp.csr_matrix) -> torch.Tensor:
        """Per row of a (users x items) weight matrix, what its weighted sum is divided by."""
        cnt = torch.from_numpy(np.diff(hist.indptr).astype(np.float32))
        sq = torch.from_numpy(
            np.asarray(hist.multiply(hist).sum(axis=1)).ravel().astype(np.float32)
        )
        return pool_norm(self.config.pooling, cnt, sq)

    def _user_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        cached = getattr(self, "_user_cache", None)
        if cached is None:
            cached = self._pool(self._hist)
            self._user_cache = cached
        return cached

    def _fit(
        self,
        train: Interactions,
        valid: Interactions | None,
        *,
        dataset: Any,
        checkpoint_dir: Any,
        quiet: bool,
    ) -> None:
        self._user_cache = None
        if self.config.estimator == "gibbs":
            self._fit_gibbs(train, valid, dataset, checkpoint_dir, quiet)
        else:
            super()._fit(train, valid, dataset=dataset, checkpoint_dir=checkpoint_dir, quiet=quiet)
        self._user_cache = None

    def _fit_gibbs(
        self,
        train: Interactions,
        valid: Interactions | None,
        dataset: Any,
        checkpoint_dir: Any,
        quiet: bool,
    ) -> None:
        """Bayesian biased MF by Gibbs sampling (biased-mf's sampler, checkpoints included),
        then the history rows: the ridge solution of pool(history) ≈ [p_u, a_u] over the
        training users, so a training user's pooled history stands in for their sampled user
        row and a new user's history maps to one the same way."""
        from neuralrec.models.mf import BiasedMF

        cfg = self.config
        if train.ratings is None:
            raise ConfigError("mf-history needs explicit ratings")
        refuse_data_parallel(self)
        factor_model = BiasedMF(
            estimator="gibbs",
            factors=cfg.factors,
            samples=cfg.samples,
            burn_in=cfg.burn_in,
            init_std=cfg.init_std,
            seed=cfg.seed,
            threads=cfg.threads,
            device=cfg.device,
        )
        factor_model.fit(
            train,
            valid,
            checkpoint_dir=checkpoint_dir,
            quiet=quiet,
            on_epoch_end=self._epoch_callback,
        )
        self.meta_ = self._module_meta(train, dataset)
        self.module_ = self._build_module(self.meta_).to(self.device)
        self._prepare(train, dataset)
        rows = factor_model.module_
        y, c = self._history_rows(rows.P.weight, rows.user_bias.weight)
        with torch.no_grad():
            m = self.module_
            m.Q.weight.copy_(rows.Q.weight)
            m.item_bias.weight.copy_(rows.item_bias.weight)
            m.Y.weight.copy_(y)
            m.hist_bias.weight.copy_(c)
        self.module_.eval()
        # the sweeps' records validate the factor model; the last one this model
        self.history_ = [{**r, "stage": "gibbs"} for r in factor_model.history_]
        if valid is not None and len(valid):
            record = {"epoch": len(self.history_) + 1, "stage": "history rows"}
            record.update(self._validator(train, valid)())
            self.history_.append(record)

    def _history_rows(
        self, user_rows: torch.Tensor, user_bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """argmin_Y ‖A Y − [P, a]‖² + λ‖Y‖², A the pooling matrix of the training histories."""
        hist, lam = self._hist, self.config.history_l2
        # the same divisor scoring pools with, so A Y is what _pool computes
        norm = self._pool_divisor(hist).double().numpy()
        a = (sp.diags(1.0 / norm) @ hist.astype(np.float64)).tocsr()
        target = torch.cat([user_rows, user_bias], 1).detach().cpu().double().numpy()
        rhs = np.asarray(a.T @ target)
        n_items = hist.shape[1]
        if n_items <= DENSE_SOLVE_ITEMS:
            gram = (a.T @ a).toarray()
            gram[np.diag_indices_from(gram)] += lam
            y = scipy.linalg.solve(gram, rhs, assume_a="pos")
        else:  # conjugate gradients on the normal equations, never forming AᵀA
            op = scipy.sparse.linalg.LinearOperator(
                (n_items, n_items), matvec=lambda v: a.T @ (a @ v) + lam * v, dtype=np.float64
            )
            y = np.stack(
                [scipy.sparse.linalg.cg(op, rhs[:, j], rtol=1e-8)[0] for j in range(rhs.shape[1])],
                axis=1,
            )
        y = torch.from_numpy(y.astype(np.float32))
        return y[:, :-1], y[:, -1:]

    @torch.no_grad()
    def score_users(self, users: np.ndarray) -> torch.Tensor:
        vec, hb = self._user_state()
        idx = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self.device)
        m = self.module_
        return torch.addmm(
            (m.mu + hb[idx]).unsqueeze(1) + m.item_bias.weight.T, vec[idx], m.Q.weight.T
        ).cpu()

    @torch.no_grad()
    def predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        vec, hb = self._user_state()
        u = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self.device)
        i = torch.as_tensor(np.asarray(items, dtype=np.int64), device=self.device)
        m = self.module_
        pred = m.mu + hb[u] + m.item_bias.weight[i, 0] + (vec[u] * m.Q.weight[i]).sum(1)
        return pred.cpu().numpy()

    @torch.no_grad()
    def score_history(self, items: np.ndarray, ratings: np.ndarray | None = None) -> torch.Tensor:
        """Scores for a user known only by ``items`` (and optionally their ratings): no retraining."""
        items = np.asarray(items, dtype=np.int64)
        w = (
            self._weights(ratings, len(items))
            if ratings is not None
            else np.ones(len(items), np.float32)
        )
        row = sp.csr_matrix(
            (w, (np.zeros(len(items), dtype=np.int64), items)), shape=(1, self.n_items)
        )
        vec, hb = self._pool(row)
        m = self.module_
        return (m.mu + hb[0] + m.item_bias.weight[:, 0] + m.Q.weight @ vec[0]).float().cpu()

    def item_vectors(self) -> np.ndarray:
        return self.module_.Q.weight.detach().cpu().numpy()

    def fallback_predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        b = self.module_.item_bias.weight.detach().cpu().numpy()[:, 0]
        out = np.full(len(users), self.global_mean_, dtype=np.float32)
        known = (items >= 0) & (self.item_popularity_[np.maximum(items, 0)] > 0)
        out[known] += b[items[known]]
        return out

    # ------------------------------------------------------------------ persistence
    def _extra_tensors(self) -> dict[str, torch.Tensor]:
        h = self._hist
        return {
            "hist.indptr": torch.from_numpy(h.indptr.astype(np.int64)),
            "hist.indices": torch.from_numpy(h.indices.astype(np.int64)),
            "hist.data": torch.from_numpy(h.data.astype(np.float32)),
        }

    def _load_extra(self, tensors: dict[str, torch.Tensor]) -> None:
        self._hist = sp.csr_matrix(
            (
                tensors["hist.data"].numpy(),
                tensors["hist.indices"].numpy(),
                tensors["hist.indptr"].numpy(),
            ),
            shape=(len(self.user_ids_), len(self.item_ids_)),
        )
        self._user_cache = None
