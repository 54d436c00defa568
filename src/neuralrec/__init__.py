"""neuralrec: neural-network recommender systems on PyTorch."""

from neuralrec._version import __version__
from neuralrec.data import Dataset, IdMap, Interactions, Split, load_dataset, split
from neuralrec.models import Recommender, available_models, create

__all__ = [
    "Dataset",
    "IdMap",
    "Interactions",
    "Recommender",
    "Split",
    "__version__",
    "available_models",
    "create",
    "load_dataset",
    "split",
]
