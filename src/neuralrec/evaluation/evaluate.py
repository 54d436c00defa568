"""The one entry point: ``evaluate(model, split, protocol=...)`` -> tidy table + per-user values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from neuralrec.data.interactions import Interactions
from neuralrec.data.splits import Split
from neuralrec.errors import ConfigError
from neuralrec.evaluation.ranking import DEFAULT_FULL_METRICS, FULL_METRICS, full_ranking
from neuralrec.evaluation.ranking_view import TEST_ITEMS_METRICS, rank_test_items
from neuralrec.evaluation.rating import RATING_METRICS, rating_metrics
from neuralrec.evaluation.result import EvaluationResult, ProtocolResult
from neuralrec.evaluation.sampled import (
    SAMPLED_METRICS,
    SampledCases,
    sample_negatives,
    sampled_ranking,
)

PROTOCOLS = ("full", "sampled", "test-items", "rating")
_SUPPORTED = {
    "full": FULL_METRICS,
    "sampled": SAMPLED_METRICS,
    "test-items": TEST_ITEMS_METRICS,
    "rating": RATING_METRICS,
}
_DEFAULTS = {
    "full": DEFAULT_FULL_METRICS,
    "sampled": ("hit", "ndcg", "mrr"),
    "test-items": ("precision", "ndcg", "precision_strict", "ndcg_strict"),
}


class Scorable(Protocol):
    """What evaluation needs from a model (every neuralrec model qualifies)."""

    def score_users(self, users: np.ndarray) -> torch.Tensor: ...


def evaluate(
    model: Scorable,
    data: Split | Interactions,
    *,
    train: Interactions | None = None,
    ks: Sequence[int] = (10,),
    protocol: str | Sequence[str] = "full",
    metrics: Sequence[str] | None = None,
    relevance_threshold: float | None = None,
    positive_threshold: float = 4.0,
    n_negatives: int = 100,
    cases: SampledCases | None = None,
    ties: str = "pessimistic",
    seed: int = 0,
    batch_size: int | None = None,
) -> EvaluationResult:
    """Evaluate ``model`` on the test part of ``data`` under one or more protocols.

    - ``"full"``: rank all items outside the user's training items (docs/evaluation.md);
    - ``"sampled"``: each relevant test pair against ``n_negatives`` sampled negatives (NCF),
      or the given ``cases`` (e.g. from :func:`read_ncf_test`);
    - ``"test-items"``: rank each user's own test items (the lectures' ranking view);
    - ``"rating"``: RMSE/MAE (models that predict ratings), AUC, log loss (probability models).

    ``data`` is a :class:`Split` (test = ``split.test``, seen items = ``split.train_full``,
    i.e. train + validation) or the test :class:`Interactions` with ``train=`` given.
    ``relevance_threshold``: None makes every test interaction relevant (implicit feedback);
    a number keeps test ratings >= it (the test-items view defaults to ``positive_threshold``).
    ``positive_threshold`` labels positives for AUC and log loss.
    """
    test, train = _parts(data, train)
    names = [protocol] if isinstance(protocol, str) else list(protocol)
    bad = [p for p in names if p not in PROTOCOLS]
    if bad or not names:
        raise ConfigError(f"unknown protocol(s) {bad}; use {', '.join(PROTOCOLS)}")
    if metrics is not None:
        known = {m for p in names for m in _SUPPORTED[p]}
        unknown = sorted(set(metrics) - known)
        if unknown:
            raise ConfigError(f"metric(s) {unknown} are not computed by protocol(s) {names}")
    if relevance_threshold is not None and test.ratings is None:
        raise ConfigError("relevance_threshold needs test ratings; this test data has none")
    results: dict[str, ProtocolResult] = {}
    opts = {"ks": ks, "ties": ties, "seed": seed, "batch_size": batch_size}
    for name in names:
        chosen = _metrics_for(name, metrics, model)
        if name == "full":
            res = _full(model, train, test, chosen, relevance_threshold, opts)
        elif name == "sampled":
            res = _sampled(
                model, train, test, chosen, relevance_threshold, n_negatives, cases, opts
            )
        elif name == "test-items":
            res = _test_items(model, test, chosen, relevance_threshold, positive_threshold, opts)
        else:
            res = _rating(model, test, chosen, positive_threshold)
        results[res.protocol] = res
    return EvaluationResult(
        results, user_ids=test.user_ids, model_name=str(getattr(model, "name", "") or "")
    )


# ---------------------------------------------------------------------------- per protocol
def _full(model, train, test, metrics, threshold, opts) -> ProtocolResult:
    values = "ratings" if threshold is not None else "ones"
    return full_ranking(
        model.score_users,
        _require(train, "full").tocsr("ones"),
        test.tocsr(values),
        metrics=metrics,
        relevance_threshold=threshold,
        **opts,
    )


def _sampled(model, train, test, metrics, threshold, n_neg, cases, opts) -> ProtocolResult:
    test_csr = test.tocsr("ratings" if threshold is not None else "ones")
    skipped = 0
    if cases is None:
        train_csr = _require(train, "sampled").tocsr("ones")
        cases = sample_negatives(
            train_csr, test_csr, n_negatives=n_neg, relevance_threshold=threshold, seed=opts["seed"]
        )
        skipped = int(len(np.unique(test.users)) - len(np.unique(cases.users)))
    res = sampled_ranking(model.score_users, cases, metrics=metrics, n_items=test.n_items, **opts)
    res.n_skipped = skipped
    return res


def _test_items(model, test, metrics, threshold, positive_threshold, opts) -> ProtocolResult:
    if test.ratings is None:
        raise ConfigError("the test-items view needs test ratings; this test data has none")
    scores = predict_pairs(model, test.users, test.items, opts["batch_size"])
    return rank_test_items(
        test.users,
        test.ratings,
        scores,
        ks=opts["ks"],
        threshold=positive_threshold if threshold is None else threshold,
        metrics=metrics,
        ties=opts["ties"],
        seed=opts["seed"],
    )


def _rating(model, test, metrics, positive_threshold) -> ProtocolResult:
    if test.ratings is None:
        raise ConfigError("rating metrics need test ratings; this test data has none")
    pred = predict_pairs(model, test.users, test.items)
    probs = pred if _outputs_probabilities(model) else None
    return rating_metrics(
        test.users,
        test.ratings,
        pred,
        metrics=metrics,
        positive_threshold=positive_threshold,
        probabilities=probs,
    )


# ---------------------------------------------------------------------------- helpers
def predict_pairs(
    model: Any, users: np.ndarray, items: np.ndarray, batch_size: int | None = None
) -> np.ndarray:
    """Scores of (user, item) index pairs: ``model.score_pairs`` when the model has it (served
    predictions: fallbacks for users/items unseen in training, clipped to the rating scale), else
    ``model.predict_idx``, else gathered from ``score_users`` rows, a batch of users at a time."""
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    pair_fn = getattr(model, "score_pairs", None) or getattr(model, "predict_idx", None)
    if pair_fn is not None:
        out = [
            np.asarray(pair_fn(users[s : s + 1_000_000], items[s : s + 1_000_000]))
            for s in range(0, len(users), 1_000_000)
        ]
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)
    out = np.empty(len(users), dtype=np.float64)
    uniq, inv = np.unique(users, return_inverse=True)
    step = batch_size or 1024
    for start in range(0, len(uniq), step):
        sel = (inv >= start) & (inv < start + step)
        with torch.no_grad():
            scores = torch.as_tensor(model.score_users(uniq[start : start + step]))
        out[sel] = scores[inv[sel] - start, items[sel]].double().numpy()
    return out


def _parts(data: Split | Interactions, train: Interactions | None):
    if isinstance(data, Split):
        return data.test, train if train is not None else data.train_full
    if isinstance(data, Interactions):
        return data, train
    raise ConfigError(f"evaluate() needs a Split or test Interactions, got {type(data).__name__}")


def _require(train: Interactions | None, name: str) -> Interactions:
    if train is None:
        raise ConfigError(f"protocol {name!r} needs the training interactions: pass train=")
    return train


def _predicts_ratings(model: Any) -> bool:
    return bool(getattr(model, "predicts_ratings", False))


def _outputs_probabilities(model: Any) -> bool:
    """Models flag probability outputs with ``outputs_probabilities`` (or task "classification")."""
    flag = getattr(model, "outputs_probabilities", None)
    return bool(flag) if flag is not None else getattr(model, "task", "") == "classification"


def _metrics_for(name: str, metrics: Sequence[str] | None, model: Any) -> tuple[str, ...]:
    if metrics is None:
        if name != "rating":
            return _DEFAULTS[name]
        chosen = ["rmse", "mae"] if _predicts_ratings(model) else []
        return (*chosen, "auc", *(["logloss"] if _outputs_probabilities(model) else []))
    chosen = tuple(m for m in metrics if m in _SUPPORTED[name])
    if name == "rating":
        if not _predicts_ratings(model) and {"rmse", "mae"} & set(chosen):
            raise ConfigError("RMSE/MAE need a model that predicts ratings (predicts_ratings)")
        if "logloss" in chosen and not _outputs_probabilities(model):
            raise ConfigError("logloss needs a model whose outputs are probabilities")
    return chosen
