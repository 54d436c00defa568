"""The network of the MF + DNN hybrid and the batches it trains on.

Item tower (the lectures' hybrid): ``x_i = [e_i (item id), mean of genre embeddings (nn.EmbeddingBag),
average rating, year, log rating count]`` -> dense ReLU layers -> ``h_i``; the item bias is a
linear function of ``h_i``. User side: ``p_u = e_u (user id) + Σ_fields f_u + sqrtN-pooled
history embeddings`` (Koren 2008, SVD++'s implicit term), ``a_u`` the matching sum of biases.
Score: ``s_ui = μ + a_u + b(h_i) + p_uᵀh_i``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from neuralrec.training.batches import Batch, epoch_generator


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
        dropout: float,
        history: bool,
        init_std: float,
        offset: float,
    ) -> None:
        super().__init__()
        d = int(layers[-1])
        self.item_id = nn.Embedding(n_items, id_dim, sparse=True)
        # one spare row so a vocabulary without genres still builds; mean of an empty bag is 0
        self.genre = nn.EmbeddingBag(n_genres + 1, genre_dim, mode="mean")
        blocks: list[nn.Module] = []
        width = id_dim + genre_dim + n_dense
        for size in layers:
            blocks += [nn.Linear(width, int(size)), nn.ReLU()]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            width = int(size)
        self.tower = nn.Sequential(*blocks)
        self.item_bias_head = nn.Linear(d, 1)
        self.user_id = nn.Embedding(n_users, d, sparse=True)
        self.user_bias = nn.Embedding(n_users, 1, sparse=True)
        self.history = history
        if history:
            self.hist = nn.Embedding(n_items, d, sparse=True)
            self.hist_bias = nn.Embedding(n_items, 1, sparse=True)
            nn.init.normal_(self.hist.weight, 0.0, init_std)
            nn.init.zeros_(self.hist_bias.weight)
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
        self, id_vec: torch.Tensor, genre_vec: torch.Tensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Item vectors ``h`` and item biases ``b`` from the tower's inputs."""
        h = self.tower(torch.cat([id_vec, genre_vec, dense], dim=1))
        return h, self.item_bias_head(h).squeeze(1)

    def field_terms(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed field vectors and biases for ``codes`` (rows x fields)."""
        d = self.dim
        if not len(self.fields):
            n = codes.shape[0]
            return torch.zeros(n, d), torch.zeros(n)
        total = sum(emb(codes[:, k]) for k, emb in enumerate(self.fields))
        return total[:, :d], total[:, d]


def pool_history_loo(
    net: HybridNet, items: torch.Tensor, seg: torch.Tensor, n_users: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """sqrtN-pooled history vector and bias of each row's user, leaving the row's item out.

    ``seg`` maps each row to its user's slot in the batch (batches hold whole users), so the
    batch itself contains every history it pools. Returns the pooled vector, bias and the
    history rows (for the L2 penalty).
    """
    y = net.hist(items)
    c = net.hist_bias(items).squeeze(1)
    sums = torch.zeros(n_users, y.shape[1]).index_add(0, seg, y)
    bsum = torch.zeros(n_users).index_add(0, seg, c)
    cnt = torch.zeros(n_users).index_add(0, seg, torch.ones_like(c))
    # the candidate is left out of its own history, as at test time it is never in it
    others = (cnt[seg] - 1).clamp_min(0)
    norm = torch.where(others > 0, others.sqrt(), torch.ones_like(others))
    return (sums[seg] - y) / norm.unsqueeze(1), (bsum[seg] - c) / norm, y


class UserRowBlocks:
    """Batches made of whole users (each user's rows land in one batch), users reshuffled every
    epoch; yields ``(users, items, ratings, seg, n_block_users)`` per batch.

    The same scheme as mf-history's batches, keeping the user index of every row, which the
    hybrid needs for its user-id and user-field terms.
    """

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        targets: np.ndarray,
        n_users: int,
        batch_size: int,
    ) -> None:
        order = np.argsort(users, kind="stable")
        self.users = torch.from_numpy(users[order].astype(np.int64))
        self.items = torch.from_numpy(items[order].astype(np.int64))
        self.targets = torch.from_numpy(targets[order].astype(np.float32))
        self.counts = np.bincount(users, minlength=n_users)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.present = np.flatnonzero(self.counts)
        self.batch_size = int(batch_size)

    def num_batches(self, world_size: int = 1) -> int:
        return max(1, -(-int(self.counts.sum()) // (self.batch_size * world_size)))

    def epoch(self, epoch: int, seed: int, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        gen = epoch_generator(seed, epoch)
        perm = self.present[torch.randperm(len(self.present), generator=gen).numpy()]
        perm = perm[rank::world_size]
        ends = np.cumsum(self.counts[perm])
        cut = 0
        while cut < len(perm):
            # take users until the batch holds batch_size rows (at least one user)
            done = ends[cut - 1] if cut else 0
            stop = max(int(np.searchsorted(ends, done + self.batch_size, side="right")), cut + 1)
            block = perm[cut:stop]
            cut = stop
            lens = self.counts[block]
            first = np.concatenate([[0], np.cumsum(lens)[:-1]])
            rows = torch.from_numpy(np.repeat(self.starts[block] - first, lens) + np.arange(lens.sum()))
            seg = torch.from_numpy(np.repeat(np.arange(len(block)), lens))
            yield (
                self.users[rows],
                self.items[rows],
                self.targets[rows],
                seg,
                torch.tensor(len(block)),
            )
