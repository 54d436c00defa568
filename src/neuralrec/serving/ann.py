"""Item-to-item similarity for the server, built once per loaded model.

Exact cosine is one (1 x d) @ (d x n) product plus a top-k: fine up to ~100k items. Larger
catalogs can use an approximate nearest-neighbour index (usearch's HNSW, the optional extra
``neuralrec[ann]``) behind the same ``search`` call; it is used only when installed and the
catalog is large (or when asked for explicitly).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from typing import Literal, Protocol

import numpy as np
import scipy.sparse as sp
import torch

from neuralrec.errors import ConfigError

log = logging.getLogger(__name__)

#: catalogs with at least this many items use an approximate index when one is installed
DEFAULT_ANN_THRESHOLD = 100_000
AnnMode = Literal["auto", "on", "off"]


class SimilarityIndex(Protocol):
    """Nearest items of one item index by cosine; the item itself is never returned."""

    kind: str
    approximate: bool

    def search(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` item indices and their cosine similarities, best first."""
        ...


class DenseCosine:
    """Exact cosine over learned item vectors (the same arithmetic as Recommender.similar_items)."""

    kind = "exact"
    approximate = False

    def __init__(self, vectors: np.ndarray) -> None:
        t = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
        self.unit = t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def search(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = self.unit[item : item + 1] @ self.unit.T
        sims[0, item] = -torch.inf
        val, idx = torch.topk(sims[0], min(k, sims.shape[1]))
        return idx.numpy(), val.numpy()


class SparseCosine:
    """Exact cosine between columns of the training matrix, for models without item vectors.

    The transposed matrix and the column norms are computed once here, not per request.
    """

    kind = "exact"
    approximate = False

    def __init__(self, seen: sp.csr_matrix) -> None:
        self.cols = seen.T.tocsr()
        self.cols_t = self.cols.T.tocsr()
        self.norms = np.sqrt(np.asarray(self.cols.multiply(self.cols).sum(axis=1)).ravel()).clip(
            1e-12
        )

    def search(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        row = (self.cols[item] @ self.cols_t).toarray()[0] / self.norms[item] / self.norms
        sims = torch.from_numpy(row.astype(np.float32))
        sims[item] = -torch.inf
        val, idx = torch.topk(sims, min(k, len(sims)))
        return idx.numpy(), val.numpy()


class ModelSimilarity:
    """The model's own item-item similarity (EASE's B, ItemKNN's shrunk cosine) for models that
    define one, so that the server answers as ``model.similar_items`` does."""

    kind = "exact"
    approximate = False

    def __init__(self, similarities: Callable[[np.ndarray], torch.Tensor]) -> None:
        self.similarities = similarities

    def search(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = self.similarities(np.array([item], dtype=np.int64))[0].clone()
        sims[item] = -torch.inf
        val, idx = torch.topk(sims, min(k, len(sims)))
        return idx.numpy(), val.numpy()


class UsearchCosine:
    """Approximate cosine neighbours from a usearch HNSW index (built in memory at load time)."""

    kind = "usearch"
    approximate = True

    def __init__(self, vectors: np.ndarray, *, expansion_search: int = 128) -> None:
        from usearch.index import Index

        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index = Index(
            ndim=self.vectors.shape[1], metric="cos", dtype="f32", expansion_search=expansion_search
        )
        self.index.add(np.arange(len(self.vectors), dtype=np.uint64), self.vectors, threads=0)

    def search(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        # one extra neighbour, because the item finds itself
        found = self.index.search(self.vectors[item], min(k + 1, len(self.vectors)))
        keys = np.asarray(found.keys, dtype=np.int64)
        sims = 1.0 - np.asarray(found.distances, dtype=np.float32)
        keep = keys != item
        return keys[keep][:k], sims[keep][:k]


def ann_available() -> bool:
    """Whether the optional approximate index (usearch) is installed."""
    return importlib.util.find_spec("usearch") is not None


def build_similarity(
    vectors: np.ndarray | None,
    seen: sp.csr_matrix,
    *,
    mode: AnnMode = "auto",
    threshold: int = DEFAULT_ANN_THRESHOLD,
) -> SimilarityIndex:
    """The similarity index for a model's item ``vectors`` (or its training matrix ``seen``).

    ``mode="auto"`` uses usearch when installed and the catalog has ``threshold`` items or more;
    ``"on"`` requires it (models without item vectors stay exact); ``"off"`` is always exact.
    """
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"ann must be auto, on or off, not {mode!r}")
    if vectors is None:
        return SparseCosine(seen)
    large = len(vectors) >= threshold
    if mode == "on" or (mode == "auto" and large):
        if ann_available():
            log.info("building an approximate (usearch) index over %d items", len(vectors))
            return UsearchCosine(vectors)
        if mode == "on":
            raise ConfigError(
                "ann=on needs the optional usearch package: pip install neuralrec[ann]"
            )
        log.warning(
            "%d items: install neuralrec[ann] (usearch) for an approximate index; serving exact",
            len(vectors),
        )
    return DenseCosine(vectors)
