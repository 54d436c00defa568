"""Pieces shared by the autoencoder models: sparse row batches and activation functions.

Autoencoders for collaborative filtering (AutoRec, DeepRec, CDAE) read whole rows of the
interaction matrix: an item's ratings by every user, or a user's ratings of every item. The
matrix stays sparse (CSR parts as torch tensors); only the rows of one batch are made dense, so
memory grows with ``batch_size x n_cols``, never with ``n_users x n_items``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from neuralrec.data.interactions import Interactions
from neuralrec.models._sparse_ops import sparse_rows_matmul

Orientation = Literal["user", "item"]
ActivationName = Literal["identity", "sigmoid", "tanh", "relu", "selu", "elu", "leaky-relu"]

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "selu": F.selu,
    "elu": F.elu,
    "leaky-relu": F.leaky_relu,
}
_SELU_SCALE = 1.0507009873554805


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function called ``name`` (one of :data:`ActivationName`)."""
    return _ACTIVATIONS[name]


class RatingOutput(nn.Module):
    """An output activation that lands on the rating scale.

    Bounded activations are stretched onto ``[low, high]`` (a sigmoid output layer cannot
    otherwise produce a rating of 4); unbounded ones are left as they are.
    """

    def __init__(self, name: str, low: float, high: float) -> None:
        super().__init__()
        self.name = name
        self.low, self.high = float(low), float(high)

    def forward(self, pre: torch.Tensor) -> torch.Tensor:
        span = self.high - self.low
        if self.name == "sigmoid":
            return torch.sigmoid(pre) * span + self.low
        if self.name == "tanh":
            return (torch.tanh(pre) + 1.0) * (span / 2) + self.low
        return activation(self.name)(pre)

    def inverse(self, y: float | torch.Tensor) -> torch.Tensor:
        """A pre-activation that produces rating ``y`` (used to start the output bias at the mean
        and for fold-in); values are pulled just inside the scale for the bounded outputs."""
        y = torch.as_tensor(y, dtype=torch.float32)
        span = max(self.high - self.low, 1e-6)
        p = ((y - self.low) / span).clamp(0.02, 0.98)
        if self.name == "sigmoid":
            return torch.log(p) - torch.log1p(-p)
        if self.name == "tanh":
            return torch.atanh(2 * p - 1)
        if self.name == "selu":
            return y / _SELU_SCALE
        return y


@dataclass(frozen=True)
class RowBatch:
    """Sparse rows as one flat list of (column, value) per row: row ``r`` holds entries
    ``offsets[r]`` up to the next offset (the layout of :func:`torch.nn.functional.embedding_bag`)."""

    cols: torch.Tensor
    values: torch.Tensor
    offsets: torch.Tensor
    n_rows: int
    n_cols: int

    @property
    def crow(self) -> torch.Tensor:
        """Row pointers of the CSR layout (offsets followed by the entry count)."""
        return torch.cat([self.offsets, self.offsets.new_tensor([len(self.cols)])])

    def with_values(self, values: torch.Tensor) -> RowBatch:
        """The same pattern holding other values."""
        return RowBatch(self.cols, values, self.offsets, self.n_rows, self.n_cols)

    def to_dense(self) -> torch.Tensor:
        counts = torch.diff(self.offsets, append=self.offsets.new_tensor([len(self.cols)]))
        local = torch.repeat_interleave(torch.arange(self.n_rows, device=self.cols.device), counts)
        out = torch.zeros(self.n_rows, self.n_cols, device=self.values.device)
        out[local, self.cols] = self.values
        return out


class SparseInputLinear(nn.Module):
    """``x @ W + b`` for a dense batch or a :class:`RowBatch`.

    On sparse rows the product is a weighted sum of the rows of ``W`` picked by the stored
    columns, forward and backward (:func:`sparse_rows_matmul`), so its cost grows with the
    ratings in the batch, not with ``batch x n_in``; the result is the same as on dense rows.
    """

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        # stored (n_in, n_out) so that a row of the weight is one input's embedding
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor | RowBatch) -> torch.Tensor:
        if isinstance(x, RowBatch):
            return sparse_rows_matmul(self.weight, x.crow, x.cols, x.values) + self.bias
        return torch.addmm(self.bias, x, self.weight)


class RowMatrix:
    """The rows of a sparse matrix held as torch CSR parts, densified one batch at a time."""

    def __init__(self, csr: sp.csr_matrix, device: torch.device | str = "cpu") -> None:
        csr = csr.tocsr()
        csr.sort_indices()
        self.shape: tuple[int, int] = (int(csr.shape[0]), int(csr.shape[1]))
        self.indptr = torch.from_numpy(csr.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(csr.indices.astype(np.int64)).to(device)
        self.values = torch.from_numpy(csr.data.astype(np.float32)).to(device)

    @classmethod
    def from_interactions(
        cls,
        data: Interactions,
        by: Orientation,
        values: Literal["ratings", "ones"] = "ratings",
        device: torch.device | str = "cpu",
    ) -> RowMatrix:
        """Rows are users (``by="user"``: a user's vector over items) or items."""
        return cls.from_csr(data.tocsr(values), by, device)

    @classmethod
    def from_csr(
        cls, user_item: sp.csr_matrix, by: Orientation, device: torch.device | str = "cpu"
    ) -> RowMatrix:
        """From a users x items CSR matrix, oriented as ``by`` says."""
        return cls(user_item if by == "user" else user_item.T.tocsr(), device)

    @property
    def n_rows(self) -> int:
        return self.shape[0]

    @property
    def n_cols(self) -> int:
        return self.shape[1]

    @property
    def nnz(self) -> int:
        return int(self.values.numel())

    def lengths(self) -> torch.Tensor:
        """Stored entries per row."""
        return self.indptr[1:] - self.indptr[:-1]

    def nonempty(self) -> torch.Tensor:
        """Indices of the rows with at least one entry (the only ones worth training on)."""
        return torch.nonzero(self.lengths() > 0).squeeze(1)

    def entries(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The stored entries of ``rows`` as (position in ``rows``, column, value)."""
        rows = rows.to(self.indptr.device)
        start = self.indptr[rows]
        length = self.indptr[rows + 1] - start
        local = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), length)
        # position of each entry inside its row, then its offset in the CSR arrays
        first = torch.cumsum(length, 0) - length
        pos = torch.arange(int(length.sum()), device=rows.device) - first[local] + start[local]
        return local, self.indices[pos], self.values[pos]

    def batch(self, rows: torch.Tensor) -> RowBatch:
        """``rows`` in the sparse form :class:`SparseInputLinear` consumes."""
        local, cols, vals = self.entries(rows)
        counts = torch.bincount(local, minlength=len(rows))
        return RowBatch(cols, vals, torch.cumsum(counts, 0) - counts, len(rows), self.n_cols)

    def dense(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows`` as a dense (len(rows), n_cols) float tensor, zeros where nothing is stored."""
        local, cols, vals = self.entries(rows)
        out = torch.zeros(len(rows), self.n_cols, device=self.values.device)
        out[local, cols] = vals
        return out

    def blocks(self, size: int = 1024) -> list[torch.Tensor]:
        """All row indices in consecutive blocks (for scoring every row without a big matrix)."""
        dev = self.indptr.device
        return [
            torch.arange(s, min(s + size, self.n_rows), device=dev)
            for s in range(0, self.n_rows, size)
        ]


def mean_entries_per_row(rows: RowMatrix) -> float:
    """Stored entries per non-empty row: the constant that turns a per-batch sum into a mean."""
    n = int((rows.lengths() > 0).sum())
    return rows.nnz / max(n, 1) if n else 1.0


def xavier_linear(n_in: int, n_out: int) -> nn.Linear:
    """A linear layer with Glorot-uniform weights and zero bias (the AutoRec/DeepRec init)."""
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer
