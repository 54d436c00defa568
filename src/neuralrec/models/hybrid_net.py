"""The network of the MF + DNN hybrid and the batches it trains on.

Item tower (the lectures' hybrid): ``x_i = [e_i (item id), mean of genre embeddings
(nn.EmbeddingBag), average rating, year, log rating count]`` -> dense ReLU layers -> ``z_i``;
the item vector ``h_i`` and the item bias ``b_i`` are linear read-outs of ``z_i``. User side: ``p_u = e_u (user id) + Σ_fields f_u + sqrtN-pooled
history embeddings`` (Koren 2008, SVD++'s implicit term), ``a_u`` the matching sum of biases.
Score: ``s_ui = μ + a_u + b(h_i) + p_uᵀh_i``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


class HybridNet(nn.Module):
    """Item tower over id + metadata, user vectors from id, fields and pooled history."""

    def __init__(
        self,
        *,
        n_users: int,
        n_items: int,
        n_genres: int,
        n_dense: int,
        user_field_sizes: Sequence[int],
        id_dim: int,
        genre_dim: int,
        layers: Sequence[int],
        factors: int,
        dropout: float,
        history: bool,
        rated_history: bool,
        rating_dim: int,
        liked_head: bool = False,
        liked_threshold: float = 4.0,
        init_std: float,
        offset: float,
    ) -> None:
        super().__init__()
        d = int(factors)
        self.item_id = nn.Embedding(n_items, id_dim, sparse=True)
        # one spare row so a vocabulary without genres still builds; mean of an empty bag is 0
        self.genre = nn.EmbeddingBag(n_genres + 1, genre_dim, mode="mean")
        blocks: list[nn.Module] = []
        width = id_dim + genre_dim + n_dense + rating_dim
        # raters: user embeddings pooled over an item's training ratings (I-AutoRec's encoder
        # input V·r_i as one more tower input; Sedhain et al. 2015)
        self.rating_dim = rating_dim
        if rating_dim:
            self.raters = nn.Embedding(n_users, rating_dim)
            nn.init.normal_(self.raters.weight, 0.0, init_std)
        for size in layers:
            blocks += [nn.Linear(width, int(size)), nn.ReLU()]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            width = int(size)
        self.tower = nn.Sequential(*blocks)
        # a linear read-out: a ReLU here would make every item vector non-negative, and the
        # model then barely learns user-item interactions (RMSE 0.90 instead of 0.79 on the
        # synthetic data of the tests)
        self.item_out = nn.Linear(width, d)
        self.item_bias_head = nn.Linear(width, 1)
        self.user_id = nn.Embedding(n_users, d, sparse=True)
        self.user_bias = nn.Embedding(n_users, 1, sparse=True)
        self.history = history
        if history:
            self.hist = nn.Embedding(n_items, d, sparse=True)
            self.hist_bias = nn.Embedding(n_items, 1, sparse=True)
            nn.init.normal_(self.hist.weight, 0.0, init_std)
            nn.init.zeros_(self.hist_bias.weight)
        # history embeddings weighted by the user's centred rating (NSVD / Koren 2008's
        # asymmetric-SVD term): how the user rated, not only what
        self.rated_history = rated_history
        if rated_history:
            self.hist_r = nn.Embedding(n_items, d, sparse=True)
            nn.init.normal_(self.hist_r.weight, 0.0, init_std)
        # slope k and threshold t of the auxiliary "liked" read-out σ(k·(score − t)); t starts
        # half a star below the label threshold, where a rating model's scores cross it
        if liked_head:
            self.liked = nn.Parameter(torch.tensor([2.0, liked_threshold - 0.5]))
        # a user field's code gets a vector and a bias (last column); code 0 = unknown
        self.fields = nn.ModuleList(nn.Embedding(int(s), d + 1) for s in user_field_sizes)
        for e in (self.item_id, self.user_id, *self.fields):
            nn.init.normal_(e.weight, 0.0, init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.normal_(self.genre.weight, 0.0, 0.1)
        self.register_buffer("offset", torch.tensor(float(offset)))

    @property
    def dim(self) -> int:
        return self.user_id.embedding_dim

    def genre_vectors(self, offsets: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Mean genre embedding of each bag (``offsets`` has one entry per bag plus the end)."""
        return self.genre(indices, offsets[:-1])

    def items(
        self,
        id_vec: torch.Tensor,
        genre_vec: torch.Tensor,
        dense: torch.Tensor,
        rated: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Item vectors ``h`` and item biases ``b`` from the tower's inputs (``rated``: the
        pooled rater embeddings; zeros when omitted, as for an item nobody has rated)."""
        parts = [id_vec, genre_vec, dense]
        if self.rating_dim:
            if rated is None:
                rated = torch.zeros(len(dense), self.rating_dim, device=dense.device)
            parts.append(rated)
        z = self.tower(torch.cat(parts, dim=1))
        return self.item_out(z), self.item_bias_head(z).squeeze(1)

    def field_terms(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed field vectors and biases for ``codes`` (rows x fields)."""
        d = self.dim
        if not len(self.fields):
            n = codes.shape[0]
            return torch.zeros(n, d, device=codes.device), torch.zeros(n, device=codes.device)
        total = sum(emb(codes[:, k]) for k, emb in enumerate(self.fields))
        return total[:, :d], total[:, d]


def gather_rows(
    indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The entries of CSR ``rows``: (positions into ``indices``, segment of each, row lengths)."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    first = np.concatenate([[0], np.cumsum(lens)[:-1]])
    pos = np.repeat(starts - first, lens) + np.arange(int(lens.sum()))
    return pos, np.repeat(np.arange(len(rows)), lens), lens


def pool_history_rows(
    net: HybridNet,
    indptr: np.ndarray,
    indices: np.ndarray,
    users: torch.Tensor,
    items: torch.Tensor,
    values: np.ndarray,
    own: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """sqrtN-pooled history vector and bias of each training row's user, leaving the row's own
    item out (at test time the candidate is never in the history either).

    ``indptr``/``indices``/``values`` hold every user's training items and centred ratings
    (CSR); ``own`` is each row's centred rating. Each batch pools the full histories of its
    users, so the cost per batch is the history length of the users in it.
    """
    dev = users.device
    uniq, inv = torch.unique(users, return_inverse=True)
    pos, seg, lens = gather_rows(indptr, indices, uniq.cpu().numpy())
    hist_items = torch.from_numpy(indices[pos].astype(np.int64)).to(dev)
    seg_t = torch.from_numpy(seg).to(dev)
    n = len(uniq)
    sums = torch.zeros(n, net.dim, device=dev).index_add(0, seg_t, net.hist(hist_items))
    bsum = torch.zeros(n, device=dev).index_add(0, seg_t, net.hist_bias(hist_items).squeeze(1))
    y = net.hist(items)
    c = net.hist_bias(items).squeeze(1)
    vec = sums[inv] - y
    if net.rated_history:
        w = torch.from_numpy(values[pos].astype(np.float32)).to(dev).unsqueeze(1)
        rsum = torch.zeros(n, net.dim, device=dev).index_add(0, seg_t, net.hist_r(hist_items) * w)
        vec = vec + rsum[inv] - own.unsqueeze(1) * net.hist_r(items)
    others = torch.from_numpy(lens.astype(np.float32)).to(dev)[inv] - 1
    norm = torch.where(others > 0, others.clamp_min(1).sqrt(), torch.ones_like(others))
    return vec / norm.unsqueeze(1), (bsum[inv] - c) / norm
