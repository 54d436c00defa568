"""Rating prediction and classification metrics on the test pairs.

Pooled over all test pairs: ``rmse``, ``mae``, ``auc`` (label = rating >= threshold, score =
prediction) and ``logloss`` (only for models whose outputs are probabilities). Per user, for
paired significance tests: ``user_mse``, ``user_mae`` and ``user_auc`` (NaN for a user whose
test pairs are all positive or all negative); their means over users are reported too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuralrec.errors import ConfigError
from neuralrec.evaluation.metrics import grouped_roc_auc, log_loss, mae, rmse, roc_auc
from neuralrec.evaluation.result import ProtocolResult

RATING_METRICS = ("rmse", "mae", "auc", "logloss")


def rating_metrics(
    users: np.ndarray,
    truth: np.ndarray,
    pred: np.ndarray,
    *,
    metrics: Sequence[str] = ("rmse", "mae", "auc"),
    positive_threshold: float = 4.0,
    probabilities: np.ndarray | None = None,
    protocol: str = "rating",
) -> ProtocolResult:
    """Score predictions ``pred`` of the ratings ``truth`` of test pairs made by ``users``.

    ``probabilities`` (predicted P(rating >= threshold)) is needed for ``logloss``; AUC uses
    ``probabilities`` when given, otherwise ``pred``.
    """
    bad = set(metrics) - set(RATING_METRICS)
    if bad:
        raise ConfigError(f"unknown rating metric(s) {sorted(bad)}; use {RATING_METRICS}")
    users = np.asarray(users, np.int64)
    truth = np.asarray(truth, np.float64)
    pred = np.asarray(pred, np.float64)
    if not len(users) == len(truth) == len(pred):
        raise ConfigError(f"{len(users)} users, {len(truth)} ratings, {len(pred)} predictions")
    if np.isnan(pred).any():
        raise ConfigError("the model returned NaN predictions")
    uniq, group = np.unique(users, return_inverse=True)
    counts = np.bincount(group, minlength=len(uniq)).astype(np.float64)
    err = pred - truth
    labels = truth >= positive_threshold
    score = pred if probabilities is None else np.asarray(probabilities, np.float64)
    values: dict[str, float] = {}
    per_user: dict[str, np.ndarray] = {}
    if "rmse" in metrics:
        values["rmse"] = rmse(truth, pred)
        per_user["user_mse"] = np.bincount(group, weights=err**2, minlength=len(uniq)) / counts
    if "mae" in metrics:
        values["mae"] = mae(truth, pred)
        per_user["user_mae"] = np.bincount(group, weights=np.abs(err), minlength=len(uniq)) / counts
    if "auc" in metrics:
        values["auc"] = roc_auc(labels, score)
        per_user["user_auc"] = grouped_roc_auc(group, labels, score, len(uniq))
    if "logloss" in metrics:
        if probabilities is None:
            raise ConfigError(
                "logloss needs probabilities: the model must output P(rating >= threshold)"
            )
        values["logloss"] = log_loss(labels, probabilities)
    return ProtocolResult(
        protocol=protocol,
        ks=(),
        users=uniq,
        per_user=per_user,
        values=values,
        notes={"positive_threshold": positive_threshold, "n_pairs": len(users)},
    )
