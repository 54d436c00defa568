"""MF + DNN: the lectures' hybrid of matrix factorisation and a dense network over item metadata.

``mf-dnn`` predicts ratings (squared error); ``mf-dnn-clf`` is the same network as a binary
classifier of "liked" (rating >= 4): σ(score), binary cross-entropy, outputs probabilities.
The network is in :mod:`neuralrec.models.hybrid_net`, its inputs in
:mod:`neuralrec.models.hybrid_features`. Cold start is built in: a share of training rows sees
the item as brand new (no id embedding, no rating statistics) and a share sees the user without
their id embedding, so the metadata path and the history path each learn to stand alone. See
docs/hybrid.md for the defaults and how they were chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from pydantic import Field
from torch import nn

from neuralrec.data.dataset import Dataset
from neuralrec.data.idmap import IdMap
from neuralrec.data.interactions import Interactions
from neuralrec.errors import ConfigError
from neuralrec.models.cold_start import ridge_fold_in
from neuralrec.models.hybrid_features import ItemSide, UserSide, build_item_side, build_user_side
from neuralrec.models.hybrid_net import HybridNet, gather_rows, pool_history_rows
from neuralrec.models.registry import register
from neuralrec.models.torch_base import TorchRecommender
from neuralrec.training.batches import Batch, BatchSource, TensorBatches
from neuralrec.training.config import LRSchedule, TrainConfig


class MFDNNConfig(TrainConfig):
    """Hyperparameters of :class:`MFDNN` (defaults chosen on a validation split: docs/hybrid.md)."""

    id_dim: int = Field(16, ge=1, description="item-id embedding size (tower input)")
    genre_dim: int = Field(8, ge=1, description="genre embedding size, mean-pooled per item")
    layers: tuple[int, ...] = Field(
        (64, 64), min_length=1, description="sizes of the item tower's dense ReLU layers"
    )
    factors: int = Field(32, ge=1, description="size of the item and user vectors")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout after each dense layer")
    id_dropout: float = Field(
        0.2, ge=0, lt=1, description="share of training rows that see the item as brand new"
    )
    user_id_dropout: float = Field(
        0.1, ge=0, lt=1, description="share of rows scored without the user-id embedding"
    )
    history: bool = Field(True, description="add the pooled embedding of the user's items")
    rated_history: bool = Field(
        True, description="also pool history embeddings weighted by the user's centred ratings"
    )
    rating_dim: int = Field(
        32, ge=0, description="size of the item's pooled-raters input (0: leave it out)"
    )
    user_features: bool = Field(True, description="use gender/age/occupation where present")
    avg_prior: float = Field(5.0, ge=0, description="damping of the average-rating input")
    positive_threshold: float = Field(4.0, description="rating >= this is a 'liked' label")
    liked_weight: float = Field(
        2.0,
        ge=0,
        description="weight of the auxiliary 'liked' loss: binary cross-entropy of "
        "σ(k·(score − t)) with learned k and t (0: squared error only)",
    )
    l2: float = Field(0.02, ge=0, description="λ on the embedding rows a batch uses")
    bias_l2: float = Field(0.005, ge=0)
    fold_in_l2: float = Field(
        5.0, gt=0, description="ridge λ when a new user's ratings refine the pooled vector"
    )
    init_std: float = Field(0.05, gt=0)
    # validation RMSE peaks near epoch 6 at a constant lr, then overfits fast: 8 cosine-decayed
    # epochs end at the optimum with or without early stopping (ml-latest-small valid 0.858)
    epochs: int = 8
    lr_schedule: LRSchedule = "cosine"
    batch_size: int = 1024
    optimizer: str = "adam"
    lr: float = 2e-3
    monitor: str = "rmse"
    patience: int = 4


class MFDNNClassifierConfig(MFDNNConfig):
    """Hyperparameters of :class:`MFDNNClassifier`."""

    liked_weight: float = 0.0  # the classifier's own loss is the liked loss
    monitor: str = "logloss"


@register
class MFDNN(TorchRecommender):
    """MF + DNN hybrid for rating prediction (item tower over id + genres + year + average
    rating; user vector from id, user fields and pooled history)."""

    name = "mf-dnn"
    Config = MFDNNConfig

    items_: ItemSide
    users_: UserSide | None
    extra_ids_: IdMap
    extra_: ItemSide | None

    # ------------------------------------------------------------------ building
    def _module_meta(self, train: Interactions, dataset: Dataset | None) -> dict[str, Any]:
        cfg = self.config
        if train.ratings is None:
            raise ConfigError(f"{self.name} needs explicit ratings")
        self.items_, self.extra_ids_, self.extra_ = build_item_side(dataset, train, cfg.avg_prior)
        self.users_ = build_user_side(dataset, train.user_ids) if cfg.user_features else None
        return {
            "n_users": train.n_users,
            "n_items": train.n_items,
            "offset": self._offset(train.ratings),
            "items": self.items_.meta(),
            "users": None
            if self.users_ is None
            else {"fields": list(self.users_.fields), "encoder": self.users_.encoder},
            "extra_ids": self.extra_ids_.to_list(),
        }

    def _offset(self, ratings: np.ndarray) -> float:
        return float(ratings.mean())

    def _fit(self, *args: Any, **kwargs: Any) -> None:
        super()._fit(*args, **kwargs)
        self._cache = None  # the trainer may have restored earlier (best) weights

    def _build_module(self, meta: Mapping[str, Any]) -> nn.Module:
        cfg = self.config
        users = meta["users"]
        sizes = (
            [len(users["encoder"][f]["categories"]) + 1 for f in users["fields"]] if users else []
        )
        return HybridNet(
            n_users=meta["n_users"],
            n_items=meta["n_items"],
            n_genres=len(meta["items"]["encoder"]["genre_vocab"]),
            n_dense=3,
            user_field_sizes=sizes,
            id_dim=cfg.id_dim,
            genre_dim=cfg.genre_dim,
            layers=cfg.layers,
            factors=cfg.factors,
            dropout=cfg.dropout,
            history=cfg.history,
            rated_history=cfg.history and cfg.rated_history,
            liked_head=cfg.liked_weight > 0,
            liked_threshold=cfg.positive_threshold,
            rating_dim=cfg.rating_dim,
            init_std=cfg.init_std,
            offset=meta["offset"],
        )

    def _prepare(self, train: Interactions, dataset: Dataset | None) -> None:
        # the training ratings in the order of the seen-items matrix (saved with the model)
        ratings = train.tocsr("ratings")
        ratings.sort_indices()
        self._set_ratings(ratings.data.astype(np.float32))

    def _set_ratings(self, values: np.ndarray) -> None:
        """Training ratings aligned with ``seen_`` -> history and pooled-raters matrices."""
        seen = self.seen_
        self._hist = seen
        self._ratings = values
        self._centred = values - np.float32(self.items_.mu)
        centred = sp.csr_matrix((self._centred, seen.indices, seen.indptr), seen.shape)
        self._rated = centred.T.tocsr()  # items x users
        self._rated.sort_indices()
        self._tensors_from_sides()

    def _tensors_from_sides(self) -> None:
        # on the module's device: training and the scoring tables index them with its tensors
        side, dev = self.items_, self.device
        self._g_off = torch.from_numpy(side.genre_offsets.astype(np.int64)).to(dev)
        self._g_idx = torch.from_numpy(side.genre_indices.astype(np.int64)).to(dev)
        self._year = torch.from_numpy(side.year_scaled.astype(np.float32)).to(dev)
        self._sum = torch.from_numpy(side.rating_sum.astype(np.float32)).to(dev)
        self._cnt = torch.from_numpy(side.rating_count.astype(np.float32)).to(dev)
        codes = self.users_.codes if self.users_ is not None else np.zeros((self.n_users, 0))
        self._codes = torch.from_numpy(codes.astype(np.int64)).to(dev)
        self._cache: dict[str, torch.Tensor] | None = None

    def _batches(self, train: Interactions) -> BatchSource:
        cols = [torch.from_numpy(x.astype(np.int64)) for x in (train.users, train.items)]
        cols.append(torch.from_numpy(train.ratings.astype(np.float32)))
        return TensorBatches([c.to(self.device) for c in cols], batch_size=self.config.batch_size)

    # ------------------------------------------------------------------ training
    def _dense_rows(
        self, items: torch.Tensor, ratings: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        """Dense inputs of training rows: statistics without the row's own rating (what a
        model sees at test time), and those of a brand-new item for the rows in ``~keep``."""
        side = self.items_
        cnt = (self._cnt[items] - 1).clamp_min(0)
        total = self._sum[items] - ratings
        lo, hi = side.encoder.rating.min_, side.encoder.rating.max_
        avg = (total + side.prior * side.mu) / (cnt + side.prior)
        cold = (side.mu - lo) / max(hi - lo, 1e-12)
        avg = torch.where(keep, (avg - lo) / max(hi - lo, 1e-12), torch.full_like(avg, cold))
        pop = torch.where(keep, torch.log1p(cnt) / side.max_log_count, torch.zeros_like(cnt))
        return torch.stack([avg, self._year[items], pop], dim=1)

    def _rated_input(
        self, items: torch.Tensor, users: torch.Tensor | None, ratings: torch.Tensor | None
    ) -> torch.Tensor:
        """sqrtN-pooled rater embeddings weighted by centred rating, per row of ``items``;
        with ``users``/``ratings`` (training rows) the row's own rating is left out."""
        net, dev = self.module_, items.device
        uniq, inv = torch.unique(items, return_inverse=True)
        pos, seg, _ = gather_rows(self._rated.indptr, self._rated.indices, uniq.cpu().numpy())
        cols = torch.from_numpy(self._rated.indices[pos].astype(np.int64)).to(dev)
        vals = torch.from_numpy(self._rated.data[pos]).to(dev).unsqueeze(1)
        pooled = torch.zeros(len(uniq), net.rating_dim, device=dev).index_add(
            0, torch.from_numpy(seg).to(dev), net.raters(cols) * vals
        )
        pooled = pooled[inv]
        cnt = self._cnt[items]
        if users is not None and ratings is not None:
            pooled = pooled - (ratings - self.items_.mu).unsqueeze(1) * net.raters(users)
            cnt = cnt - 1
        return pooled / cnt.clamp_min(1).sqrt().unsqueeze(1)

    def _scores_train(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training-mode scores of a batch, its targets and its L2 penalty."""
        users, items, ratings = batch
        net, cfg = self.module_, self.config
        self._cache = None  # weights are about to change
        n = ratings.shape[0]
        keep_i = torch.rand(n, device=ratings.device) >= cfg.id_dropout
        keep_u = (torch.rand(n, device=ratings.device) >= cfg.user_id_dropout).float().unsqueeze(1)
        idv = net.item_id(items) * keep_i.float().unsqueeze(1)
        gv = net.genre_vectors(self._g_off, self._g_idx)[items]
        rated = None
        if net.rating_dim:
            rated = self._rated_input(items, users, ratings) * keep_i.float().unsqueeze(1)
        h, b = net.items(idv, gv, self._dense_rows(items, ratings, keep_i), rated)
        pu = net.user_id(users)
        au = net.user_bias(users).squeeze(1)
        p = pu * keep_u
        a = au * keep_u.squeeze(1)
        if len(net.fields):
            fp, fb = net.field_terms(self._codes[users])
            p, a = p + fp, a + fb
        if net.history:
            hp, hb = pool_history_rows(
                net,
                self._hist.indptr,
                self._hist.indices,
                users,
                items,
                self._centred,
                ratings - self.items_.mu,
            )
            p, a = p + hp, a + hb
        # L2 on what enters the score, as MF's λ(‖p_u‖² + ‖q_i‖²): the tower could otherwise
        # blow up small id embeddings, and a penalty on them alone would not bind
        reg = cfg.l2 * (p.square().sum() + h.square().sum()) + cfg.bias_l2 * (
            a.square().sum() + b.square().sum()
        )
        return net.offset + a + b + (p * h).sum(1), ratings, reg

    def _loss(self, batch: Batch) -> torch.Tensor:
        s, r, reg = self._scores_train(batch)
        loss = (s - r).square().sum() + reg
        if self.config.liked_weight:
            # ranking "liked" above "not liked" pooled over all users (what AUC measures) is
            # not quite what squared error rewards; a monotone logistic read-out of the same
            # score trains that ordering directly (docs/hybrid.md)
            k, t = self.module_.liked.unbind()
            liked = (r >= self.config.positive_threshold).float()
            bce = nn.functional.binary_cross_entropy_with_logits(
                k * (s - t), liked, reduction="sum"
            )
            loss = loss + self.config.liked_weight * bce
        return loss / r.shape[0]

    # ------------------------------------------------------------------ scoring tables
    @torch.no_grad()
    def _tables(self) -> dict[str, torch.Tensor]:
        """Item vectors/biases of every item and user vectors/biases of every user (eval mode).

        Items without training rows are scored from metadata alone (no id), exactly as the
        id-dropped training rows were; users without training rows from their fields alone.
        Computed on the module's device, kept on the CPU, where scoring happens.
        """
        if self._cache is not None:
            return self._cache
        net, dev = self.module_, self.device
        was_training = net.training
        net.eval()
        trained_i = (self._cnt > 0).float().unsqueeze(1)
        dense = torch.from_numpy(self.items_.dense()).to(dev)
        gv = net.genre_vectors(self._g_off, self._g_idx)[: self.n_items]
        rated = None
        if net.rating_dim:
            rated = self._rated_input(torch.arange(self.n_items, device=dev), None, None)
        h, b = net.items(net.item_id.weight * trained_i, gv, dense, rated)
        new_h, new_b = self._new_item_tables(*self.items_.encode_new(pd.DataFrame(index=[0])))
        trained_u = torch.from_numpy(self.user_counts_ > 0).float().unsqueeze(1).to(dev)
        p = net.user_id.weight * trained_u
        a = net.user_bias.weight[:, 0] * trained_u[:, 0]
        if len(net.fields):
            fp, fb = net.field_terms(self._codes)
            p, a = p + fp, a + fb
        if net.history:
            hp, hb = self._pool(self._hist, self._centred)
            p, a = p + hp, a + hb
        cache = {"h": h, "b": b, "p": p, "a": a, "new_h": new_h[0], "new_b": new_b[0]}
        cache["offset"] = net.offset  # a buffer on the module's device, kept with the tables
        if self.extra_ is not None:
            eh, eb = self._new_item_tables(
                self.extra_.genre_offsets,
                self.extra_.genre_indices,
                self.extra_.dense(),
            )
            cache.update(extra_h=eh, extra_b=eb)
        net.train(was_training)
        self._cache = {k: v.cpu() for k, v in cache.items()}
        return self._cache

    @torch.no_grad()
    def _new_item_tables(
        self, offsets: np.ndarray, indices: np.ndarray, dense: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectors and biases of items known by metadata only (no id embedding), on the CPU."""
        net, dev = self.module_, self.device
        n = len(offsets) - 1
        gv = net.genre_vectors(
            torch.from_numpy(np.asarray(offsets, np.int64)).to(dev),
            torch.from_numpy(np.asarray(indices, np.int64)).to(dev),
        )[:n]
        idv = torch.zeros(n, net.item_id.embedding_dim, device=dev)
        h, b = net.items(idv, gv, torch.from_numpy(np.asarray(dense, np.float32)).to(dev))
        return h.cpu(), b.cpu()

    @torch.no_grad()
    def _pool(
        self, hist: sp.csr_matrix, centred: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """sqrtN-pooled history vectors and biases of the rows of a users x items 0/1 matrix;
        ``centred`` holds the centred ratings in the order of ``hist.data`` (None: unknown,
        the rating-weighted part is left out). On the module's device."""
        net, dev = self.module_, self.device
        coo = hist.tocoo()
        rows = torch.from_numpy(coo.row.astype(np.int64)).to(dev)
        cols = torch.from_numpy(coo.col.astype(np.int64)).to(dev)
        n = hist.shape[0]
        vec = torch.zeros(n, net.dim, device=dev).index_add_(0, rows, net.hist.weight[cols])
        if net.rated_history and centred is not None:
            w = torch.from_numpy(np.asarray(centred, np.float32)).to(dev).unsqueeze(1)
            vec.index_add_(0, rows, net.hist_r.weight[cols] * w)
        bias = torch.zeros(n, device=dev).index_add_(0, rows, net.hist_bias.weight[cols, 0])
        cnt = torch.from_numpy(np.diff(hist.indptr).astype(np.float32)).to(dev)
        norm = torch.where(cnt > 0, cnt.sqrt(), torch.ones_like(cnt))
        return vec / norm.unsqueeze(1), bias / norm

    def _link(self, s: torch.Tensor) -> torch.Tensor:
        """Scores -> outputs: identity for ratings, σ for the classifier."""
        return s

    def _combine(
        self, p: torch.Tensor, a: torch.Tensor, h: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        """Outputs of every (user row, item row) pair: ``link(μ + a + b + p hᵀ)``."""
        offset = self._tables()["offset"]
        return self._link(torch.addmm((offset + a).unsqueeze(1) + b, p, h.T))

    # ------------------------------------------------------------------ Recommender API
    @torch.no_grad()
    def score_users(self, users: np.ndarray) -> torch.Tensor:
        t = self._tables()
        u = torch.from_numpy(np.asarray(users, dtype=np.int64))
        return self._combine(t["p"][u], t["a"][u], t["h"], t["b"]).float()

    @torch.no_grad()
    def predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        t = self._tables()
        u = torch.from_numpy(np.asarray(users, dtype=np.int64))
        i = torch.from_numpy(np.asarray(items, dtype=np.int64))
        s = t["offset"] + t["a"][u] + t["b"][i] + (t["p"][u] * t["h"][i]).sum(1)
        return self._link(s).numpy()

    @torch.no_grad()
    def fallback_predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Pairs with an unknown user (no user terms) or item (the "average new item")."""
        t = self._tables()
        u = torch.from_numpy(np.maximum(users, 0).astype(np.int64))
        i = torch.from_numpy(np.maximum(items, 0).astype(np.int64))
        ku = torch.from_numpy(users >= 0).float()
        ki = torch.from_numpy(items >= 0).unsqueeze(1)
        p, a = t["p"][u] * ku.unsqueeze(1), t["a"][u] * ku
        h = torch.where(ki, t["h"][i], t["new_h"])
        b = torch.where(ki.squeeze(1), t["b"][i], t["new_b"])
        return self._link(t["offset"] + a + b + (p * h).sum(1)).numpy()

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """As :meth:`Recommender.predict`; items outside the vocabulary that the training
        dataset's metadata knows (e.g. movies nobody had rated) are scored from it."""
        out = super().predict(users, items)
        if self.extra_ is None or not len(self.extra_ids_):
            return out
        i = self.item_ids_.to_index(items, missing="ignore")
        e = self.extra_ids_.to_index(items, missing="ignore")
        sel = (i < 0) & (e >= 0)
        if sel.any():
            t = self._tables()
            u = self.user_ids_.to_index(users, missing="ignore")[sel]
            p, a = self._user_terms(u, t)
            ee = torch.from_numpy(e[sel])
            s = t["offset"] + a + t["extra_b"][ee] + (p * t["extra_h"][ee]).sum(1)
            out[sel] = self._link(s).numpy()
        return out

    def _user_terms(
        self, u: np.ndarray, t: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        known = torch.from_numpy(u >= 0).float()
        idx = torch.from_numpy(np.maximum(u, 0).astype(np.int64))
        return t["p"][idx] * known.unsqueeze(1), t["a"][idx] * known

    @torch.no_grad()
    def score_new_items(self, items: pd.DataFrame, users: Any = None) -> np.ndarray:
        """Scores of brand-new items, known only by metadata (``title``/``genres``/``year``
        columns), for ``users`` (raw ids; one id -> 1-d). ``users=None`` scores them for an
        unknown user (no user terms)."""
        self._check_fitted()
        single = users is None or np.ndim(users) == 0
        u = (
            np.array([-1])
            if users is None
            else self.user_ids_.to_index(users, missing="ignore").ravel()
        )
        h, b = self._new_item_tables(*self.items_.encode_new(items))
        p, a = self._user_terms(u, self._tables())
        out = self._combine(p, a, h, b).numpy()
        return out[0] if single else out

    @torch.no_grad()
    def score_profile(
        self,
        items: np.ndarray,
        ratings: np.ndarray | None = None,
        features: Mapping[str, Any] | None = None,
    ) -> torch.Tensor:
        """Scores of every item for a user who arrived after training: their user fields (if
        any), their items pooled as during training (no retraining), and, when ratings are
        given, a ridge fold-in of the remaining error (the pooled vector is its prior)."""
        t = self._tables()
        net = self.module_
        items, first = np.unique(np.asarray(items, dtype=np.int64), return_index=True)
        r = None if ratings is None else np.asarray(ratings, np.float64)[first]
        p, a = torch.zeros(1, net.dim), torch.zeros(1)
        if len(net.fields) and features:
            codes = torch.from_numpy(self.users_.encode(dict(features))).to(self.device)
            fp, fb = net.field_terms(codes)
            p, a = p + fp.cpu(), a + fb.cpu()
        if net.history and len(items):
            row = sp.csr_matrix(
                (np.ones(len(items), np.float32), items, [0, len(items)]), shape=(1, self.n_items)
            )
            hp, hb = self._pool(row, None if r is None else r - self.items_.mu)
            p, a = p + hp.cpu(), a + hb.cpu()
        if r is not None and len(items) and self.predicts_ratings:
            p, a = self._fold_in(p, a, items, r, t)
        return self._combine(p, a, t["h"], t["b"])[0].float()

    def _fold_in(
        self, p: torch.Tensor, a: torch.Tensor, items: np.ndarray, r: np.ndarray, t: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Ridge least squares for (Δp, Δa) on the residuals of the given ratings."""
        idx = torch.from_numpy(items)
        h = t["h"][idx]
        pred = t["offset"] + a + t["b"][idx] + h @ p[0]
        l2 = self.config.fold_in_l2
        w, da = ridge_fold_in(h, torch.from_numpy(r) - pred.double(), l2, l2)
        return p + w.float().unsqueeze(0), a + da.float()

    def score_history(self, items: np.ndarray, ratings: np.ndarray | None = None) -> torch.Tensor:
        return self.score_profile(items, ratings)

    def item_vectors(self) -> np.ndarray:
        return self._tables()["h"].numpy()

    # ------------------------------------------------------------------ persistence
    def _extra_tensors(self) -> dict[str, torch.Tensor]:
        out = self.items_.tensors("items.")
        if self.extra_ is not None:
            out.update(self.extra_.tensors("extra."))
        if self.users_ is not None:
            out["users.codes"] = torch.from_numpy(self.users_.codes)
        out["train.ratings"] = torch.from_numpy(self._ratings)
        return out

    def _load_extra(self, tensors: dict[str, torch.Tensor]) -> None:
        meta = self.meta_
        self.items_ = ItemSide.restore(tensors, "items.", meta["items"])
        self.extra_ids_ = IdMap(np.asarray(meta["extra_ids"], dtype=self.item_ids_.ids.dtype))
        self.extra_ = (
            ItemSide.restore(tensors, "extra.", meta["items"]) if len(self.extra_ids_) else None
        )
        users = meta["users"]
        self.users_ = (
            None
            if users is None
            else UserSide(tensors["users.codes"].numpy(), tuple(users["fields"]), users["encoder"])
        )
        self._set_ratings(tensors["train.ratings"].numpy())


@register
class MFDNNClassifier(MFDNN):
    """The MF + DNN network as a classifier of liked items: label = rating >= 4 (the implicit
    form of the lectures), σ(score), binary cross-entropy. Outputs probabilities."""

    name = "mf-dnn-clf"
    Config = MFDNNClassifierConfig
    task: ClassVar[str] = "classification"
    outputs_probabilities: ClassVar[bool] = True

    def _offset(self, ratings: np.ndarray) -> float:
        rate = float(np.clip((ratings >= self.config.positive_threshold).mean(), 1e-4, 1 - 1e-4))
        return float(np.log(rate / (1 - rate)))

    def _loss(self, batch: Batch) -> torch.Tensor:
        s, r, reg = self._scores_train(batch)
        labels = (r >= self.config.positive_threshold).float()
        bce = nn.functional.binary_cross_entropy_with_logits(s, labels, reduction="sum")
        return (bce + reg) / r.shape[0]

    def _link(self, s: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(s)

    def _validator(self, train: Interactions, valid: Interactions):
        """Validation log loss and ROC AUC of the liked / not-liked labels."""
        if valid.ratings is None:
            return super()._validator(train, valid)
        from neuralrec.evaluation.metrics import log_loss, roc_auc

        labels = valid.ratings >= self.config.positive_threshold

        def metrics() -> dict[str, float]:
            prob = self.score_pairs(valid.users, valid.items)
            return {"logloss": log_loss(labels, prob), "auc": roc_auc(labels, prob)}

        return metrics
