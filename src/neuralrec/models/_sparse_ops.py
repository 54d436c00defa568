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
        x = _csr(crow, cols, values.to(grad.dtype), (grad.shape[0], ctx.n_in))
        return x.t() @ grad, None, None, None


class ObservedLinear(torch.autograd.Function):
    """``(h @ Wᵀ + c)[r, j]`` at the stored entries (r, j) of a CSR pattern only.

    The masked loss of a rating autoencoder needs the output at the observed ratings alone; a
    sampled product (SDDMM) computes just those, and the backward pass multiplies the sparse
    gradient back: ``grad_h = G @ W``, ``grad_W = Gᵀ @ h``.
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
        g = _csr(crow, cols, grad.contiguous(), (h.shape[0], weight.shape[0]))
        grad_h = g @ weight if ctx.needs_input_grad[0] else None
        grad_w = g.t() @ h if ctx.needs_input_grad[1] else None
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
