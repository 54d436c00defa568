"""The shared training engine: optimizers, batches, trainer, checkpoints."""

from neuralrec.training.config import ModelConfig, TrainConfig
from neuralrec.training.trainer import Trainer

__all__ = ["ModelConfig", "TrainConfig", "Trainer"]
