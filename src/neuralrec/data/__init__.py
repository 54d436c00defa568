"""Data layer: interactions, id maps, datasets, features, loaders and splits."""

from neuralrec.data.dataset import Dataset
from neuralrec.data.idmap import IdMap
from neuralrec.data.interactions import Interactions
from neuralrec.data.splits import Split, SplitSpec, kfold, split

__all__ = ["Dataset", "IdMap", "Interactions", "Split", "SplitSpec", "kfold", "split"]
