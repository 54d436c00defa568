"""Data layer: interactions, id maps, datasets, features, loaders and splits."""

from neuralrec.data.columns import parse_columns
from neuralrec.data.dataset import Dataset
from neuralrec.data.features import (
    CategoricalEncoder,
    MinMaxScaler,
    MultiHot,
    StandardScaler,
    parse_year,
)
from neuralrec.data.idmap import IdMap
from neuralrec.data.interactions import Interactions
from neuralrec.data.loader import dataset_status, download_dataset, load_dataset
from neuralrec.data.side_info import ItemFeatures, UserFeatures
from neuralrec.data.splits import Split, SplitSpec, kfold, split

__all__ = [
    "CategoricalEncoder",
    "Dataset",
    "IdMap",
    "Interactions",
    "ItemFeatures",
    "MinMaxScaler",
    "MultiHot",
    "Split",
    "SplitSpec",
    "StandardScaler",
    "UserFeatures",
    "dataset_status",
    "download_dataset",
    "kfold",
    "load_dataset",
    "parse_columns",
    "parse_year",
    "split",
]
