"""Cold-start building blocks shared by every model (used through :class:`Recommender`).

- :class:`UserSegments`: the user fields (gender, age bracket, occupation) of the training
  vocabulary, so that a user with no history gets the items popular *among users like them*:
  ``score_i = (c_seg,i + m · c_i / N) / (N_seg + m)``, the segment's interaction rate smoothed
  towards the overall rate with ``m`` pseudo-users (additive smoothing), so a small segment
  falls back gracefully to plain popularity.
- :func:`ridge_fold_in`: the least-squares user vector and bias of a new user from a few
  ratings, with the item factors held fixed (the fold-in of Sarwar et al. 2002, regularised).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from neuralrec.data.dataset import Dataset
from neuralrec.data.idmap import IdMap
from neuralrec.data.side_info import UserFeatureEncoder, UserFeatures
from neuralrec.errors import ConfigError

#: pseudo-users with the overall interaction rates added to every segment
SEGMENT_PRIOR = 10.0


@dataclass
class UserSegments:
    """Per-user field codes (0 = unknown) and the encoders that made them."""

    codes: dict[str, np.ndarray]
    encoder: UserFeatureEncoder

    @classmethod
    def from_dataset(cls, dataset: Dataset | None, user_ids: IdMap) -> UserSegments | None:
        """The fields the dataset has for ``user_ids``, or None without user metadata."""
        if dataset is None or dataset.users is None:
            return None
        feats = UserFeatures.from_dataset(dataset, user_ids)
        if not feats.codes:
            return None
        return cls({f: np.asarray(c, np.int64) for f, c in feats.codes.items()}, feats.encoder)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.codes)

    def encode(self, segment: Mapping[str, Any]) -> dict[str, int]:
        """Codes of a ``{field: value}`` segment (raw values, e.g. ``{"gender": "F", "age": 25}``)."""
        unknown = sorted(set(segment) - set(self.codes))
        if unknown:
            raise ConfigError(
                f"unknown user field(s) {unknown}; the training data has {list(self.codes)}"
            )
        row = pd.DataFrame([dict(segment)])
        sub = UserFeatureEncoder({f: self.encoder.encoders[f] for f in segment}).transform(row)
        out = {}
        for field, value in segment.items():
            code = int(sub.codes[field][0])
            if code == 0 and value is not None:
                known = self.encoder.encoders[field].categories_
                raise ConfigError(f"unknown {field} {value!r}; known values: {known}")
            if code:
                out[field] = code
        return out

    def mask(self, codes: Mapping[str, int]) -> np.ndarray:
        """Users (by index) matching every given field code."""
        n = len(next(iter(self.codes.values())))
        keep = np.ones(n, dtype=bool)
        for field, code in codes.items():
            keep &= self.codes[field] == code
        return keep

    def popularity(self, codes: Mapping[str, int], seen: sp.csr_matrix) -> np.ndarray:
        """Smoothed interaction rate of every item among training users of the segment."""
        active = np.diff(seen.indptr) > 0
        counts = np.asarray(seen.sum(axis=0)).ravel()
        overall = counts / max(int(active.sum()), 1)
        members = self.mask(codes) & active
        seg_counts = np.asarray(seen[np.flatnonzero(members)].sum(axis=0)).ravel()
        return (seg_counts + SEGMENT_PRIOR * overall) / (members.sum() + SEGMENT_PRIOR)

    # ------------------------------------------------------------------ persistence
    def tensors(self) -> dict[str, torch.Tensor]:
        return {f"_user_field.{f}": torch.from_numpy(c) for f, c in self.codes.items()}

    def meta(self) -> dict[str, Any]:
        return self.encoder.to_dict()

    @classmethod
    def restore(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> UserSegments:
        codes = {f: tensors.pop(f"_user_field.{f}").numpy() for f in meta}
        return cls(codes, UserFeatureEncoder.from_dict(meta))


def ridge_fold_in(
    factors: torch.Tensor,
    residuals: torch.Tensor,
    l2: float | torch.Tensor,
    bias_l2: float,
    prior: tuple[torch.Tensor, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``min_w,a Σ_j (e_j − w·q_j − a)² + l2‖w − w₀‖² + bias_l2·(a − a₀)²`` in float64.

    ``factors`` holds the rated items' vectors q_j (rows), ``residuals`` e_j what the rest of
    the model leaves unexplained (rating − μ − b_j − prior terms). ``l2`` may be one penalty
    per factor; ``prior`` is ``(w₀, a₀)``, zero when omitted (a Normal prior's mean, with the
    penalties its precisions over the noise's). Returns ``(w, a)``.
    """
    q = factors.double()
    x = torch.cat([q, torch.ones(len(q), 1, dtype=torch.float64)], dim=1)
    reg = torch.empty(x.shape[1], dtype=torch.float64)
    reg[:-1] = torch.as_tensor(l2, dtype=torch.float64)
    reg[-1] = float(bias_l2)
    rhs = x.T @ residuals.double()
    if prior is not None:
        mean = torch.cat(
            [
                torch.as_tensor(prior[0], dtype=torch.float64).reshape(-1),
                torch.tensor([float(prior[1])], dtype=torch.float64),
            ]
        )
        rhs = rhs + reg * mean
    w = torch.linalg.solve(x.T @ x + torch.diag(reg), rhs)
    return w[:-1], w[-1]
