"""Negative sampling for implicit feedback: items a user has not interacted with in training.

Two distributions (Rendle et al. 2009 and He et al. 2017 draw uniformly; popularity-weighted
sampling follows word2vec's unigram^alpha, Mikolov et al. 2013):

- ``uniform``: exact and loop-free. The r-th item outside a user's sorted history is
  ``r + #{j : s_j - j <= r}`` (s the sorted history), so one ``searchsorted`` per sample maps a
  uniform rank in ``[0, n_items - |history|)`` to an unseen item, with no rejection at all.
- ``popularity``: p(i) ∝ count(i)^alpha by inverse-CDF draws, vectorised over the whole epoch;
  draws that hit a training item are re-drawn (only those), and users whose unseen mass is too
  small for rejection to finish quickly are drawn exactly from their masked distribution.

Every draw comes from the caller's ``torch.Generator`` (the trainer's ``(seed, epoch)``
generator), so negatives are fresh every epoch and identical on a rerun.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from neuralrec.data.interactions import Interactions
from neuralrec.errors import ConfigError, DataError

Distribution = Literal["uniform", "popularity"]
#: rejection rounds for popularity sampling before the exact per-user fallback
_MAX_ROUNDS = 8


class NegativeSampler:
    """Draws items each user did not interact with in ``train``.

    ``alpha`` is the popularity exponent (0 gives uniform weights, 1 plain popularity,
    0.75 word2vec's choice); items never seen in training get weight 0 under ``popularity``.
    """

    def __init__(
        self,
        train: Interactions | sp.csr_matrix,
        distribution: Distribution = "uniform",
        alpha: float = 1.0,
    ) -> None:
        if distribution not in ("uniform", "popularity"):
            raise ConfigError(
                f"unknown negative distribution {distribution!r} (uniform, popularity)"
            )
        csr = train.tocsr("ones") if isinstance(train, Interactions) else sp.csr_matrix(train)
        csr.sum_duplicates()
        csr.sort_indices()
        self.n_users, self.n_items = csr.shape
        self.distribution = distribution
        self.indptr = torch.from_numpy(csr.indptr.astype(np.int64))
        items = torch.from_numpy(csr.indices.astype(np.int64))
        self.degree = self.indptr[1:] - self.indptr[:-1]
        self.n_unseen = self.n_items - self.degree
        owner = torch.repeat_interleave(torch.arange(self.n_users), self.degree)
        # sorted (user, item) keys: membership tests are one searchsorted
        self._keys = owner * self.n_items + items
        # s_j - j within each user, offset by user so the whole array stays sorted
        local = torch.arange(len(items)) - self.indptr[owner]
        self._gap_keys = owner * self.n_items + (items - local)
        if distribution == "popularity":
            counts = torch.bincount(items, minlength=self.n_items).double()
            weights = counts.pow(alpha) * (counts > 0)
            if weights.sum() <= 0:
                raise DataError("popularity sampling needs at least one training interaction")
            self._weights = weights / weights.sum()
            self._cdf = torch.cumsum(self._weights, 0)
            self._cdf[-1] = 1.0
            # unseen probability mass per user decides who may need the exact fallback
            seen_mass = torch.zeros(self.n_users, dtype=torch.float64)
            seen_mass.index_add_(0, owner, self._weights[items])
            self._unseen_mass = (1.0 - seen_mass).clamp_min(0.0)

    # ------------------------------------------------------------------ public
    def sample(
        self, users: torch.Tensor | np.ndarray, n: int, generator: torch.Generator
    ) -> torch.Tensor:
        """An int64 tensor (len(users), n) of items outside each user's training history.

        Draws are with replacement across a row (as RecBole and the NCF code do). A user with
        no unseen item left raises :class:`DataError`.
        """
        users = torch.as_tensor(np.asarray(users), dtype=torch.int64).reshape(-1)
        if n < 1:
            raise ConfigError(f"the number of negatives must be >= 1, got {n}")
        if len(users) and int(self.n_unseen[users].min()) <= 0:
            bad = int(users[self.n_unseen[users] <= 0][0])
            raise DataError(f"user index {bad} interacted with every item: no negative exists")
        flat = users.repeat_interleave(n)
        if self.distribution == "uniform":
            out = self._uniform(flat, generator)
        else:
            out = self._popularity(flat, generator)
        return out.view(len(users), n)

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Whether each (user, item) pair is a training interaction (same shapes)."""
        keys = users * self.n_items + items
        if len(self._keys) == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        pos = torch.searchsorted(self._keys, keys).clamp_max(len(self._keys) - 1)
        return self._keys[pos] == keys

    # ------------------------------------------------------------------ distributions
    def _uniform(self, users: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        # a uniform rank among the user's unseen items, mapped to the item by counting how
        # many history items precede it (no rejection, so no loop)
        u01 = torch.rand(len(users), generator=gen, dtype=torch.float64)
        rank = (u01 * self.n_unseen[users]).long().clamp_max(self.n_unseen[users] - 1)
        target = users * self.n_items + rank
        before = torch.searchsorted(self._gap_keys, target, right=True) - self.indptr[users]
        return rank + before

    def _popularity(self, users: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        out = torch.empty(len(users), dtype=torch.int64)
        # users whose unseen mass is tiny would need many rounds: draw them exactly
        exact = self._unseen_mass[users] < 0.05
        todo = torch.nonzero(~exact).squeeze(1)
        for _ in range(_MAX_ROUNDS):
            if len(todo) == 0:
                break
            draw = self._draw_cdf(len(todo), gen)
            out[todo] = draw
            todo = todo[self.is_positive(users[todo], draw)]
        left = torch.cat([torch.nonzero(exact).squeeze(1), todo])
        if len(left):
            out[left] = self._exact(users[left], gen)
        return out

    def _draw_cdf(self, n: int, gen: torch.Generator) -> torch.Tensor:
        u01 = torch.rand(n, generator=gen, dtype=torch.float64)
        return torch.searchsorted(self._cdf, u01, right=True).clamp_max(self.n_items - 1)

    def _exact(self, users: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Popularity draws from each user's masked distribution (few users, so dense is fine)."""
        uniq, inv = torch.unique(users, return_inverse=True)
        out = torch.empty(len(users), dtype=torch.int64)
        for start in range(0, len(uniq), 256):
            block = uniq[start : start + 256]
            w = self._weights.expand(len(block), -1).clone()
            for row, u in enumerate(block.tolist()):  # one row per user, not per sample
                w[row, self._history(u)] = 0.0
            # a user whose unseen items all have zero popularity falls back to uniform over them
            empty = w.sum(1) <= 0
            if empty.any():
                w[empty] = 1.0
                for row in torch.nonzero(empty).squeeze(1).tolist():
                    w[row, self._history(int(block[row]))] = 0.0
            sel = (inv >= start) & (inv < start + len(block))
            idx = torch.nonzero(sel).squeeze(1)
            rows = inv[idx] - start
            counts = torch.bincount(rows, minlength=len(block))
            draws = torch.multinomial(w, int(counts.max()), replacement=True, generator=gen)
            # the k-th request of a row takes that row's k-th draw
            order = torch.argsort(rows, stable=True)
            starts = torch.cumsum(counts, 0) - counts
            k = torch.arange(len(idx)) - starts[rows[order]]
            out[idx[order]] = draws[rows[order], k]
        return out

    def _history(self, user: int) -> torch.Tensor:
        lo, hi = int(self.indptr[user]), int(self.indptr[user + 1])
        return self._keys[lo:hi] - user * self.n_items
