"""The model a server answers from, and its atomic swap on reload.

A :class:`ServedModel` is a loaded artifact plus everything worth computing once (popularity
order, the title search list, the similarity index, the /model document). It is never changed
after construction: a request takes a reference to the current one and uses it to the end, so a
reload, which only rebinds :attr:`ModelHolder.current`, never changes a model under a request.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralrec.errors import ArtifactError, NeuralrecError, UnknownIdError
from neuralrec.models.base import Recommender
from neuralrec.models.persistence import load_model, read_manifest
from neuralrec.serving.ann import (
    DEFAULT_ANN_THRESHOLD,
    AnnMode,
    ModelSimilarity,
    SimilarityIndex,
    build_similarity,
)
from neuralrec.serving.schemas import MAX_K, ItemRef, ModelInfo, ScoredItem

log = logging.getLogger(__name__)


class ServedModel:
    """An immutable snapshot: a fitted model and its precomputed serving caches."""

    def __init__(
        self,
        model: Recommender,
        info: ModelInfo,
        *,
        ann: AnnMode = "auto",
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
    ) -> None:
        self.model = model
        # python-native ids and titles, so answers need no numpy conversion per request
        self.item_ids: list[Any] = model.item_ids_.to_list()
        self.index_of: dict[Any, int] = {raw: i for i, raw in enumerate(self.item_ids)}
        self._id_dtype = np.int64 if model.item_ids_.is_integer else object
        titles = model.item_titles_
        self.titles: list[str | None] = (
            [None] * len(self.item_ids) if titles is None else [t or None for t in titles]
        )
        self.popularity = model.item_popularity_.astype(np.int64).tolist()
        order = np.argsort(-model.item_popularity_, kind="stable")
        # cold start: popular items scored log(1 + count), as Recommender.recommend scores them
        self.popular = order[:MAX_K].tolist()
        self.popular_scores = np.log1p(model.item_popularity_[order[:MAX_K]]).tolist()
        # title search runs through items in popularity order and stops at the limit
        self.search_order = order.tolist()
        self.search_keys = [
            (self.titles[i] or str(self.item_ids[i])).casefold() for i in self.search_order
        ]
        self._seen_indptr = model.seen_.indptr
        self._seen_indices = model.seen_.indices.astype(np.int64)
        # the fast path copies Recommender.recommend; a model that overrides it is asked itself
        self._fast_recommend = type(model).recommend is Recommender.recommend
        if type(model).item_similarities is not Recommender.item_similarities:
            self.similarity: SimilarityIndex = ModelSimilarity(model.item_similarities)
        else:
            self.similarity = build_similarity(
                model.item_vectors(), model.seen_, mode=ann, threshold=ann_threshold
            )
        self.info = info.model_copy(update={"similarity_index": self.similarity.kind})

    # ------------------------------------------------------------------ answers
    def scored(self, indices: Any, scores: Any) -> list[ScoredItem]:
        """Rows for item indices; non-finite scores (masked items when k is large) are dropped."""
        return [
            ScoredItem(item=self.item_ids[i], title=self.titles[i], score=s)
            for i, s in zip(np.asarray(indices).tolist(), np.asarray(scores).tolist(), strict=True)
            if np.isfinite(s)
        ]

    def ref(self, index: int) -> ItemRef:
        return ItemRef(
            item=self.item_ids[index], title=self.titles[index], popularity=self.popularity[index]
        )

    def recommend_user(
        self, user: str, k: int, exclude_seen: bool
    ) -> tuple[list[ScoredItem], bool]:
        """Top-``k`` for a raw user id; users the model does not know get popular items."""
        model = self.model
        try:
            index = model.user_ids_.index_of(user)
        except UnknownIdError:
            return self.scored(self.popular[:k], self.popular_scores[:k]), True
        if model.user_counts_[index] == 0 or not self._fast_recommend:
            # in the vocabulary without training rows: the model's own cold-user answer
            raw = model.user_ids_.to_ids([index])[0]
            ids, scores = model.recommend(raw, k, exclude_seen=exclude_seen)
            cold = bool(model.user_counts_[index] == 0)
            return self.scored([self.index_of[i] for i in ids.tolist()], scores), cold
        # Recommender.recommend for one user, minus its batch bookkeeping: one score row,
        # the user's seen items masked from the cached CSR arrays, one top-k
        scores = model.score_users(np.array([index]))[0]
        if exclude_seen:
            # a copy: score_users may return a view of model state (popularity does)
            scores = scores.clone()
            seen = self._seen_indices[self._seen_indptr[index] : self._seen_indptr[index + 1]]
            scores[torch.from_numpy(seen)] = -torch.inf
        val, idx = torch.topk(scores, min(k, len(scores)))
        return self.scored(idx.numpy(), val.numpy()), False

    def recommend_history(
        self, items: list[Any], ratings: list[float] | None, k: int, exclude_seen: bool
    ) -> tuple[list[ScoredItem], list[Any], list[Any]]:
        """Top-``k`` for a visitor's liked items; returns (rows, known items, unknown items)."""
        model = self.model
        keys = [self._item_key(x) for x in items]
        known = [key in self.index_of for key in keys]
        used = [x for x, ok in zip(items, known, strict=True) if ok]
        unknown = [x for x, ok in zip(items, known, strict=True) if not ok]
        r = None if ratings is None else np.asarray(ratings, dtype=np.float32)[known]
        liked = [key for key, ok in zip(keys, known, strict=True) if ok]
        ids, scores = model.recommend_from_history(
            np.asarray(liked, dtype=self._id_dtype), k, ratings=r, exclude_seen=exclude_seen
        )
        return self.scored([self.index_of[i] for i in ids.tolist()], scores), used, unknown

    def _item_key(self, raw: Any) -> Any:
        """A raw id as the catalog spells it (JSON may send "7" for 7, or 7 for "7")."""
        try:
            return self.model.item_ids_.coerce(raw)
        except UnknownIdError:
            return None

    def similar(self, item: str | int, k: int) -> tuple[ItemRef, list[ScoredItem]]:
        """The ``k`` nearest items of a raw item id; UnknownIdError when it is not in the model."""
        index = self.index_of.get(self._item_key(item))
        if index is None:
            raise UnknownIdError(f"unknown item id {item!r}")
        idx, sims = self.similarity.search(index, k)
        return self.ref(index), self.scored(idx, sims)

    def search(self, query: str, limit: int) -> list[ItemRef]:
        """Items whose title (or id, without titles) contains ``query``, most popular first."""
        q = query.strip().casefold()
        hits: list[ItemRef] = []
        for key, index in zip(self.search_keys, self.search_order, strict=True):
            if q in key:
                hits.append(self.ref(index))
                if len(hits) == limit:
                    break
        return hits


def load_served(
    path: str | Path, *, ann: AnnMode = "auto", ann_threshold: int = DEFAULT_ANN_THRESHOLD
) -> ServedModel:
    """Load and warm up the artifact (or run directory) at ``path``.

    Any failure becomes an :class:`ArtifactError` with a one-line message (the traceback goes
    to the log), so a broken artifact can be refused without taking the server down.
    """
    path = Path(path)
    try:
        manifest = read_manifest(path)
        model = load_model(path)
        info = ModelInfo(
            model=model.name,
            dataset=model.dataset_name_ or manifest.get("dataset", ""),
            trained_at=manifest.get("fitted_at", ""),
            format_version=manifest["format_version"],
            neuralrec_version=manifest.get("neuralrec_version", ""),
            predicts_ratings=model.predicts_ratings,
            n_users=model.n_users,
            n_items=model.n_items,
            params=model.config.model_dump(mode="json"),
            metrics=_metrics(_optional_json(path / "metrics.json")),
            run=_optional_json(path / "run.json"),
            similarity_index="exact",
            loaded_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        served = ServedModel(model, info, ann=ann, ann_threshold=ann_threshold)
        _warm_up(served)
    except ArtifactError:
        raise
    except NeuralrecError as exc:
        raise ArtifactError(f"{path}: {exc}") from exc
    except Exception as exc:  # anything else a damaged artifact can raise
        log.exception("loading %s failed", path)
        raise ArtifactError(f"{path}: cannot load ({type(exc).__name__}: {exc})") from exc
    return served


def _optional_json(path: Path) -> Any:
    """A run file the server shows but does not need: None (with a warning) when unreadable."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None


def _metrics(data: Any) -> dict[str, float] | None:
    """The numeric entries of metrics.json (it is shown, never needed: odd entries are dropped)."""
    if not isinstance(data, dict):
        return None
    return {
        str(k): float(v)
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _warm_up(served: ServedModel) -> None:
    """Run each answer once, so lazy caches fill and a broken model fails before it is served."""
    model = served.model
    if model.n_items == 0:
        raise ArtifactError("the model has no items")
    served.similar(served.item_ids[0], 1)
    served.recommend_history(served.item_ids[:1], None, 1, True)
    active = np.flatnonzero(model.user_counts_ > 0)
    if len(active):
        served.recommend_user(str(model.user_ids_.to_ids(active[:1])[0]), 1, True)


class ModelHolder:
    """The current :class:`ServedModel` of one directory; :meth:`reload` swaps it atomically."""

    def __init__(self, path: str | Path, **load_options: Any) -> None:
        self.path = Path(path)
        self._options = load_options
        self._lock = threading.Lock()
        self.signature = self._signature()
        self.current: ServedModel = load_served(self.path, **load_options)
        self._refused: tuple[int, int] | None = None

    def reload(self) -> tuple[ServedModel, ServedModel]:
        """Load the directory again and swap it in; (previous, current).

        Raises ArtifactError, and keeps serving the previous model, when the new one is broken.
        Loads are serialised; the swap itself is one attribute assignment, atomic for readers.
        """
        with self._lock:
            # read the signature first: a write that lands during the load is seen next time
            signature = self._signature()
            try:
                new = load_served(self.path, **self._options)
            except ArtifactError:
                self._refused = signature
                raise
            previous, self.current = self.current, new
            self.signature = signature
        log.info("reloaded %s: %s trained at %s", self.path, new.info.model, new.info.trained_at)
        return previous, new

    def _signature(self) -> tuple[int, int] | None:
        """Identity of the manifest file: artifacts are swapped in by rename, so a new artifact
        has a new inode (and mtime) even when written within the same second."""
        try:
            st = (self.path / "neuralrec.json").stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def reload_if_changed(self) -> bool:
        """Reload when the directory holds a new artifact (a file watch); True when swapped.

        A broken artifact is refused once and not retried until the directory changes again.
        """
        signature = self._signature()
        if signature is None or signature in (self.signature, self._refused):
            return False
        try:
            self.reload()
        except ArtifactError as exc:
            log.error("refused the new artifact, still serving the previous model: %s", exc)
            return False
        return True
