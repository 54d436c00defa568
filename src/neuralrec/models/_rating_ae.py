"""What the rating autoencoders (AutoRec, DeepRec) share: rows, scoring, fallbacks, persistence.

Such a model reconstructs a row of the rating matrix (an item's ratings by all users for
I-AutoRec, a user's ratings of all items for U-AutoRec and DeepRec); the prediction for
(user, item) is the reconstructed entry. Every module used here has ``penultimate(x) -> z`` (all
layers but the last), ``last_layer() -> (W, c)`` with ``W`` of shape (n_cols, d) and
``output`` (the output activation on the rating scale), so scoring never builds a dense
users x items matrix: the codes ``z`` of all rows are cached (n_rows x d), and scores for a
batch of users are one matrix product with the matching slice of ``W``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from neuralrec.data.dataset import Dataset
from neuralrec.data.interactions import Interactions
from neuralrec.errors import ConfigError
from neuralrec.models._rows import Orientation, RowMatrix
from neuralrec.models.baselines import Bias
from neuralrec.models.torch_base import TorchRecommender
from neuralrec.training.batches import BatchSource, TensorBatches
from neuralrec.training.config import TrainConfig

#: ridge penalty of the fold-in that serves a new user from I-AutoRec's item codes
FOLD_IN_RIDGE = 1.0


class RatingAutoencoderConfig(TrainConfig):
    """Options every rating autoencoder has."""

    clip: bool = Field(True, description="clip predictions to the training rating range")
    monitor: str = "rmse"


class RatingAutoencoder(TorchRecommender):
    """Base of autoencoders that reconstruct rating vectors (rows of the rating matrix)."""

    task: ClassVar[str] = "rating"

    @property
    def orientation(self) -> Orientation:
        """``"item"``: rows are items (vectors over users); ``"user"``: rows are users."""
        raise NotImplementedError

    # ------------------------------------------------------------------ fitting
    def _module_meta(self, train: Interactions, dataset: Dataset | None) -> dict[str, Any]:
        if train.ratings is None:
            raise ConfigError(f"{self.name} predicts ratings and needs explicit ratings to train")
        by = self.orientation
        n_rows, n_cols = (train.n_items, train.n_users) if by == "item" else train.shape
        return {
            "by": by,
            "n_rows": n_rows,
            "n_cols": n_cols,
            "low": float(train.ratings.min()),
            "high": float(train.ratings.max()),
            "mu": self.global_mean_,
        }

    def _prepare(self, train: Interactions, dataset: Dataset | None) -> None:
        self.rows_ = RowMatrix.from_interactions(train, self.orientation, "ratings", self.device)
        # the rating of every stored entry of seen_ (same CSR structure), for save/load
        self.train_ratings_ = train.tocsr("ratings").data.astype(np.float32)
        bias = Bias().fit(train)
        self.user_bias_, self.item_bias_ = bias.user_bias_, bias.item_bias_
        # mean stored entries per trained row: turns a batch's error sum into a per-rating mean
        self.trained_rows_ = max(int((self.rows_.lengths() > 0).sum()), 1)
        self.entries_per_row_ = self.rows_.nnz / self.trained_rows_
        self._z: torch.Tensor | None = None

    def _batches(self, train: Interactions) -> BatchSource:
        return TensorBatches([self.rows_.nonempty()], batch_size=self.config.batch_size)

    def _fit(
        self,
        train: Interactions,
        valid: Interactions | None,
        *,
        dataset: Dataset | None,
        checkpoint_dir: str | Path | None,
        quiet: bool,
    ) -> None:
        super()._fit(train, valid, dataset=dataset, checkpoint_dir=checkpoint_dir, quiet=quiet)
        self._z = None  # the trainer may have restored other (the best) weights

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def _codes(self) -> torch.Tensor:
        """``penultimate`` of every row's training vector, computed block by block and cached."""
        if self._z is None:
            m = self.module_
            was_training = m.training
            m.eval()
            # blocks of at most ~32M floats, so 20M-size data never needs a big dense matrix
            size = max(1, min(1024, (1 << 25) // max(self.rows_.n_cols, 1)))
            self._z = torch.cat(
                [m.penultimate(self.rows_.batch(b)) for b in self.rows_.blocks(size)]
            )
            m.train(was_training)
        return self._z

    def _finish(self, pre: torch.Tensor) -> torch.Tensor:
        out = self.module_.output(pre)
        if self.config.clip:
            out = out.clamp(self.meta_["low"], self.meta_["high"])
        return out

    @torch.no_grad()
    def predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self.device)
        i = torch.as_tensor(np.asarray(items, dtype=np.int64), device=self.device)
        rows, cols = (i, u) if self.orientation == "item" else (u, i)
        z = self._codes()
        w, c = self.module_.last_layer()
        out = [
            self._finish((z[r] * w[k]).sum(1) + c[k])
            for r, k in zip(rows.split(1 << 14), cols.split(1 << 14), strict=True)
        ]
        return torch.cat(out).float().cpu().numpy() if out else np.zeros(0, np.float32)

    @torch.no_grad()
    def score_users(self, users: np.ndarray) -> torch.Tensor:
        u = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self.device)
        z = self._codes()
        w, c = self.module_.last_layer()
        if self.orientation == "user":
            pre = torch.addmm(c, z[u], w.T)
        else:  # every item's code against the decoder rows of these users
            pre = torch.addmm(c[u], z, w[u].T).T
        return self._finish(pre).float().cpu().contiguous()

    @torch.no_grad()
    def score_history(self, items: np.ndarray, ratings: np.ndarray | None = None) -> torch.Tensor:
        """A visitor known only by the items they rated, without retraining.

        User-row models encode the visitor's rating vector. I-AutoRec has no decoder row for a
        new user, so it fits one by ridge regression on the item codes (fold-in, as for MF).
        """
        m = self.module_
        if ratings is None:  # liked items without ratings: a notch above the mean
            ratings = np.full(len(items), min(self.global_mean_ + 1.0, self.meta_["high"]))
        idx = torch.as_tensor(np.asarray(items, dtype=np.int64), device=self.device)
        r = torch.as_tensor(np.asarray(ratings, dtype=np.float32), device=self.device)
        if self.orientation == "user":
            x = torch.zeros(1, self.rows_.n_cols, device=self.device)
            x[0, idx] = r
            w, c = m.last_layer()
            return self._finish(torch.addmm(c, m.penultimate(x), w.T))[0].float().cpu()
        # ridge on every coefficient, bias included, around the global mean: with a few (or
        # equal) ratings the new user's row then leans towards the codes of the rated items
        # instead of putting everything into a free bias
        z = self._codes().double()
        a = torch.cat([z[idx], torch.ones(len(idx), 1, dtype=z.dtype, device=z.device)], 1)
        base = m.output.inverse(self.global_mean_).double()
        target = m.output.inverse(r).to(a) - base
        gram = a.T @ a + FOLD_IN_RIDGE * torch.eye(a.shape[1], dtype=a.dtype, device=a.device)
        coef = torch.linalg.solve(gram, a.T @ target)
        return self._finish((base + z @ coef[:-1] + coef[-1]).float()).cpu()

    def item_vectors(self) -> np.ndarray:
        """I-AutoRec: each item's code; user-row models: the item's decoder weights."""
        if self.orientation == "item":
            return self._codes().cpu().numpy()
        return self.module_.last_layer()[0].detach().cpu().numpy()

    def fallback_predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Cold users or items: global mean plus the biases of whichever side is known."""
        out = np.full(len(users), self.global_mean_, dtype=np.float32)
        ku = (users >= 0) & (self.user_counts_[np.maximum(users, 0)] > 0)
        ki = (items >= 0) & (self.item_popularity_[np.maximum(items, 0)] > 0)
        out[ku] += self.user_bias_[users[ku]]
        out[ki] += self.item_bias_[items[ki]]
        return out

    # ------------------------------------------------------------------ persistence
    def _extra_tensors(self) -> dict[str, torch.Tensor]:
        return {
            "train_ratings": torch.from_numpy(self.train_ratings_),
            "fallback.user_bias": torch.from_numpy(self.user_bias_),
            "fallback.item_bias": torch.from_numpy(self.item_bias_),
        }

    def _load_extra(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.train_ratings_ = tensors["train_ratings"].numpy()
        self.user_bias_ = tensors["fallback.user_bias"].numpy()
        self.item_bias_ = tensors["fallback.item_bias"].numpy()
        seen = self.seen_
        ratings = sp.csr_matrix((self.train_ratings_, seen.indices, seen.indptr), shape=seen.shape)
        self.rows_ = RowMatrix.from_csr(ratings, self.meta_["by"], self.device)
        self._z = None
