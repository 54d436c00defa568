"""Recommender models. Each module registers its classes; use :func:`create` or the registry."""

from typing import Any

from neuralrec.models.base import Recommender
from neuralrec.models.registry import available_models, get_model_class, register


def create(name: str, **params: Any) -> Recommender:
    """A new, untrained model ``name`` with hyperparameters ``params``."""
    return get_model_class(name)(**params)


__all__ = ["Recommender", "available_models", "create", "get_model_class", "register"]
