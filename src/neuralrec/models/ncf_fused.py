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
from typing import Any

import numpy as np
import torch


class FusedHead(torch.autograd.Function):
    """logits (B, m) from user rows ue (B, D) and item rows ie (B, m, D).

    With ``u_inv`` (B,) and ``i_inv`` (B, m), ``ue`` and ``ie`` hold each distinct row once and
    the batch reads them through the indices: the first tower layer then runs once per
    distinct user and item (about half the rows of a batch of 1024 positives and 1024
    negatives on MovieLens 100K), and the row gradients come out summed per distinct row.
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
            return FusedHead._backward(ctx, grad)

    @staticmethod
    def _backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        g, p = ctx.g, ctx.p
        ue, ie, w_out, *rest = ctx.saved_tensors
        u_inv = rest.pop(0) if ctx.dedup[0] else None
        i_inv = rest.pop(0) if ctx.dedup[1] else None
        n_tower = len(rest) // 3 * 2  # weights and biases; the remaining third are activations
        tower, hs = rest[:n_tower], rest[n_tower:]
        n, m = grad.shape
        width = ie.shape[-1]
        grad = grad.to(ue.dtype).contiguous()  # under autocast the incoming grad may be wider
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
        return (g_ue, g_ie, None, None, None, None, None, None, g_wout, g_bout, *tower_grads)


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
