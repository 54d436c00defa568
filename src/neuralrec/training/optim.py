"""Optimizers that update only the embedding rows a batch touches.

Embedding tables built with ``sparse=True`` receive sparse gradients. Stock torch optimizers
either reject them or, like ``SparseAdam``, spend most of an epoch coalescing. :class:`RowSparse`
applies SGD, momentum, Adagrad (element- or row-wise), RMSprop or Adam/AdamW to the touched rows
only ("lazy" state updates, as TensorFlow's LazyAdam and FBGEMM's row-wise Adagrad do), and the
same rules to dense gradients; tests check both against ``torch.optim``.

It deliberately does not subclass ``torch.optim.Optimizer``: that base class imports
``torch._dynamo`` on first use, which costs 1-4 s here, longer than a whole MovieLens 100K fit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralrec.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rowwise-adagrad", "rmsprop", "adam", "adamw")
#: attribute marking an embedding table whose dense gradient should still update only the rows
#: it touches (lazily, as its sparse gradient would): set by the data-parallel wrapper
LAZY_ROWS = "_neuralrec_lazy_rows"
#: update rules with a compiled loop for sparse gradients on the CPU (without weight decay)
COMPILED = ("sgd", "rowwise-adagrad", "adam", "adamw")


class RowSparse:
    """SGD-family optimizer for dense parameters and sparse (row-slice) gradients alike.

    ``kind`` is one of :data:`OPTIMIZERS`. ``weight_decay`` touches only rows in the batch:
    decoupled for ``adamw``, added to the gradient otherwise. Row-wise Adagrad keeps one
    accumulator per embedding row (its mean squared gradient): the cheapest adaptive rule for
    embedding tables; on dense parameters it is plain Adagrad.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
        kind: str,
        lr: float,
        *,
        momentum: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.999),
        alpha: float = 0.99,
        eps: float | None = None,
        weight_decay: float = 0.0,
    ) -> None:
        if kind not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {kind!r}; use one of {', '.join(OPTIMIZERS)}")
        if eps is None:
            eps = 1e-10 if "adagrad" in kind else 1e-8
        self.kind = kind
        self.defaults = dict(
            lr=lr, momentum=momentum, betas=betas, alpha=alpha, eps=eps, weight_decay=weight_decay
        )
        items = list(params)
        if not items:
            raise ConfigError("optimizer got no parameters")
        groups = items if isinstance(items[0], dict) else [{"params": items}]
        self.param_groups: list[dict[str, Any]] = [
            {**self.defaults, **g, "params": list(g["params"])} for g in groups
        ]
        self.state: dict[torch.Tensor, dict[str, Any]] = {}
        # array views and work space of the compiled loops per parameter (not optimizer state:
        # never checkpointed; dropped when the state is replaced)
        self._plans: dict[tuple[torch.Tensor, bool], tuple[int, Any]] = {}

    # ------------------------------------------------------------------ torch-like API
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients of every parameter."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-parameter state; parameters are referred to by position."""
        params = [p for g in self.param_groups for p in g["params"]]
        return {
            "state": {i: dict(self.state[p]) for i, p in enumerate(params) if p in self.state},
            "param_groups": [
                {k: v for k, v in g.items() if k != "params"} for g in self.param_groups
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (for the same parameters)."""
        if len(state["param_groups"]) != len(self.param_groups):
            raise ConfigError("optimizer state has a different number of parameter groups")
        for group, saved in zip(self.param_groups, state["param_groups"], strict=True):
            group.update({k: tuple(v) if k == "betas" else v for k, v in saved.items()})
        params = [p for g in self.param_groups for p in g["params"]]
        self._plans.clear()
        self.state = {
            params[int(i)]: {
                k: v.to(params[int(i)].device) if isinstance(v, torch.Tensor) else v
                for k, v in st.items()
            }
            for i, st in state["state"].items()
        }

    @torch.no_grad()
    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if self._compiled_step(p, grad, group):
                    continue
                if grad.is_sparse:
                    idx, g = self._rows(grad, group["weight_decay"])
                elif _lazy(p):  # a table trained with dense gradients
                    touched = grad.reshape(len(grad), -1).abs().sum(1)
                    idx = touched.nonzero().squeeze(1)
                    g = grad.index_select(0, idx)
                else:
                    idx, g = None, grad
                self._update(p, idx, g, group)

    # ------------------------------------------------------------------ update rules
    def _compiled_step(self, p: torch.Tensor, grad: torch.Tensor, group: dict) -> bool:
        """The update of a float32 CPU parameter by the compiled loops of
        :mod:`~neuralrec.training.kernels` (False: not covered, use torch). A sparse gradient
        goes in uncoalesced; a dense one as every row once (row-wise Adagrad's dense rule is
        element-wise Adagrad, which has no loop here)."""
        key = (p, grad.is_sparse)
        plan = self._plans.get(key)
        # a parameter whose storage was swapped (``p.data = ...``) needs new array views
        if plan is None or plan[0] != p.data_ptr():
            plan = self._plans[key] = (p.data_ptr(), self._plan(p, grad, group))
        prepared = plan[1]
        if prepared is None:
            return False
        kernel, rows, arrays = prepared
        if grad.is_sparse:
            rows = grad._indices()[0].numpy()
            values = grad._values()
        else:
            values = grad
        g = values.reshape(len(rows), -1).numpy()
        if not g.flags.c_contiguous:
            g = np.ascontiguousarray(g)
        lr, eps = float(group["lr"]), float(group["eps"])
        if self.kind == "sgd":
            kernel(*arrays, rows, g, lr)
        elif self.kind == "rowwise-adagrad":
            kernel(*arrays, rows, g, lr, eps)
        else:
            b1, b2 = group["betas"]
            table, m, v, steps, *work = arrays
            kernel(table, m, v, steps, rows, g, lr, b1, b2, eps, *work)
        return True

    def _plan(
        self, p: torch.Tensor, grad: torch.Tensor, group: dict
    ) -> tuple[Any, np.ndarray | None, tuple[np.ndarray, ...]] | None:
        """The kernel, the row indices of a dense gradient and the arrays (the parameter, its
        state, work space) that :meth:`_compiled_step` passes for ``p``; None when the update
        is not covered. Prepared once per parameter: the per-step cost of building these views
        was larger than the update itself for small layers."""
        if (
            self.kind not in COMPILED
            or group["weight_decay"]
            or p.device.type != "cpu"
            or p.dtype != torch.float32
            or p.dim() not in (1, 2)
            or not p.is_contiguous()
            or (not grad.is_sparse and (self.kind == "rowwise-adagrad" or _lazy(p)))
        ):
            return None
        from neuralrec.training import kernels  # numba: imported (and compiled) on first use

        n_rows = p.shape[0]
        rows = None if grad.is_sparse else np.arange(n_rows, dtype=np.int64)
        table = p.detach().view(n_rows, -1).numpy()
        state = self.state.setdefault(p, {})
        if self.kind == "sgd":
            return kernels.sgd_rows, rows, (table,)
        if self.kind == "rowwise-adagrad":
            acc = state.setdefault("row_sum", torch.zeros(n_rows, dtype=p.dtype))
            return kernels.rowwise_adagrad_rows, rows, (table, acc.numpy())
        m, v = (_slot(state, name, p).view(n_rows, -1) for name in ("exp_avg", "exp_avg_sq"))
        steps = state.setdefault("row_step", torch.zeros(n_rows, dtype=p.dtype))
        # a batch touches at most every row once after summing: work space for n_rows rows
        work = (
            np.full(n_rows, -1, dtype=np.int64),
            np.empty((n_rows, table.shape[1]), dtype=np.float32),
            np.empty(n_rows, dtype=np.int64),
        )
        return kernels.adam_rows, rows, (table, m.numpy(), v.numpy(), steps.numpy(), *work)

    def _rows(self, grad: torch.Tensor, weight_decay: float) -> tuple[torch.Tensor, torch.Tensor]:
        # Plain SGD is exact on uncoalesced rows (duplicates just add) and row-wise Adagrad treats
        # each occurrence as one sample; skipping the coalesce is the main saving. Element-wise
        # state, and weight decay (once per row per step), need unique rows.
        if self.kind == "rowwise-adagrad" or (self.kind == "sgd" and not weight_decay):
            return grad._indices()[0], grad._values()
        grad = grad.coalesce()
        return grad.indices()[0], grad.values()

    def _update(
        self, p: torch.Tensor, idx: torch.Tensor | None, g: torch.Tensor, group: dict
    ) -> None:
        lr, wd = group["lr"], group["weight_decay"]
        kind = "adagrad" if self.kind == "rowwise-adagrad" and idx is None else self.kind
        rows = p if idx is None else p.index_select(0, idx)
        if wd and kind != "adamw":
            g = g.add(rows, alpha=wd)
        state = self.state.setdefault(p, {})
        if kind == "sgd":
            _apply(p, idx, g, -lr)
        elif kind == "rowwise-adagrad":
            acc = state.setdefault(
                "row_sum", torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
            )
            # the row's mean squared gradient in one pass (vecdot, not square-then-mean)
            sq = torch.linalg.vecdot(g, g).div_(g.shape[1]) if g.dim() > 1 else g * g
            acc.index_add_(0, idx, sq)
            scale = acc.index_select(0, idx).add_(group["eps"]).rsqrt_()
            _apply(p, idx, g * scale.view(-1, *([1] * (g.dim() - 1))), -lr)
        elif kind == "momentum":
            buf = _slot(state, "momentum_buffer", p)
            b = _gather(buf, idx).mul_(group["momentum"]).add_(g)
            _scatter(buf, idx, b)
            _apply(p, idx, b, -lr)
        elif kind == "adagrad":
            acc = _slot(state, "sum", p)
            a = _gather(acc, idx).addcmul_(g, g)
            _scatter(acc, idx, a)
            _apply(p, idx, g / a.sqrt().add_(group["eps"]), -lr)
        elif kind == "rmsprop":
            sq = _slot(state, "square_avg", p)
            alpha = group["alpha"]
            s = _gather(sq, idx).mul_(alpha).addcmul_(g, g, value=1 - alpha)
            _scatter(sq, idx, s)
            _apply(p, idx, g / s.sqrt().add_(group["eps"]), -lr)
        else:
            self._adam(p, idx, g, rows, group, state)

    def _adam(
        self,
        p: torch.Tensor,
        idx: torch.Tensor | None,
        g: torch.Tensor,
        rows: torch.Tensor,
        group: dict,
        state: dict,
    ) -> None:
        # per-row step counts keep the bias correction exact for rows that are rarely touched
        b1, b2 = group["betas"]
        m_all = _slot(state, "exp_avg", p)
        v_all = _slot(state, "exp_avg_sq", p)
        steps = state.setdefault(
            "row_step", torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
        )
        m = _gather(m_all, idx).mul_(b1).add_(g, alpha=1 - b1)
        v = _gather(v_all, idx).mul_(b2).addcmul_(g, g, value=1 - b2)
        t = _gather(steps, idx).add_(1)
        _scatter(m_all, idx, m)
        _scatter(v_all, idx, v)
        _scatter(steps, idx, t)
        shape = (-1, *([1] * (g.dim() - 1))) if g.dim() else ()
        bc1 = (1 - torch.pow(b1, t)).view(shape)
        bc2 = (1 - torch.pow(b2, t)).view(shape)
        update = (m / bc1).div_((v / bc2).sqrt_().add_(group["eps"]))
        if self.kind == "adamw" and group["weight_decay"]:
            update.add_(rows, alpha=group["weight_decay"])
        _apply(p, idx, update, -group["lr"])


def _lazy(p: torch.Tensor) -> bool:
    return getattr(p, LAZY_ROWS, False)


def _slot(state: dict, name: str, p: torch.Tensor) -> torch.Tensor:
    if name not in state:
        state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state[name]


def _gather(buf: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    return buf.clone() if idx is None else buf.index_select(0, idx)


def _scatter(buf: torch.Tensor, idx: torch.Tensor | None, value: torch.Tensor) -> None:
    if idx is None:
        buf.copy_(value)
    else:
        buf.index_copy_(0, idx, value)


def _apply(p: torch.Tensor, idx: torch.Tensor | None, update: torch.Tensor, alpha: float) -> None:
    if idx is None:
        p.add_(update, alpha=alpha)
    elif p.dim() == 2 and p.shape[1] == 1 and p.is_contiguous():
        # a one-column table (biases): the 1-d kernel is several times faster than the 2-d one
        p.view(-1).index_add_(0, idx, update.reshape(-1), alpha=alpha)
    else:
        p.index_add_(0, idx, update, alpha=alpha)


def _is_bias(name: str, p: nn.Parameter) -> bool:
    return p.dim() <= 1 or name.endswith("bias") or (p.dim() == 2 and p.shape[1] == 1)


def make_optimizers(
    module: nn.Module,
    kind: str,
    lr: float,
    *,
    weight_decay: float = 0.0,
    decay_biases: bool = False,
    momentum: float = 0.9,
) -> list[Any]:
    """The optimizers for ``module``: :class:`RowSparse`, plus torch's fused Adam for large
    dense layers under ``adam``/``adamw``.

    Weight decay skips biases (1-d parameters and one-column tables) unless ``decay_biases``.
    """
    if kind not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {kind!r}; use one of {', '.join(OPTIMIZERS)}")
    sparse_ids = sparse_parameters(module)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        decay = bool(weight_decay) and (decay_biases or not _is_bias(name, p))
        groups.setdefault((id(p) in sparse_ids, decay), []).append(p)
    dense_numel = sum(p.numel() for (sparse, _), ps in groups.items() if not sparse for p in ps)
    fused = kind in ("adam", "adamw") and dense_numel >= FUSED_MIN_NUMEL

    def param_groups(sparse_kinds: tuple[bool, ...]) -> list[dict[str, Any]]:
        return [
            {"params": ps, "weight_decay": weight_decay if decay else 0.0}
            for decay in (False, True)
            for sparse in sparse_kinds
            if (ps := groups.get((sparse, decay)))
        ]

    if not fused:
        everything = param_groups((True, False))
        return [RowSparse(everything, kind, lr, momentum=momentum)] if everything else []
    tables = param_groups((True,))
    rows = [RowSparse(tables, kind, lr, momentum=momentum)] if tables else []
    return [*rows, _fused_adam(param_groups((False,)), kind, lr)]


#: dense parameters at least this large go to torch's fused Adam (one kernel per tensor instead
#: of a dozen ops); below it the 1-4 s ``torch._dynamo`` import its base class costs dominates
FUSED_MIN_NUMEL = 1 << 20


def _fused_adam(groups: list[dict], kind: str, lr: float) -> torch.optim.Optimizer:
    cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
    try:
        return cls(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/dtype
        return cls(groups, lr=lr)


def sparse_parameters(module: nn.Module) -> set[int]:
    """Ids of parameters that receive sparse gradients (sparse embedding tables)."""
    return {
        id(m.weight)
        for m in module.modules()
        if isinstance(m, nn.Embedding | nn.EmbeddingBag)
        and (m.sparse or getattr(m.weight, LAZY_ROWS, False))
    }


def clip_gradients(module: nn.Module, max_norm: float) -> float:
    """Clip the global gradient norm (sparse gradients included); returns the norm before clipping."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    sq = 0.0
    for g in grads:
        vals = g.coalesce().values() if g.is_sparse else g
        sq += float(vals.detach().float().square().sum())
    norm = math.sqrt(sq)
    if norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads:
            (g._values() if g.is_sparse else g).mul_(scale)
    return norm
