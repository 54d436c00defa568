"""The network behind GMF, MLP and NeuMF (see :mod:`neuralrec.models.ncf`).

One user table and one item table hold ``[GMF part | MLP part]`` side by side, so a batch does
two sparse lookups and the row-sparse optimizer updates two tables. The first tower layer
W₁[p; q] is split as W₁ᵘp + W₁ⁱq: the user half is computed once per row and broadcast over
the positive and its negatives, and for full scoring the item half is computed once for all
items instead of once per (user, item) pair.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralrec.models._fold_in import fit_row
from neuralrec.models.ncf_fused import FusedHead, head_backward, head_forward
from neuralrec.training.losses import loss_and_grad

#: GMF's output weights h: learned (the NCF paper), or fixed at ones
GMFHead = Literal["learned", "ones"]
GMF_HEADS = get_args(GMFHead)
#: (users x items x width) floats per chunk when scoring every item through the tower
_SCORE_CHUNK = 1 << 23


class NCFModule(nn.Module):
    """GMF (``gmf_dim`` > 0), MLP tower (``layers`` non-empty) or both (NeuMF)."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        gmf_dim: int,
        layers: tuple[int, ...],
        *,
        dropout: float = 0.0,
        init_std: float = 0.01,
        mu: float = 0.0,
        gmf_head: GMFHead = "learned",
    ) -> None:
        super().__init__()
        if gmf_head not in GMF_HEADS:
            raise ValueError(f"gmf_head must be one of {GMF_HEADS}, got {gmf_head!r}")
        self.gmf_dim = gmf_dim
        #: GMF's output weights fixed at one: GMF is then plain MF (NCF section 3.2)
        self.fixed_gmf_head = gmf_head == "ones" and gmf_dim > 0
        self.mlp_dim = layers[0] // 2 if layers else 0
        self.dropout = dropout
        width = gmf_dim + self.mlp_dim
        self.user = nn.Embedding(n_users, width, sparse=True)
        self.item = nn.Embedding(n_items, width, sparse=True)
        nn.init.normal_(self.user.weight, 0.0, init_std)
        nn.init.normal_(self.item.weight, 0.0, init_std)
        self.tower = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(layers))
        for layer in self.tower:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        head_in = gmf_dim + (layers[-1] if layers else 0)
        self.out = nn.Linear(head_in, 1)
        nn.init.kaiming_uniform_(self.out.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.out.bias)
        if self.fixed_gmf_head:
            # never read (head_weight puts ones there), kept at one for a plain state dict
            nn.init.ones_(self.out.weight[:, :gmf_dim])
        self.register_buffer("mu", torch.tensor(float(mu)))
        # work space of the compiled distinct-rows scan, per table size (not state)
        self._marks: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ scoring
    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores (B, m) of ``users`` (B,) against ``items`` (B, m) (a positive and negatives).

        With gradients on, the head runs as one fused autograd node (:class:`FusedHead`):
        same values and gradients as the layer-by-layer graph, a third of the autograd work.
        """
        return self.scores_and_penalty(users, items, penalty=False)[0]

    def scores_and_penalty(
        self, users: torch.Tensor, items: torch.Tensor, penalty: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Scores plus Σ‖p_u‖² + Σ‖q_i‖² over the batch's rows, counted per occurrence (the
        rows' L2 penalty; None unless ``penalty``).

        Training on the CPU looks each distinct user and item up once (the fused head reads
        them through the inverse indices): its first layer then runs on about half the rows.
        """
        if not (torch.is_grad_enabled() and users.device.type == "cpu"):
            ue, ie = self.user(users), self.item(items)
            sq = ue.square().sum() + ie.square().sum() if penalty else None
            return self._scores(ue, ie), sq
        uniq_u, u_inv = self._distinct(users, self.user.num_embeddings)
        uniq_i, i_inv = self._distinct(items, self.item.num_embeddings)
        ue, ie = self.user(uniq_u), self.item(uniq_i)
        sq = _occurrence_penalty(ue, ie, u_inv, i_inv)[0] if penalty else None
        return self._scores(ue, ie, u_inv, i_inv), sq

    @torch.no_grad()
    def loss_with_grads(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        loss: str,
        l2: float,
        target: torch.Tensor | None = None,
        dense_l2: float = 0.0,
    ) -> torch.Tensor:
        """One training batch's loss (``loss`` on the scores of ``users`` (B,) against
        ``items`` (B, m), plus ``l2`` times the rows' penalty per positive and ``dense_l2``
        times :meth:`dense_penalty`), with every parameter's ``.grad`` written directly:
        sparse and coalesced for the two tables.

        The same arithmetic as :meth:`scores_and_penalty` followed by ``backward()``, without
        the autograd graph, whose engine, the loss's nodes and the tables' sparse backward
        cost a tenth of a NeuMF epoch on the CPU. Single process only: the data-parallel
        wrapper averages gradients through autograd hooks.
        """
        uniq_u, u_inv = self._distinct(users, self.user.num_embeddings)
        uniq_i, i_inv = self._distinct(items, self.item.num_embeddings)
        ue = self.user.weight.index_select(0, uniq_u)
        ie = self.item.weight.index_select(0, uniq_i)
        tower = [t for layer in self.tower for t in (layer.weight, layer.bias)]
        w_out, b_out = self.head_weight(), self.out.bias
        g, p = self.gmf_dim, self.dropout if self.training else 0.0
        seed = int(torch.randint(0, 2**62, (1,))) if p else None
        mu = float(self.mu)
        logits, hs = head_forward(ue, ie, u_inv, i_inv, g, p, seed, mu, w_out, b_out, tower)
        value, dlogits = loss_and_grad(loss, logits, target)
        g_ue, g_ie, g_wout, g_bout, g_tower = head_backward(
            dlogits, ue, ie, u_inv, i_inv, g, p, w_out, tower, hs
        )
        if l2:
            # λ Σ‖row‖² counted per occurrence, divided by the batch's positives
            sq, n_u, n_i = _occurrence_penalty(ue, ie, u_inv, i_inv)
            scale = l2 / len(users)
            value = value + scale * sq
            g_ue.addcmul_(ue, n_u.unsqueeze(1), value=2 * scale)
            g_ie.addcmul_(ie, n_i.unsqueeze(1), value=2 * scale)
        for table, rows, grad in ((self.user, uniq_u, g_ue), (self.item, uniq_i, g_ie)):
            table.weight.grad = torch.sparse_coo_tensor(
                rows.unsqueeze(0),
                grad,
                table.weight.shape,
                is_coalesced=True,
                check_invariants=False,
            )
        if self.fixed_gmf_head:
            g_wout[:, :g] = 0.0
        for param, grad in zip(tower, g_tower, strict=True):
            param.grad = grad
        self.out.weight.grad, b_out.grad = g_wout, g_bout
        if dense_l2:
            value = value + dense_l2 * self.dense_penalty()
            for layer in self.tower:
                layer.weight.grad.add_(layer.weight, alpha=2 * dense_l2)
            h0 = self._trainable_head_from
            g_wout[:, h0:].add_(self.out.weight[:, h0:], alpha=2 * dense_l2)
        return value

    def head_weight(self) -> torch.Tensor:
        """The output layer's weights as scoring uses them: ``out.weight``, with ones over the
        GMF part when that head is fixed (autograd then sends no gradient there)."""
        w = self.out.weight
        if not self.fixed_gmf_head:
            return w
        return torch.cat([w.new_ones(1, self.gmf_dim), w[:, self.gmf_dim :]], dim=1)

    def dense_weights(self) -> list[torch.Tensor]:
        """The weight matrices ``dense_l2`` penalises: the tower's and the output layer's
        trainable part (biases and a fixed GMF head are left alone)."""
        h0 = self._trainable_head_from
        return [layer.weight for layer in self.tower] + [self.out.weight[:, h0:]]

    @property
    def _trainable_head_from(self) -> int:
        """First trainable column of ``out.weight`` (past a fixed GMF head)."""
        return self.gmf_dim if self.fixed_gmf_head else 0

    def dense_penalty(self) -> torch.Tensor:
        """Σ‖W‖² over :meth:`dense_weights`."""
        return sum(w.square().sum() for w in self.dense_weights())  # type: ignore[return-value]

    def _distinct(self, idx: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """torch.unique(idx, return_inverse=True); for a table not much larger than the batch,
        one compiled scan of its rows (a sixth of the time of unique's sort)."""
        if n_rows > 16 * idx.numel() or idx.device.type != "cpu":
            return torch.unique(idx, return_inverse=True)
        from neuralrec.training import kernels

        mark = self._marks.get(n_rows)
        if mark is None:
            mark = self._marks[n_rows] = np.full(n_rows, -1, dtype=np.int64)
        uniq = torch.empty(min(n_rows, idx.numel()), dtype=torch.int64)
        inv = torch.empty(idx.shape, dtype=torch.int64)
        flat = idx.reshape(-1).numpy()
        count = kernels.distinct_rows(flat, mark, uniq.numpy(), inv.view(-1).numpy())
        return uniq[:count], inv

    def _scores(
        self,
        ue: torch.Tensor,
        ie: torch.Tensor,
        u_inv: torch.Tensor | None = None,
        i_inv: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return self._head(ue, ie, None)
        params = [self.head_weight(), self.out.bias]
        for layer in self.tower:
            params += [layer.weight, layer.bias]
        mask_seed = None
        if self.training and self.dropout:
            mask_seed = int(torch.randint(0, 2**62, (1,)))
        args = (
            u_inv,
            i_inv,
            self.gmf_dim,
            self.dropout if self.training else 0.0,
            mask_seed,
            float(self.mu),
        )
        if ue.is_cuda and torch.is_autocast_enabled("cuda"):
            # autocast does not reach inside a custom autograd node: cast its inputs here, where
            # autograd sees the casts, so the node runs wholly in bfloat16 (forward and
            # backward alike) and the parameters still receive float32 gradients
            half = torch.get_autocast_dtype("cuda")
            ue, ie, *params = (t.to(half) for t in (ue, ie, *params))
            with torch.autocast("cuda", enabled=False):
                return FusedHead.apply(ue, ie, *args, *params)
        return FusedHead.apply(ue, ie, *args, *params)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for ``users``: (len(users), n_items)."""
        ue = self.user(users)
        items = self.item.weight
        if not self.mlp_dim:
            return self._head(ue, items.unsqueeze(0), None)
        item_half = self._item_half(items[:, self.gmf_dim :])
        width = self.tower[0].out_features
        step = max(1, _SCORE_CHUNK // max(1, items.shape[0] * width))
        rows = []
        for s in range(0, len(ue), step):
            block = ue[s : s + step]
            rows.append(self._head(block, items.unsqueeze(0), item_half.unsqueeze(0)))
        return torch.cat(rows)

    def _head(
        self, ue: torch.Tensor, ie: torch.Tensor, item_half: torch.Tensor | None
    ) -> torch.Tensor:
        # ue (B, D); ie (B or 1, m, D); item_half (1, m, h1) when precomputed
        g = self.gmf_dim
        logits = self.out.bias + self.mu
        if g:
            logits = logits + self._gmf_logits(ue, ie)
        if self.mlp_dim:
            first = self.tower[0]
            user_half = F.linear(ue[:, g:], first.weight[:, : self.mlp_dim], first.bias)
            if item_half is None:
                item_half = self._item_half(ie[..., g:])
            h = self._drop(torch.relu(user_half.unsqueeze(1) + item_half))
            for layer in self.tower[1:]:
                h = self._drop(torch.relu(layer(h)))
            logits = logits + h @ self.out.weight[0, g:]
        return logits

    def _gmf_logits(self, ue: torch.Tensor, ie: torch.Tensor) -> torch.Tensor:
        # hᵀ(p ⊙ q) = (h ⊙ p)ᵀ q: one batched matrix-vector product per row
        g = self.gmf_dim
        hp = ue[:, :g] * self.head_weight()[0, :g]
        if ie.shape[0] == 1:
            return hp @ ie[0, :, :g].T
        return torch.bmm(ie[..., :g], hp.unsqueeze(2)).squeeze(2)

    def _item_half(self, item_mlp: torch.Tensor) -> torch.Tensor:
        return F.linear(item_mlp, self.tower[0].weight[:, self.mlp_dim :])

    def _drop(self, h: torch.Tensor) -> torch.Tensor:
        return F.dropout(h, self.dropout, self.training) if self.dropout else h

    # ------------------------------------------------------------------ fold-in
    def fold_in(self, items: torch.Tensor, start: torch.Tensor, **objective: Any) -> torch.Tensor:
        """A user row for a visitor known by ``items`` (indices), the network and the item rows
        held fixed, by the training objective: ``objective`` holds the keywords of
        :func:`~neuralrec.models._fold_in.fit_row` (loss, l2, negatives, neg_weights, ...)."""
        was_training = self.training
        self.eval()  # no dropout
        try:
            ie = self.item.weight.detach().unsqueeze(0)
            half = self._item_half(ie[..., self.gmf_dim :]).detach() if self.mlp_dim else None
            return fit_row(lambda user: self._head(user, ie, half)[0], start, items, **objective)
        finally:  # a failed fit must not leave a model in training switched to eval mode
            self.train(was_training)

    def score_row(self, user: torch.Tensor) -> torch.Tensor:
        """Scores of every item for one user row given directly (e.g. a folded-in visitor)."""
        ie = self.item.weight.unsqueeze(0)
        half = self._item_half(ie[..., self.gmf_dim :]) if self.mlp_dim else None
        return self._head(user.reshape(1, -1), ie, half)[0]

    # ------------------------------------------------------------------ pretraining
    @torch.no_grad()
    def load_parts(self, gmf: NCFModule | None, mlp: NCFModule | None, alpha: float | None) -> None:
        """Copy a trained GMF and/or MLP into this NeuMF; the head becomes
        [α h_GMF; (1 − α) h_MLP] with bias α b_GMF + (1 − α) b_MLP (both given) or keeps
        the pretrained part's head as is (one given). Under a fixed GMF head (ones), the GMF
        part's weights are folded into its item rows instead (α h_GMF ⊙ q), which leaves the
        scores unchanged."""
        g = self.gmf_dim
        if gmf is not None:
            if gmf.gmf_dim != g:
                raise ValueError(f"pretrained gmf has factors={gmf.gmf_dim}, neumf has {g}")
            self.user.weight[:, :g] = gmf.user.weight
            head = gmf.head_weight() * (1.0 if alpha is None else alpha)
            if self.fixed_gmf_head:
                # h ⊙ q moved into the item rows: the same scores under a head of ones
                self.item.weight[:, :g] = gmf.item.weight * head[:, :g]
            else:
                self.item.weight[:, :g] = gmf.item.weight
                self.out.weight[:, :g] = head
        if mlp is not None:
            shapes = [tuple(layer.weight.shape) for layer in mlp.tower]
            if shapes != [tuple(layer.weight.shape) for layer in self.tower]:
                raise ValueError("pretrained mlp has other layers than this neumf")
            self.user.weight[:, g:] = mlp.user.weight
            self.item.weight[:, g:] = mlp.item.weight
            for mine, theirs in zip(self.tower, mlp.tower, strict=True):
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)
            self.out.weight[:, g:] = mlp.out.weight * (1.0 if alpha is None else 1.0 - alpha)
        if gmf is not None and mlp is not None and alpha is not None:
            self.out.bias.copy_(alpha * gmf.out.bias + (1.0 - alpha) * mlp.out.bias)
        else:
            self.out.bias.copy_((gmf or mlp).out.bias)  # type: ignore[union-attr]

    def item_vectors(self) -> torch.Tensor:
        """Item representations for similarity: h ⊙ q (GMF part) beside the MLP embedding."""
        g = self.gmf_dim
        w = self.item.weight.detach()
        parts = []
        if g:
            parts.append(w[:, :g] * self.head_weight().detach()[0, :g])
        if self.mlp_dim:
            parts.append(w[:, g:])
        return torch.cat(parts, dim=1)


def _occurrence_penalty(
    ue: torch.Tensor, ie: torch.Tensor, u_inv: torch.Tensor, i_inv: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Σ‖row‖² over a batch's rows counted per occurrence, from the distinct rows ``ue``/``ie``
    and their inverse indices; with each distinct row's count (users, items)."""
    n_u = torch.bincount(u_inv, minlength=len(ue)).to(ue.dtype)
    n_i = torch.bincount(i_inv.reshape(-1), minlength=len(ie)).to(ie.dtype)
    return n_u @ ue.square().sum(1) + n_i @ ie.square().sum(1), n_u, n_i
