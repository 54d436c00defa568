"""Gibbs sampling of biased matrix factorisation (Bayesian PMF with biases).

r_ui ~ N(μ + a_u + b_i + p_uᵀq_i, 1/τ); each user row [a_u, p_u] and item row [b_i, q_i] has a
Gaussian prior whose per-coordinate mean and precision carry Normal-Gamma hyperpriors, and τ a
Gamma prior, as in Salakhutdinov & Mnih, "Bayesian Probabilistic Matrix Factorization using
MCMC" (ICML 2008, with diagonal prior precisions) and libFM's MCMC (Rendle 2013). A sweep draws
the hyperparameters, τ, every user row given the items, then every item row given the users;
the rows of one side are conditionally independent, so they are drawn together: their precision
matrices come from one sparse product with the other side's outer products, then one batched
Cholesky.

The estimate is the mean of the rows drawn after the burn-in: Rendle et al., "On the Difficulty
of Evaluating Baselines" (2019), show that this averaging, not the model, is what makes such
factorisations strong. (A posterior in one mode hardly rotates its factors within a few hundred
sweeps, so the mean of the rows predicts as well as the mean of the predictions.)
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from neuralrec.errors import ConfigError
from neuralrec.models._sparse_ops import _csr
from neuralrec.training.config import TrainConfig

#: rows of one side whose precision matrices are formed and factorised at once
CHUNK_ROWS = 4096


@dataclass
class _Side:
    """The ratings of one side's rows as sparse (rows x other side) matrices."""

    ones: torch.Tensor  # 1 where rated (float32: the precision matrices are summed in it)
    values: torch.Tensor  # the rating minus μ where rated


def _side(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape, dev) -> _Side:
    index = torch.from_numpy(np.stack([rows, cols]).astype(np.int64))
    v = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))

    def csr(x: torch.Tensor) -> torch.Tensor:
        return (
            torch.sparse_coo_tensor(index, x, shape, check_invariants=False)
            .coalesce()
            .to_sparse_csr()
            .to(dev)
        )

    with _quiet_csr():
        return _Side(csr(torch.ones_like(v, dtype=torch.float32)), csr(v))


@contextlib.contextmanager
def _quiet_csr() -> Iterator[None]:
    """Without torch's warning that its sparse CSR support is a beta."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
        yield


def _draw_hyper(w: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-coordinate prior mean and precision of the rows ``w`` given them (Normal-Gamma
    hyperprior with unit hyperparameters)."""
    n = w.shape[0]
    mean = w.mean(0)
    spread = (w - mean).square().sum(0) + n * mean.square() / (n + 1)
    shape = torch.full_like(mean, 1.0 + (n + 1) / 2)
    precision = _gamma(shape, 1.0 + spread / 2, gen)
    mu = n * mean / (n + 1) + torch.randn(
        mean.shape, generator=gen, dtype=w.dtype, device=w.device
    ) / torch.sqrt((n + 1) * precision)
    return mu, precision


def _gamma(shape: torch.Tensor, rate: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    # torch's gamma sampler takes no generator: draw it from numpy with a seed from ``gen``
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen, device=gen.device).item())
    draw = np.random.default_rng(seed).gamma(shape.cpu().numpy(), 1.0 / rate.cpu().numpy())
    return torch.as_tensor(draw, dtype=shape.dtype, device=shape.device)


def _draw_rows(
    side: _Side,
    other: torch.Tensor,
    tau: float,
    prior_mu: torch.Tensor,
    prior_prec: torch.Tensor,
    out: torch.Tensor,
    gen: torch.Generator,
) -> None:
    """Draw every row [bias, factors] of one side into ``out`` given the other side's rows
    ``other`` ([bias, factors]): a Bayesian ridge regression of each row's ratings minus μ and
    the other side's bias on [1, factors]."""
    n, d = out.shape
    x = torch.cat([torch.ones_like(other[:, :1]), other[:, 1:]], 1)
    # the precision matrices sum the outer products x_j x_jᵀ of the rated rows j (in float32,
    # half the time of float64; the sum is cast back before the factorisation)
    x32 = x.float()
    outer = (x32.unsqueeze(2) * x32.unsqueeze(1)).reshape(len(x), d * d)
    rhs = side.values @ x - (side.ones @ (other[:, :1] * x).float()).double()
    rhs = rhs.mul_(tau).add_(prior_prec * prior_mu)
    for start in range(0, n, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n)
        gram = (_rows_of(side.ones, start, stop) @ outer).double()
        prec = gram.view(-1, d, d).mul_(tau) + torch.diag(prior_prec)
        chol = torch.linalg.cholesky(prec)
        mean = torch.cholesky_solve(rhs[start:stop].unsqueeze(-1), chol)
        z = torch.randn(stop - start, d, 1, generator=gen, dtype=out.dtype, device=out.device)
        noise = torch.linalg.solve_triangular(chol.transpose(1, 2), z, upper=True)
        out[start:stop] = (mean + noise).squeeze(-1)


def _rows_of(m: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    if start == 0 and stop == m.shape[0]:
        return m
    crow = m.crow_indices()
    lo, hi = int(crow[start]), int(crow[stop])
    shape = (stop - start, m.shape[1])
    return _csr(crow[start : stop + 1] - lo, m.col_indices()[lo:hi], m.values()[lo:hi], shape)


@_quiet_csr()
def gibbs_mf(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    factors: int,
    mu: float,
    samples: int,
    burn_in: int,
    init_std: float,
    seed: int,
    device: torch.device,
    on_sweep: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
    resume: dict[str, Any] | None = None,
    on_state: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Mean of the draws after ``burn_in`` of ``samples`` sweeps: P, Q, user and item biases.

    ``on_state`` receives the sampler's whole state after every sweep (the current rows, the
    running sums, the generator); passing such a state back as ``resume`` continues the chain
    exactly where it was, so a killed run ends with the rows an unbroken one would have.
    """
    gen = torch.Generator(device=device).manual_seed(seed)
    dt = torch.float64
    values = ratings.astype(np.float64) - mu
    ub = _side(users, items, values, (n_users, n_items), device)
    ib = _side(items, users, values, (n_items, n_users), device)
    d = factors + 1
    # rows [bias, factors]
    w_user = torch.zeros(n_users, d, dtype=dt, device=device)
    w_item = torch.zeros(n_items, d, dtype=dt, device=device)
    w_user[:, 1:] = torch.randn(n_users, factors, generator=gen, dtype=dt, device=device)
    w_item[:, 1:] = torch.randn(n_items, factors, generator=gen, dtype=dt, device=device)
    w_user[:, 1:] *= init_std
    w_item[:, 1:] *= init_std
    u_t = torch.from_numpy(users.astype(np.int64)).to(device)
    i_t = torch.from_numpy(items.astype(np.int64)).to(device)
    r_t = torch.from_numpy(values).to(device)
    total = {k: torch.zeros_like(v) for k, v in (("user", w_user), ("item", w_item))}
    kept, done = 0, 0
    if resume is not None:
        for live, saved in (
            (w_user, resume["user"]),
            (w_item, resume["item"]),
            (total["user"], resume["total_user"]),
            (total["item"], resume["total_item"]),
        ):
            live.copy_(saved)
        gen.set_state(resume["generator"])
        kept, done = int(resume["kept"]), int(resume["sweep"])
    for sweep in range(done + 1, samples + 1):
        err = r_t - w_user[u_t, 0] - w_item[i_t, 0]
        err -= torch.linalg.vecdot(w_user[u_t, 1:], w_item[i_t, 1:])
        shape = torch.tensor(1.0 + len(values) / 2, dtype=dt)
        tau = float(_gamma(shape, 1.0 + err.square().sum().cpu() / 2, gen))
        for w, side, other in ((w_user, ub, w_item), (w_item, ib, w_user)):
            mu_w, prec_w = _draw_hyper(w, gen)
            _draw_rows(side, other, tau, mu_w, prec_w, w, gen)
        if sweep > burn_in:
            kept += 1
            total["user"] += w_user
            total["item"] += w_item
        if on_sweep is not None:
            on_sweep(sweep, _split(total, kept) if kept else _split(_rows(w_user, w_item), 1))
        if on_state is not None:
            on_state(
                {
                    "sweep": sweep,
                    "kept": kept,
                    "user": w_user,
                    "item": w_item,
                    "total_user": total["user"],
                    "total_item": total["item"],
                    "generator": gen.get_state(),
                }
            )
    return _split(total, kept) if kept else _split(_rows(w_user, w_item), 1)


def _rows(w_user: torch.Tensor, w_item: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"user": w_user, "item": w_item}


def _split(total: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    u, i = total["user"] / n, total["item"] / n
    return {"P": u[:, 1:], "Q": i[:, 1:], "user_bias": u[:, :1], "item_bias": i[:, :1]}


#: TrainConfig fields that do not steer the optimiser (seed, threads, device, amp apply to both)
_SHARED_FIELDS = frozenset({"seed", "threads", "device", "amp"})

#: the estimator choice, shared by biased-mf and mf-history's configs
ESTIMATOR_HELP = (
    "auto (default): gibbs for ratings (loss=mse) unless an option of the trainer or of the MAP "
    "objective (epochs, lr, optimizer, batch_size, l2, ...) is set, else map; map: minimise the "
    "regularised loss with the trainer; gibbs: the posterior mean of Bayesian biased MF, drawn by "
    "Gibbs sampling (the priors are learned, so the MAP objective's penalties are unused)"
)


def resolve_estimator(
    config: Any, map_fields: frozenset[str], gibbs_defaults: dict[str, Any], *, implicit: bool
) -> None:
    """Turn ``estimator="auto"`` into ``map`` or ``gibbs`` and fill the Gibbs defaults.

    Called from a config's validator: setting any MAP-only option (the trainer's, or the
    penalties listed in ``map_fields``) asks for the trainer, as does an implicit loss (no Gibbs
    sampler exists for it). Fields set this way are not marked as user-set, so ``replace()``
    resolves again.
    """
    if config.estimator == "auto":
        trainer = (set(TrainConfig.model_fields) - _SHARED_FIELDS) | map_fields
        asked = trainer & set(config.model_fields_set)
        object.__setattr__(config, "estimator", "map" if implicit or asked else "gibbs")
    if config.estimator == "gibbs":
        for key, value in gibbs_defaults.items():
            if key not in config.model_fields_set:
                object.__setattr__(config, key, value)


def refuse_data_parallel(model: Any) -> None:
    """The sampler runs in one process: a data-parallel fit must use the trainer."""
    if model.dist is not None and model.dist.world_size > 1:
        raise ConfigError(
            f"{model.name}: estimator=gibbs runs in one process; set estimator=map to train "
            "data-parallel"
        )
