"""Optimizers that update only the embedding rows a batch touches.

Embedding tables built with ``sparse=True`` receive sparse gradients. Stock torch optimizers
either reject them or, like ``SparseAdam``, spend most of an epoch coalescing. ``RowSparse``
applies SGD, momentum, Adagrad (element- or row-wise), RMSprop or Adam/AdamW to the touched rows
only ("lazy" state updates, as TensorFlow's LazyAdam and FBGEMM's row-wise Adagrad do). Dense
parameters go to the matching stock torch optimizer. :func:`make_optimizers` builds both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from neuralrec.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rowwise-adagrad", "rmsprop", "adam", "adamw")


class RowSparse(torch.optim.Optimizer):
    """One optimizer for parameters whose gradients are sparse row slices.

    ``kind`` is one of :data:`OPTIMIZERS`. ``weight_decay`` is applied to touched rows only:
    decoupled for ``adamw``, added to the gradient otherwise. Row-wise Adagrad keeps one
    accumulator per row (the mean squared gradient), the cheapest adaptive choice for embeddings.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
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
        defaults = dict(
            lr=lr, momentum=momentum, betas=betas, alpha=alpha, eps=eps, weight_decay=weight_decay
        )
        super().__init__(params, defaults)
        self.kind = kind

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    idx, g = self._rows(grad, group["weight_decay"])
                else:  # a dense gradient on a "sparse" parameter: treat every row as touched
                    idx, g = None, grad
                self._update(p, idx, g, group)

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
        lr, wd, kind = group["lr"], group["weight_decay"], self.kind
        rows = p if idx is None else p.index_select(0, idx)
        if wd and kind != "adamw":
            g = g.add(rows, alpha=wd)
        state = self.state[p]
        if kind == "sgd":
            self._apply(p, idx, g, -lr)
            return
        if kind == "rowwise-adagrad":
            acc = state.setdefault("sum", torch.zeros(p.shape[0], dtype=p.dtype, device=p.device))
            sq = g.square().mean(dim=1) if g.dim() > 1 else g.square()
            if idx is None:
                acc.add_(sq)
                scale = acc.add(group["eps"]).rsqrt_()
            else:
                acc.index_add_(0, idx, sq)
                scale = acc.index_select(0, idx).add_(group["eps"]).rsqrt_()
            self._apply(p, idx, g * scale.view(-1, *([1] * (g.dim() - 1))), -lr)
            return
        if kind == "momentum":
            buf = self._slot(state, "momentum_buffer", p)
            b = self._gather(buf, idx).mul_(group["momentum"]).add_(g)
            self._scatter(buf, idx, b)
            self._apply(p, idx, b, -lr)
            return
        if kind == "adagrad":
            acc = self._slot(state, "sum", p)
            a = self._gather(acc, idx).addcmul_(g, g)
            self._scatter(acc, idx, a)
            self._apply(p, idx, g / a.sqrt_().add_(group["eps"]), -lr)
            return
        if kind == "rmsprop":
            sq = self._slot(state, "square_avg", p)
            alpha = group["alpha"]
            s = self._gather(sq, idx).mul_(alpha).addcmul_(g, g, value=1 - alpha)
            self._scatter(sq, idx, s)
            self._apply(p, idx, g / s.sqrt_().add_(group["eps"]), -lr)
            return
        # adam / adamw: per-row step counts make bias correction exact for rarely seen rows
        b1, b2 = group["betas"]
        m_all = self._slot(state, "exp_avg", p)
        v_all = self._slot(state, "exp_avg_sq", p)
        steps = state.setdefault(
            "row_step", torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
        )
        m = self._gather(m_all, idx).mul_(b1).add_(g, alpha=1 - b1)
        v = self._gather(v_all, idx).mul_(b2).addcmul_(g, g, value=1 - b2)
        t = self._gather(steps, idx).add_(1)
        self._scatter(m_all, idx, m)
        self._scatter(v_all, idx, v)
        self._scatter(steps, idx, t)
        shape = (-1, *([1] * (g.dim() - 1)))
        bc1 = (1 - torch.pow(b1, t)).view(shape)
        bc2 = (1 - torch.pow(b2, t)).view(shape)
        update = (m / bc1).div_((v / bc2).sqrt_().add_(group["eps"]))
        if kind == "adamw" and wd:
            update.add_(rows if idx is not None else p, alpha=wd)
        self._apply(p, idx, update, -lr)

    @staticmethod
    def _slot(state: dict, name: str, p: torch.Tensor) -> torch.Tensor:
        if name not in state:
            state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state[name]

    @staticmethod
    def _gather(buf: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        return buf.clone() if idx is None else buf.index_select(0, idx)

    @staticmethod
    def _scatter(buf: torch.Tensor, idx: torch.Tensor | None, value: torch.Tensor) -> None:
        if idx is None:
            buf.copy_(value)
        else:
            buf.index_copy_(0, idx, value)

    @staticmethod
    def _apply(
        p: torch.Tensor, idx: torch.Tensor | None, update: torch.Tensor, alpha: float
    ) -> None:
        if idx is None:
            p.add_(update, alpha=alpha)
        else:
            p.index_add_(0, idx, update, alpha=alpha)


def sparse_parameters(module: nn.Module) -> set[int]:
    """Ids of parameters that receive sparse gradients (sparse embedding tables)."""
    out: set[int] = set()
    for m in module.modules():
        if isinstance(m, nn.Embedding | nn.EmbeddingBag) and m.sparse:
            out.add(id(m.weight))
    return out


def _is_bias(name: str, p: nn.Parameter) -> bool:
    return (
        p.dim() <= 1
        or name.endswith("bias")
        or ".bias" in name
        or (p.dim() == 2 and p.shape[1] == 1)
    )


def make_optimizers(
    module: nn.Module,
    kind: str,
    lr: float,
    *,
    weight_decay: float = 0.0,
    decay_biases: bool = False,
    momentum: float = 0.9,
) -> list[torch.optim.Optimizer]:
    """Optimizers for ``module``: :class:`RowSparse` for sparse tables, stock torch for the rest.

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
    optimizers: list[torch.optim.Optimizer] = []
    for sparse in (True, False):
        pgroups = [
            {"params": groups[(sparse, decay)], "weight_decay": weight_decay if decay else 0.0}
            for decay in (False, True)
            if groups.get((sparse, decay))
        ]
        if not pgroups:
            continue
        if sparse:
            optimizers.append(RowSparse(pgroups, kind, lr, momentum=momentum))
        else:
            optimizers.append(_dense(pgroups, kind, lr, momentum))
    return optimizers


def _dense(groups: list[dict], kind: str, lr: float, momentum: float) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr)
    if kind == "momentum":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if kind in ("adagrad", "rowwise-adagrad"):
        return torch.optim.Adagrad(groups, lr=lr)
    if kind == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr)
    cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
    # the fused kernel is one pass over each tensor instead of a dozen: several times faster
    # on large dense layers (autoencoders); torch < 2.4 has no CPU version, so fall back
    try:
        return cls(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return cls(groups, lr=lr)


def clip_gradients(module: nn.Module, max_norm: float) -> float:
    """Clip the global gradient norm (sparse gradients included); returns the norm before clipping."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    sq = 0.0
    for g in grads:
        vals = g.coalesce().values() if g.is_sparse else g
        sq += float(vals.detach().float().square().sum())
    norm = math.sqrt(sq)
    if norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads:
            if g.is_sparse:
                g._values().mul_(scale)
            else:
                g.mul_(scale)
    return norm
