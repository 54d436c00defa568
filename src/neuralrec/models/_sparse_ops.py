"""Products between sparse rating rows and dense layers, with backward passes that stay sparse.

An autoencoder on rating rows touches a few percent of each row: MovieLens 1M is 4.5% dense.
Its first layer (X @ V, X sparse) and the loss on its last layer (the output only at the
observed entries) need ``nnz x k`` arithmetic, not ``rows x cols x k``; these functions do
exactly that, forward and backward, with torch's sparse CSR kernels. Their results equal the
dense computation (tests compare them).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F


def _csr(
    crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta", once per process
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, shape, check_invariants=False)


def _t_matmul(
    crow: torch.Tensor,
    cols: torch.Tensor,
    values: torch.Tensor,
    n_cols: int,
    dense: torch.Tensor,
) -> torch.Tensor:
    """``Xᵀ @ dense`` for X in CSR parts, through an explicit CSR of Xᵀ.

    Building the transpose (one stable sort of the column indices) and multiplying it is
    faster on CPU than torch's product with ``X.t()``.
    """
    order = torch.argsort(cols, stable=True)
    rows = torch.repeat_interleave(
        torch.arange(len(crow) - 1, device=cols.device), torch.diff(crow)
    )
    counts = torch.bincount(cols, minlength=n_cols)
    t_crow = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
    xt = _csr(t_crow, rows[order], values[order], (n_cols, len(crow) - 1))
    return xt @ dense


class SparseRowsMatmul(torch.autograd.Function):
    """``X @ W`` for sparse rows X (CSR parts), differentiable in ``W``.

    Forward is a weighted ``embedding_bag``; backward is ``Xᵀ @ grad`` as a sparse product
    (embedding_bag's own backward sorts every index and costs more than the dense matmul).
    """

    @staticmethod
    def forward(
        ctx: Any,
        weight: torch.Tensor,
        crow: torch.Tensor,
        cols: torch.Tensor,
        values: torch.Tensor,
    ) -> torch.Tensor:
        ctx.save_for_backward(crow, cols, values)
        ctx.n_in = weight.shape[0]
        return F.embedding_bag(cols, weight, crow[:-1], mode="sum", per_sample_weights=values)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        crow, cols, values = ctx.saved_tensors
        return _t_matmul(crow, cols, values.to(grad.dtype), ctx.n_in, grad), None, None, None


class ObservedLinear(torch.autograd.Function):
    """``(h @ Wᵀ + c)[r, j]`` at the stored entries (r, j) of a CSR pattern only.

    The masked loss of a rating autoencoder needs the output at the observed ratings alone; a
    sampled product (SDDMM) computes just those, and the backward pass multiplies the sparse
    gradient back: ``grad_h = G @ W`` and ``grad_W = Gᵀ @ h``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        h: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        crow: torch.Tensor,
        cols: torch.Tensor,
    ) -> torch.Tensor:
        shape = (h.shape[0], weight.shape[0])
        pattern = _csr(crow, cols, torch.zeros(len(cols), dtype=h.dtype, device=h.device), shape)
        out = torch.sparse.sampled_addmm(pattern, h, weight.T).values()
        ctx.save_for_backward(h, weight, crow, cols)
        return out + bias[cols]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        h, weight, crow, cols = ctx.saved_tensors
        grad = grad.contiguous()
        grad_h = grad_w = None
        if ctx.needs_input_grad[0]:  # G @ W: densifying G and one matmul beats the sparse kernel
            g = torch.zeros(h.shape[0], weight.shape[0], dtype=grad.dtype, device=grad.device)
            rows = torch.repeat_interleave(
                torch.arange(h.shape[0], device=h.device), torch.diff(crow)
            )
            g[rows, cols] = grad
            grad_h = g @ weight
        if ctx.needs_input_grad[1]:
            grad_w = _t_matmul(crow, cols, grad, weight.shape[0], h)
        grad_b = torch.zeros(weight.shape[0], dtype=grad.dtype, device=grad.device)
        return grad_h, grad_w, grad_b.index_add_(0, cols, grad), None, None


def sparse_rows_matmul(
    weight: torch.Tensor, crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """``X @ weight`` for the sparse rows X given as CSR parts."""
    return SparseRowsMatmul.apply(weight, crow, cols, values)


def observed_linear(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    crow: torch.Tensor,
    cols: torch.Tensor,
) -> torch.Tensor:
    """``F.linear(h, weight, bias)`` read at the CSR pattern's entries, in CSR order."""
    return ObservedLinear.apply(h, weight, bias, crow, cols)
