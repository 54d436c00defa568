"""Hyperparameter search on the validation split (Optuna), then a refit and one test score."""

from neuralrec.tuning.search import TuneResult, tune

__all__ = ["TuneResult", "tune"]
