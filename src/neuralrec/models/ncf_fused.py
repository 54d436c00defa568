"""The NCF head (GMF product, MLP tower, output layer) as one autograd node.

Autograd through the layer-by-layer graph spends more on bookkeeping than on arithmetic at
NCF's sizes: every slice of an embedding or weight (the GMF and MLP halves live side by side)
allocates and zero-fills a full-size gradient, and each small op is a node. Here the forward
keeps only the post-activation outputs and the backward is written out with matrix products,
giving the same values and gradients (tests/test_ncf.py checks them against autograd).

Dropout: the ReLU output h is kept as relu(pre)·mask/(1−p), so its derivative is
(h > 0)/(1−p) and no mask needs storing. Masks come from :func:`dropout_mask`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


class FusedHead(torch.autograd.Function):
    """logits (B, m) from user rows ue (B, D) and item rows ie (B, m, D).

    With ``u_inv`` (B,) and ``i_inv`` (B, m), ``ue`` and ``ie`` hold each distinct row once and
    the batch reads them through the indices: the first tower layer then runs once per
    distinct user and item (about half the rows of a batch of 1024 positives and 1024
    negatives on MovieLens 100K), and the row gradients come out summed per distinct row.
    The arithmetic is :func:`head_forward` and :func:`head_backward`, which training on one
    CPU process also calls directly, without autograd.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        ue: torch.Tensor,
        ie: torch.Tensor,
        u_inv: torch.Tensor | None,
        i_inv: torch.Tensor | None,
        g: int,
        p: float,
        mask_seed: int | None,
        mu: float,
        w_out: torch.Tensor,
        b_out: torch.Tensor,
        *tower: torch.Tensor,
    ) -> torch.Tensor:
        logits, hs = head_forward(ue, ie, u_inv, i_inv, g, p, mask_seed, mu, w_out, b_out, tower)
        ctx.g, ctx.p = g, p
        ctx.dedup = u_inv is not None, i_inv is not None
        inv = [t for t in (u_inv, i_inv) if t is not None]
        ctx.save_for_backward(ue, ie, w_out, *inv, *tower, *hs)
        return logits

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        # the trainer may call backward inside its autocast block, and autocast would widen
        # some ops here (sums) to float32 against the node's own dtype
        with torch.autocast(grad.device.type, enabled=False):
            ue, ie, w_out, *rest = ctx.saved_tensors
            u_inv = rest.pop(0) if ctx.dedup[0] else None
            i_inv = rest.pop(0) if ctx.dedup[1] else None
            n_tower = len(rest) // 3 * 2  # weights and biases; the rest are activations
            tower, hs = rest[:n_tower], rest[n_tower:]
            grad = grad.to(ue.dtype).contiguous()  # under autocast the grad may be wider
            g_ue, g_ie, g_wout, g_bout, g_tower = head_backward(
                grad, ue, ie, u_inv, i_inv, ctx.g, ctx.p, w_out, tower, hs
            )
        return (g_ue, g_ie, None, None, None, None, None, None, g_wout, g_bout, *g_tower)


def head_forward(
    ue: torch.Tensor,
    ie: torch.Tensor,
    u_inv: torch.Tensor | None,
    i_inv: torch.Tensor | None,
    g: int,
    p: float,
    mask_seed: int | None,
    mu: float,
    w_out: torch.Tensor,
    b_out: torch.Tensor,
    tower: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The head's logits and the tower's post-dropout activations (what the backward needs);
    arguments as :class:`FusedHead` takes them, ``tower`` as [W₁, b₁, W₂, b₂, ...]."""
    if _compiled(ue, ie, u_inv, i_inv, w_out, tower):
        return _forward_compiled(ue, ie, u_inv, i_inv, g, p, mask_seed, mu, w_out, b_out, tower)
    n, m = i_inv.shape if i_inv is not None else ie.shape[:2]
    width = ie.shape[-1]
    logits = (b_out + mu).expand(n, m).clone()
    if g:
        hp = _take(ue[:, :g], u_inv) * w_out[0, :g]
        logits.add_(torch.bmm(_take(ie[..., :g], i_inv), hp.unsqueeze(2)).squeeze(2))
    hs: list[torch.Tensor] = []
    if tower:
        dm = width - g
        gen = None if mask_seed is None else torch.Generator().manual_seed(mask_seed)
        w1, b1 = tower[0], tower[1]
        user_half = _take(torch.addmm(b1, ue[:, g:], w1[:, :dm].T), u_inv)
        item_half = _take(torch.matmul(ie[..., g:], w1[:, dm:].T), i_inv)
        h = item_half.add_(user_half.unsqueeze(1)).relu_()
        hs.append(_dropout(h, p, gen))
        for j in range(2, len(tower), 2):
            w, b = tower[j], tower[j + 1]
            flat = torch.addmm(b, hs[-1].view(n * m, -1), w.T).relu_()
            hs.append(_dropout(flat.view(n, m, -1), p, gen))
        logits.add_(hs[-1] @ w_out[0, g:])
    return logits, hs


def head_backward(
    grad: torch.Tensor,
    ue: torch.Tensor,
    ie: torch.Tensor,
    u_inv: torch.Tensor | None,
    i_inv: torch.Tensor | None,
    g: int,
    p: float,
    w_out: torch.Tensor,
    tower: Sequence[torch.Tensor],
    hs: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Gradients (rows of ue, rows of ie, w_out, b_out, tower) from the logits' gradient
    ``grad`` (n, m, contiguous) and :func:`head_forward`'s activations ``hs``."""
    if _compiled(ue, ie, u_inv, i_inv, w_out, tower) and grad.dtype == torch.float32:
        return _backward_compiled(grad, ue, ie, u_inv, i_inv, g, p, w_out, tower, hs)
    n, m = grad.shape
    width = ie.shape[-1]
    g_ue = torch.empty_like(ue)
    g_ie = torch.empty_like(ie)
    g_wout = torch.empty_like(w_out)
    g_bout = grad.sum().reshape(1)
    if g:
        ug, wg = _take(ue[:, :g], u_inv), w_out[0, :g]
        per_user = _weighted_rows(grad, _take(ie[..., :g], i_inv))  # Σ_m G·q
        g_wout[0, :g] = (per_user * ug).sum(0)
        g_ue[:, :g] = _put(per_user * wg, u_inv, len(ue))
        g_ie[..., :g] = _put(grad.unsqueeze(2) * (ug * wg).unsqueeze(1), i_inv, len(ie))
    tower_grads: list[torch.Tensor] = []
    if tower:
        dm = width - g
        scale = 1.0 / (1.0 - p) if p else 1.0
        flat_g = grad.view(1, n * m)
        g_wout[0, g:] = (flat_g @ hs[-1].view(n * m, -1))[0]
        dh = grad.unsqueeze(2) * w_out[0, g:]
        for j in range(len(hs) - 1, 0, -1):
            w = tower[2 * j]
            dpre = _relu_grad(dh, hs[j], scale).view(n * m, -1)
            tower_grads = [dpre.T @ hs[j - 1].view(n * m, -1), dpre.sum(0), *tower_grads]
            dh = (dpre @ w).view(n, m, -1)
        w1 = tower[0]
        dpre = _relu_grad(dh, hs[0], scale)
        du = dpre.sum(1)
        db1 = du.sum(0)
        # per distinct row from here on: the first layer's products run once per row
        du = _put(du, u_inv, len(ue))
        di = _put(dpre, i_inv, len(ie))
        items = ie[..., g:]
        g_w1 = torch.empty_like(w1)
        torch.mm(du.T, ue[:, g:], out=g_w1[:, :dm])
        torch.mm(di.reshape(-1, di.shape[-1]).T, items.reshape(-1, dm), out=g_w1[:, dm:])
        tower_grads = [g_w1, db1, *tower_grads]
        torch.mm(du, w1[:, :dm], out=g_ue[:, g:])
        g_ie[..., g:] = torch.matmul(di, w1[:, dm:])
    return g_ue, g_ie, g_wout, g_bout, tower_grads


def _compiled(
    ue: torch.Tensor,
    ie: torch.Tensor,
    u_inv: torch.Tensor | None,
    i_inv: torch.Tensor | None,
    w_out: torch.Tensor,
    tower: Sequence[torch.Tensor],
) -> bool:
    """Whether the compiled loops of :mod:`~neuralrec.training.kernels` can run this head:
    float32 on the CPU, distinct rows with their indices, even layer widths (dropout draws
    its mask two entries at a time)."""
    return (
        u_inv is not None
        and i_inv is not None
        and ue.device.type == "cpu"
        and ue.dtype == ie.dtype == w_out.dtype == torch.float32
        and ue.is_contiguous()
        and ie.is_contiguous()
        and ie.dim() == 2
        and all(t.dtype == torch.float32 for t in tower)
        and all(w.shape[0] % 2 == 0 for w in tower[::2])
    )


def _a(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _forward_compiled(
    ue: torch.Tensor,
    ie: torch.Tensor,
    u_inv: torch.Tensor,
    i_inv: torch.Tensor,
    g: int,
    p: float,
    mask_seed: int | None,
    mu: float,
    w_out: torch.Tensor,
    b_out: torch.Tensor,
    tower: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """:func:`head_forward` with the gathers, ReLU and dropout passes compiled."""
    from neuralrec.training import kernels

    n, m = i_inv.shape
    dm = ie.shape[1] - g
    logits = (b_out.detach() + mu).expand(n, m).clone()
    u_idx, i_idx = u_inv.numpy(), i_inv.numpy()
    if g:
        kernels.ncf_gmf_logits(_a(ue), _a(ie), u_idx, i_idx, _a(w_out)[0], g, logits.numpy())
    hs: list[torch.Tensor] = []
    if tower:
        gen = None if mask_seed is None else torch.Generator().manual_seed(mask_seed)
        threshold, scale = _threshold(p), np.float32(1.0 / (1.0 - p))
        w1, b1 = tower[0].detach(), tower[1].detach()
        user_half = torch.addmm(b1, ue.detach()[:, g:], w1[:, :dm].T)
        item_half = torch.mm(ie.detach()[:, g:], w1[:, dm:].T)
        h = torch.empty(n, m, w1.shape[0])
        seed = _seed(gen) if p else 0
        kernels.ncf_first_layer(
            user_half.numpy(), item_half.numpy(), u_idx, i_idx, threshold, scale, seed, h.numpy()
        )
        hs.append(h)
        for j in range(2, len(tower), 2):
            w, b = tower[j].detach(), tower[j + 1].detach()
            flat = torch.addmm(b, h.view(n * m, -1), w.T)
            if p:
                kernels.relu_dropout_inplace(flat.view(-1).numpy(), threshold, scale, _seed(gen))
            else:
                flat.relu_()
            h = flat.view(n, m, -1)
            hs.append(h)
        logits.add_(h @ w_out.detach()[0, g:])
    return logits, hs


def _backward_compiled(
    grad: torch.Tensor,
    ue: torch.Tensor,
    ie: torch.Tensor,
    u_inv: torch.Tensor,
    i_inv: torch.Tensor,
    g: int,
    p: float,
    w_out: torch.Tensor,
    tower: Sequence[torch.Tensor],
    hs: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """:func:`head_backward` with the scatters to distinct rows and the ReLU passes compiled."""
    from neuralrec.training import kernels

    ue, ie, w_out = ue.detach(), ie.detach(), w_out.detach()
    n, m = grad.shape
    rows = n * m
    u_idx, i_idx = u_inv.numpy(), i_inv.numpy()
    g_ue, g_ie, g_wout = torch.empty_like(ue), torch.empty_like(ie), torch.empty_like(w_out)
    g_bout = grad.sum().reshape(1)
    if g:
        kernels.ncf_gmf_backward(
            grad.numpy(), ue.numpy(), ie.numpy(), u_idx, i_idx, w_out.numpy()[0], g,
            g_ue.numpy(), g_ie.numpy(), g_wout.numpy()[0],
        )  # fmt: skip
    tower_grads: list[torch.Tensor] = []
    if tower:
        dm = ie.shape[1] - g
        scale = 1.0 / (1.0 - p) if p else 1.0
        if len(hs) > 1:
            last = hs[-1].view(rows, -1)
            dpre = torch.empty_like(last)
            kernels.ncf_out_backward(
                grad.view(-1).numpy(), w_out.numpy()[0, g:], last.numpy(), np.float32(scale),
                g_wout.numpy()[0, g:], dpre.numpy(),
            )  # fmt: skip
            for j in range(len(hs) - 1, 0, -1):  # dpre: layer j's pre-activation gradient
                w = tower[2 * j].detach()
                tower_grads = [dpre.T @ hs[j - 1].view(rows, -1), dpre.sum(0), *tower_grads]
                dh = (dpre @ w).view(n, m, -1)
                if j > 1:  # the first layer's comes from ncf_first_layer_backward
                    dpre = _relu_grad(dh, hs[j - 1], scale).view(rows, -1)
        else:
            g_wout[0, g:] = (grad.view(1, rows) @ hs[0].view(rows, -1))[0]
            dh = grad.unsqueeze(2) * w_out[0, g:]
        w1 = tower[0].detach()
        k = w1.shape[0]
        du, di, db1 = torch.empty(len(ue), k), torch.empty(len(ie), k), torch.empty(k)
        kernels.ncf_first_layer_backward(
            dh.numpy(), hs[0].numpy(), u_idx, i_idx, np.float32(scale),
            du.numpy(), di.numpy(), db1.numpy(),
        )  # fmt: skip
        g_w1 = torch.empty_like(w1)
        torch.mm(du.T, ue[:, g:], out=g_w1[:, :dm])
        torch.mm(di.T, ie[:, g:], out=g_w1[:, dm:])
        torch.mm(du, w1[:, :dm], out=g_ue[:, g:])
        torch.mm(di, w1[:, dm:], out=g_ie[:, g:])
        tower_grads = [g_w1, db1, *tower_grads]
    return g_ue, g_ie, g_wout, g_bout, tower_grads


def _take(rows: torch.Tensor, inv: torch.Tensor | None) -> torch.Tensor:
    """rows[inv] (shape inv.shape + (d,)), or rows itself without an index."""
    if inv is None:
        return rows
    return rows.index_select(0, inv.reshape(-1)).view(*inv.shape, rows.shape[-1])


def _put(per_row: torch.Tensor, inv: torch.Tensor | None, n_rows: int) -> torch.Tensor:
    """Sums of ``per_row`` (inv.shape + (d,)) per distinct row: the adjoint of :func:`_take`."""
    if inv is None:
        return per_row
    d = per_row.shape[-1]
    out = per_row.new_zeros(n_rows, d)
    return out.index_add_(0, inv.reshape(-1), per_row.reshape(-1, d))


def dropout_mask(shape: torch.Size, p: float, gen: torch.Generator | None) -> torch.Tensor:
    """Boolean CPU mask of the entries to drop, each with probability p (to 1/65536).

    The bits come from a splitmix64 stream seeded by one draw from ``gen``: the entries the
    in-place dropout of :func:`_dropout` zeroes in an array of ones, so both drop the same
    entries for the same seed.
    """
    from neuralrec.training import kernels

    ones = np.ones(math.prod(int(d) for d in shape), dtype=np.float32)
    kernels.dropout_inplace(ones, _threshold(p), np.float32(1.0), _seed(gen))
    return torch.from_numpy(ones == 0).view(shape)


def _threshold(p: float) -> int:
    return round(p * 65536)


def _seed(gen: torch.Generator | None) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=gen))


def _dropout(h: torch.Tensor, p: float, gen: torch.Generator | None) -> torch.Tensor:
    if not p:
        return h
    if h.device.type == "cpu" and h.dtype == torch.float32 and h.is_contiguous():
        # one compiled pass, no mask tensor: a third of the torch ops' time at NCF's sizes
        from neuralrec.training import kernels

        scale = np.float32(1.0 / (1.0 - p))
        kernels.dropout_inplace(h.view(-1).numpy(), _threshold(p), scale, _seed(gen))
        return h
    if h.device.type != "cpu":
        # drawn where the data lives: a host-drawn mask would cross the bus every step
        dev_gen = torch.Generator(device=h.device).manual_seed(_seed(gen))
        mask = torch.rand(h.shape, device=h.device, generator=dev_gen) < p
    else:
        mask = dropout_mask(h.shape, p, gen)
    return h.masked_fill_(mask, 0.0).mul_(1.0 / (1.0 - p))


def _weighted_rows(w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Σ_j w[:, j] · rows[:, j] for w (B, m) and rows (B, m, d).

    bmm of B (1 x m) @ (m x d) products is 6x slower on the CPU at NCF's sizes than m
    multiply-adds over the rows when m (a positive and its negatives) is small.
    """
    m = w.shape[1]
    if m > 8:
        return (w.unsqueeze(2) * rows).sum(1)
    out = rows[:, 0] * w[:, :1]
    for j in range(1, m):
        out.addcmul_(rows[:, j], w[:, j : j + 1])
    return out


def _relu_grad(dh: torch.Tensor, h: torch.Tensor, scale: float) -> torch.Tensor:
    """dh · (h > 0) · scale; on the compiled path written over ``dh`` (a temporary of the
    backward pass)."""
    cpu32 = dh.device.type == "cpu" and dh.dtype == h.dtype == torch.float32
    if cpu32 and dh.is_contiguous() and h.is_contiguous():
        # one compiled pass, in place: aten's ReLU backward and the scale are two passes and
        # a new array (8x slower at NCF's sizes with dropout on)
        from neuralrec.training import kernels

        kernels.relu_grad_inplace(dh.view(-1).numpy(), h.view(-1).numpy(), np.float32(scale))
        return dh
    # aten's ReLU backward: one kernel, no boolean mask tensor
    out = torch.ops.aten.threshold_backward(dh, h, 0.0)
    return out.mul_(scale) if scale != 1.0 else out
