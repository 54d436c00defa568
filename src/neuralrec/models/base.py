"""The one small interface every model shares.

``fit(train, valid=None) -> self``, ``predict(users, items)``, ``recommend(users, k)``,
``recommend_from_history(items, k)``, ``similar_items(items, k)``, ``save(path)`` and
``Recommender.load(path)``. The public methods speak raw ids; subclasses implement a few
methods on dense indices (``_fit``, ``score_users``, and optionally ``predict_idx``,
``score_history``, ``item_vectors``). Unknown users and items go through designed fallbacks,
never an IndexError.

Cold start, for every model: a user with no history gets popular items
(:meth:`popular_scores`, optionally within a user-field segment); a visitor known by a few
items is served from them without retraining (:meth:`recommend_from_history`, which calls the
model's :meth:`score_profile` / :meth:`score_history`); brand-new items are scored from their
metadata by models that learned from it (:meth:`score_new_items`; others fall back to the
user-only prediction).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from neuralrec.data.dataset import Dataset
from neuralrec.data.idmap import IdMap
from neuralrec.data.interactions import Interactions
from neuralrec.errors import ConfigError, NeuralrecError, UnknownIdError
from neuralrec.models.cold_start import UserSegments
from neuralrec.training.config import ModelConfig


class NotFittedError(NeuralrecError):
    """The model was used before ``fit`` (or ``load``)."""


class Recommender:
    """Base class of all models. Constructors only store hyperparameters (a frozen config)."""

    #: registry name, e.g. ``"biased-mf"``
    name: ClassVar[str] = ""
    #: the pydantic config class holding this model's hyperparameters
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    #: "rating" models predict ratings (RMSE applies); "ranking" models only order items
    task: ClassVar[str] = "rating"
    #: whether ``fit`` needs item/user metadata from a Dataset
    needs_features: ClassVar[bool] = False
    #: hyperparameter search space for ``neuralrec tune``: name -> ("float"|"int", low, high, log)
    #: or ("cat", [choices]); see neuralrec.tuning
    search_space: ClassVar[dict[str, tuple]] = {}

    def __init__(self, config: ModelConfig | None = None, **params: Any) -> None:
        if config is not None and not isinstance(config, self.Config):
            config = self.Config.model_validate(
                config.model_dump() if isinstance(config, ModelConfig) else config
            )
        try:
            self.config = self.Config(**params) if config is None else config.replace(**params)
        except ValueError as exc:
            raise ConfigError(f"{self.name}: {exc}") from exc
        self._fitted = False

    def __repr__(self) -> str:
        defaults = self.Config()
        changed = {k: v for k, v in self.config.model_dump().items() if getattr(defaults, k) != v}
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        train: Interactions | Dataset,
        valid: Interactions | None = None,
        *,
        dataset: Dataset | None = None,
        checkpoint_dir: str | Path | None = None,
        quiet: bool = True,
        on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    ) -> Recommender:
        """Learn from ``train`` (validation data, if given, drives early stopping).

        ``dataset`` supplies item/user metadata (titles, genres, user fields) where the model
        uses them; passing a :class:`Dataset` as ``train`` uses all its interactions.
        ``on_epoch_end`` receives each epoch's record (trained models only), e.g. for pruning.
        """
        if isinstance(train, Dataset):
            dataset = dataset or train
            train = train.interactions
        if len(train) == 0:
            raise ConfigError(f"{self.name}: cannot fit on empty training data")
        if self.needs_features and dataset is None:
            raise ConfigError(f"{self.name} needs item metadata: pass dataset=... to fit")
        self._setup(train, dataset)
        self.history_: list[dict[str, Any]] = []
        self._epoch_callback = on_epoch_end
        self._fit(train, valid, dataset=dataset, checkpoint_dir=checkpoint_dir, quiet=quiet)
        self._fitted = True
        self.fitted_at_ = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return self

    def _setup(self, train: Interactions, dataset: Dataset | None) -> None:
        """Learned state every model keeps: vocabularies, seen items, popularity, titles."""
        self.user_ids_: IdMap = train.user_ids
        self.item_ids_: IdMap = train.item_ids
        self.seen_: sp.csr_matrix = train.tocsr("ones")
        self.item_popularity_: np.ndarray = train.item_counts().astype(np.float32)
        self.user_counts_: np.ndarray = train.user_counts().astype(np.int64)
        self.global_mean_: float = float(train.ratings.mean()) if train.ratings is not None else 0.0
        self.rating_range_: tuple[float, float] | None = (
            (float(train.ratings.min()), float(train.ratings.max()))
            if train.ratings is not None and len(train)
            else None
        )
        titles = dataset.item_titles() if dataset is not None else None
        self.item_titles_: list[str] | None = None if titles is None else [str(t) for t in titles]
        self.dataset_name_: str = dataset.name if dataset is not None else ""
        self.user_segments_: UserSegments | None = UserSegments.from_dataset(
            dataset, train.user_ids
        )

    def _fit(
        self,
        train: Interactions,
        valid: Interactions | None,
        *,
        dataset: Dataset | None,
        checkpoint_dir: str | Path | None,
        quiet: bool,
    ) -> None:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"{self.name}: call fit() or Recommender.load() first")

    @property
    def n_users(self) -> int:
        return len(self.user_ids_)

    @property
    def n_items(self) -> int:
        return len(self.item_ids_)

    @property
    def predicts_ratings(self) -> bool:
        """Whether scores are rating predictions (so RMSE/MAE are meaningful)."""
        return self.task == "rating"

    # ------------------------------------------------------------------ scoring on indices
    def score_users(self, users: np.ndarray) -> torch.Tensor:
        """Scores of every item for each user index: a float32 CPU tensor (len(users), n_items)."""
        raise NotImplementedError

    def predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted score of each (user index, item index) pair."""
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        out = np.empty(len(users), dtype=np.float32)
        uniq, inv = np.unique(users, return_inverse=True)
        for start in range(0, len(uniq), 1024):
            block = uniq[start : start + 1024]
            scores = self.score_users(block).numpy()
            sel = (inv >= start) & (inv < start + len(block))
            out[sel] = scores[inv[sel] - start, items[sel]]
        return out

    def score_history(self, items: np.ndarray, ratings: np.ndarray | None = None) -> torch.Tensor:
        """Scores of every item for a user known only by the items they touched (cold start).

        The default serves popularity; models with history pooling or fold-in override it.
        """
        return torch.from_numpy(np.log1p(self.item_popularity_)).float()

    def score_profile(
        self,
        items: np.ndarray,
        ratings: np.ndarray | None = None,
        features: Mapping[str, Any] | None = None,
    ) -> torch.Tensor:
        """Scores of every item for a new user known by item indices (and optionally their
        ratings and user fields). The default uses the items only (:meth:`score_history`);
        models that learned from user fields override it."""
        return self.score_history(items, ratings)

    def popular_scores(self, segment: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Popularity of every item: ``log(1 + training count)``, or with ``segment`` (user
        fields given at fit, e.g. ``{"gender": "F", "age": 25}``) the smoothed interaction rate
        among training users of that segment (:class:`~neuralrec.models.cold_start.UserSegments`).
        """
        if not segment:
            return torch.from_numpy(np.log1p(self.item_popularity_)).float()
        segments = getattr(self, "user_segments_", None)
        if segments is None:
            raise ConfigError(
                f"{self.name}: no user fields were given at fit, so there are no segments; "
                "fit with dataset=... holding user metadata"
            )
        return self._segment_scores(segments.encode(segment))

    def _segment_scores(self, codes: Mapping[str, int]) -> torch.Tensor:
        if not codes:
            return torch.from_numpy(np.log1p(self.item_popularity_)).float()
        pop = self.user_segments_.popularity(codes, self.seen_)
        return torch.from_numpy(pop.astype(np.float32))

    def _cold_user_scores(self, users: np.ndarray) -> torch.Tensor:
        """Scores for users with no training history: popularity, within the user's own
        segment of :data:`SEGMENT_FIELDS` when the model knows their fields."""
        segments = getattr(self, "user_segments_", None)
        out = torch.empty(len(users), self.n_items)
        cache: dict[tuple, torch.Tensor] = {}
        for row, u in enumerate(users):
            codes: dict[str, int] = {}
            if segments is not None and u >= 0:
                codes = {
                    f: int(segments.codes[f][u])
                    for f in self.SEGMENT_FIELDS
                    if f in segments.codes and segments.codes[f][u] > 0
                }
            key = tuple(sorted(codes.items()))
            if key not in cache:
                cache[key] = self._segment_scores(codes)
            out[row] = cache[key]
        return out

    #: user fields whose segment serves a known user without training history
    SEGMENT_FIELDS: ClassVar[tuple[str, ...]] = ("gender", "age")

    def score_new_items(self, items: pd.DataFrame, users: Any = None) -> np.ndarray:
        """Scores of brand-new items (rows of a metadata frame: ``title``, ``genres``,
        ``year``) for ``users`` (raw ids; one id or None -> a 1-d array).

        This default knows nothing of metadata: every new item gets the prediction for an
        unknown item (e.g. μ + user bias). Models trained on metadata override it.
        """
        self._check_fitted()
        single = users is None or np.ndim(users) == 0
        u = (
            np.array([-1])
            if users is None
            else self.user_ids_.to_index(users, missing="ignore").ravel()
        )
        known = u >= 0
        if known.any():
            known &= self.user_counts_[np.maximum(u, 0)] > 0
        base = self.fallback_predict(np.where(known, u, -1), np.full(len(u), -1))
        out = np.repeat(np.asarray(base, np.float32)[:, None], len(items), axis=1)
        return out[0] if single else out

    def item_vectors(self) -> np.ndarray | None:
        """Learned item representations (n_items x d) for similarity, or None."""
        return None

    def fallback_predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Prediction for pairs where the user or item is unknown (index -1): the global mean."""
        return np.full(len(users), self.global_mean_, dtype=np.float32)

    # ------------------------------------------------------------------ raw-id API
    def predict(self, users: Any, items: Any) -> np.ndarray:
        """Predicted rating (or score) of each (user id, item id) pair; unknown ids fall back."""
        self._check_fitted()
        u = self.user_ids_.to_index(users, missing="ignore")
        i = self.item_ids_.to_index(items, missing="ignore")
        if len(u) != len(i):
            raise ConfigError(f"predict: {len(u)} users but {len(i)} items")
        return self.score_pairs(u, i)

    def score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predictions for index pairs, as served: pairs with a user or item unseen in training
        (or index -1) go through :meth:`fallback_predict`, and rating predictions are clipped to
        the training rating range (as Surprise and most libraries do)."""
        u = np.asarray(users, dtype=np.int64)
        i = np.asarray(items, dtype=np.int64)
        known = (u >= 0) & (i >= 0)
        if known.any():
            known &= (self.user_counts_[np.maximum(u, 0)] > 0) & (
                self.item_popularity_[np.maximum(i, 0)] > 0
            )
        out = np.empty(len(u), dtype=np.float32)
        if known.any():
            out[known] = self.predict_idx(u[known], i[known])
        if (~known).any():
            out[~known] = self.fallback_predict(u[~known], i[~known])
        if self.predicts_ratings and getattr(self, "rating_range_", None) is not None:
            np.clip(out, *self.rating_range_, out=out)
        return out

    def recommend(
        self, users: Any, k: int = 10, *, exclude_seen: bool = True, items: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item ids and scores for one user id (1-d arrays) or many (2-d arrays).

        Users unknown to the model get the most popular items. ``items`` restricts candidates.
        """
        self._check_fitted()
        single = np.ndim(users) == 0
        uidx = self.user_ids_.to_index(users, missing="ignore")
        candidates = None if items is None else self.item_ids_.to_index(items)
        rows_i, rows_s = [], []
        for start in range(0, len(uidx), 1024):
            block = uidx[start : start + 1024]
            known = (block >= 0) & (self.user_counts_[np.maximum(block, 0)] > 0)
            scores = torch.empty(len(block), self.n_items)
            if known.any():
                scores[torch.from_numpy(known)] = self.score_users(block[known])
            if (~known).any():
                scores[torch.from_numpy(~known)] = self._cold_user_scores(block[~known])
            if exclude_seen and known.any():
                self._mask_seen(scores, block, known)
            idx, val = _topk(scores, k, candidates)
            rows_i.append(idx)
            rows_s.append(val)
        idx = np.concatenate(rows_i)
        val = np.concatenate(rows_s)
        ids = self.item_ids_.to_ids(idx.ravel()).reshape(idx.shape)
        return (ids[0], val[0]) if single else (ids, val)

    def recommend_from_history(
        self,
        items: Any,
        k: int = 10,
        *,
        ratings: Any = None,
        exclude_seen: bool = True,
        user_features: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` for a visitor known only by item ids they liked (or rated): no retraining.

        Unknown item ids are ignored; with none known, the most popular items are served
        (within the segment of ``user_features``, e.g. ``{"gender": "F", "age": 25}``, when
        given). Models that learned from user fields also use them with a history.
        """
        self._check_fitted()
        idx = (
            self.item_ids_.to_index(np.asarray(items).ravel(), missing="ignore")
            if np.size(items)
            else np.array([], dtype=np.int64)
        )
        r = None if ratings is None else np.asarray(ratings, dtype=np.float32).ravel()
        if r is not None and len(r) != len(idx):
            raise ConfigError(f"{len(idx)} items but {len(r)} ratings")
        keep = idx >= 0
        idx = idx[keep]
        r = None if r is None else r[keep]
        if len(idx) == 0:
            scores = self.popular_scores(user_features).clone()
        else:
            scores = self.score_profile(idx, r, user_features).float().cpu().clone()
        if exclude_seen and len(idx):
            scores[torch.from_numpy(idx)] = -torch.inf
        top, val = _topk(scores.unsqueeze(0), k, None)
        return self.item_ids_.to_ids(top[0]), val[0]

    def similar_items(
        self, items: Any, k: int = 10, *, min_count: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar items (cosine in the model's item space) to one id or many.

        Models without item vectors use the columns of the training interaction matrix.
        ``min_count`` leaves out candidates with fewer training interactions: the vectors of
        rarely rated items are mostly their initialisation and prior, so they land near anything.
        """
        self._check_fitted()
        single = np.ndim(items) == 0
        idx = self.item_ids_.to_index(items)
        sims = self.item_similarities(idx)
        sims[torch.arange(len(idx)), torch.from_numpy(idx)] = -torch.inf
        if min_count > 0:
            rare = np.asarray(self.item_popularity_) < min_count
            sims[:, torch.from_numpy(rare)] = -torch.inf
        top, val = _topk(sims, k, None)
        ids = self.item_ids_.to_ids(top.ravel()).reshape(top.shape)
        return (ids[0], val[0]) if single else (ids, val)

    def item_similarities(self, items: np.ndarray) -> torch.Tensor:
        """Cosine similarity of each item index in ``items`` to every item (len(items), n_items)."""
        vecs = self.item_vectors()
        if vecs is not None:
            unit = getattr(self, "_unit_item_vectors", None)
            if unit is None:
                t = torch.as_tensor(np.asarray(vecs), dtype=torch.float32)
                unit = t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)
                self._unit_item_vectors = unit
            return unit[torch.from_numpy(items)] @ unit.T
        cols = self.seen_.T.tocsr()
        norms = np.sqrt(np.asarray(cols.multiply(cols).sum(axis=1)).ravel()).clip(1e-12)
        sims = (cols[items] @ cols.T).toarray() / norms[items][:, None] / norms[None, :]
        return torch.from_numpy(sims.astype(np.float32))

    def _mask_seen(self, scores: torch.Tensor, users: np.ndarray, known: np.ndarray) -> None:
        rows = np.flatnonzero(known)
        sub = self.seen_[users[known]]
        r = np.repeat(rows, np.diff(sub.indptr))
        scores[torch.from_numpy(r), torch.from_numpy(sub.indices.astype(np.int64))] = -torch.inf

    # ------------------------------------------------------------------ titles
    def item_title(self, item_id: Any) -> str | None:
        """Title of an item id, when the training dataset had titles."""
        if self.item_titles_ is None:
            return None
        return self.item_titles_[self.item_ids_.index_of(item_id)]

    def find_item(self, query: Any) -> Any:
        """An item id from an id or an exact (then case-insensitive, then substring) title."""
        self._check_fitted()
        if query in self.item_ids_:
            return self.item_ids_.to_ids([self.item_ids_.index_of(query)])[0]
        if self.item_titles_ is not None:
            q = str(query).strip()
            titles = self.item_titles_
            for match in (
                lambda t: t == q,
                lambda t: t.lower() == q.lower(),
                lambda t: q.lower() in t.lower(),
            ):
                hits = [i for i, t in enumerate(titles) if match(t)]
                if hits:
                    best = max(hits, key=lambda i: self.item_popularity_[i])
                    return self.item_ids_.to_ids([best])[0]
        raise UnknownIdError(f"no item with id or title {query!r}")

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the model as an artifact directory (safetensors + JSON, no pickle)."""
        from neuralrec.models.persistence import save_model

        self._check_fitted()
        return save_model(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Recommender:
        """Read a model saved with :meth:`save`; the class is taken from the artifact.

        ``device`` overrides where a torch model's weights go (see ``load_model``).
        """
        from neuralrec.models.persistence import load_model

        model = load_model(path, device)
        if cls is not Recommender and not isinstance(model, cls):
            raise ConfigError(f"{path} holds a {model.name!r} model, not {cls.name!r}")
        return model

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Model-specific learned state: tensors and JSON-able metadata."""
        return {}, {}

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`_state` returned."""


def _topk(
    scores: torch.Tensor, k: int, candidates: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k indices and values per row, best first; -inf entries never win over finite ones."""
    if k <= 0:
        raise ConfigError("k must be positive")
    if candidates is not None:
        cand = torch.from_numpy(candidates)
        sub = scores[:, cand]
        kk = min(k, sub.shape[1])
        val, pos = torch.topk(sub, kk, dim=1)
        idx = cand[pos]
    else:
        kk = min(k, scores.shape[1])
        val, idx = torch.topk(scores, kk, dim=1)
    return idx.numpy(), val.numpy()
