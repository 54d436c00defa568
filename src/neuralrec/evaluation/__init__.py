"""Evaluation: rating and ranking metrics on the protocols papers use.

``evaluate(model, split, protocol="full" | "sampled" | "test-items" | "rating")`` returns an
:class:`EvaluationResult` (a tidy table plus per-user values); ``paired_test`` says whether one
model beats another. Definitions: docs/evaluation.md.
"""

from neuralrec.evaluation.evaluate import PROTOCOLS, evaluate, predict_pairs
from neuralrec.evaluation.metrics import (
    catalog_coverage,
    grouped_roc_auc,
    log_loss,
    mae,
    rmse,
    roc_auc,
    sampled_metrics,
    topk_metrics,
)
from neuralrec.evaluation.ranking import full_ranking
from neuralrec.evaluation.ranking_view import rank_test_items
from neuralrec.evaluation.rating import rating_metrics
from neuralrec.evaluation.result import EvaluationResult, ProtocolResult, RankingResult
from neuralrec.evaluation.sampled import (
    SampledCases,
    read_ncf_test,
    sample_negatives,
    sampled_ranking,
)
from neuralrec.evaluation.significance import PairedTest, paired_test

__all__ = [
    "PROTOCOLS",
    "EvaluationResult",
    "PairedTest",
    "ProtocolResult",
    "RankingResult",
    "SampledCases",
    "catalog_coverage",
    "evaluate",
    "full_ranking",
    "grouped_roc_auc",
    "log_loss",
    "mae",
    "paired_test",
    "predict_pairs",
    "rank_test_items",
    "rating_metrics",
    "read_ncf_test",
    "rmse",
    "roc_auc",
    "sample_negatives",
    "sampled_metrics",
    "sampled_ranking",
    "topk_metrics",
]
