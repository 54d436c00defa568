"""Training hyperparameters shared by every trainable model.

A model's config subclasses :class:`TrainConfig` and adds its own fields, so one flat, typed,
frozen object drives the Python API, ``--set key=value`` on the command line, config files and
tuning alike.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from neuralrec.training.optim import OPTIMIZERS

#: metrics where smaller is better; every other monitored metric is maximised
MINIMISED = ("rmse", "mae", "logloss", "loss", "train_loss", "valid_loss")


#: learning-rate schedules the trainer computes per epoch
LRSchedule = Literal["constant", "step", "exponential", "cosine", "plateau"]


class ModelConfig(BaseModel):
    """Base of every model config: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    seed: int = Field(0, description="seed for initialisation, shuffling, sampling and dropout")

    def replace(self, **changes: Any) -> ModelConfig:
        """A validated copy with ``changes`` applied.

        Only the fields that were set explicitly are carried over; the others take their
        defaults again, so defaults that depend on another field (an implicit loss's learning
        rate, say) follow a change of that field.
        """
        kept = self.model_dump(include=set(self.model_fields_set))
        return type(self).model_validate({**kept, **changes})


class TrainConfig(ModelConfig):
    """Mini-batch training options (SPEC section 2)."""

    epochs: int = Field(20, ge=1, description="maximum number of passes over the training data")
    batch_size: int = Field(1024, ge=1)
    optimizer: str = Field("adam", description=f"one of {', '.join(OPTIMIZERS)}")
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="for optimizer=momentum")
    weight_decay: float = Field(
        0.0, ge=0, description="decoupled for adamw, L2 gradient otherwise; skips biases"
    )
    decay_biases: bool = False
    grad_clip: float | None = Field(None, gt=0, description="clip the global gradient norm")
    lr_schedule: LRSchedule = "constant"
    lr_step: int = Field(10, ge=1, description="epochs between decays for lr_schedule=step")
    lr_gamma: float = Field(
        0.5, gt=0, le=1, description="decay factor for step/exponential/plateau"
    )
    stop_epoch: int | None = Field(
        None,
        ge=1,
        description="end training after this epoch while the lr schedule still spans `epochs` "
        "(a refit that replays a validated run up to its best epoch)",
    )
    average_from: int | None = Field(
        None,
        ge=1,
        description="from this epoch on, keep the running mean of the weights at each epoch's "
        "end (stochastic weight averaging) and end with it; with validation data, the mean is "
        "what is validated and restored as the best epoch's weights",
    )
    early_stopping: bool = Field(
        True, description="stop when the monitored validation metric stalls"
    )
    monitor: str = Field(
        "rmse", description="validation metric for early stopping (rmse, ndcg@10, ...)"
    )
    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0)
    tol: float | None = Field(None, gt=0, description="stop when ||w_k+1 - w_k|| / ||w_k|| <= tol")
    threads: int | None = Field(
        None, ge=1, description="torch intra-op threads (default: all cores)"
    )
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto")
    amp: bool = Field(
        False,
        description="mixed precision on CUDA: the forward pass under bfloat16 autocast (weights, "
        "optimizer state and the loss stay float32; ignored on CPU)",
    )

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, v: str) -> str:
        if v not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {v!r}; use one of {', '.join(OPTIMIZERS)}")
        return v

    @field_validator("monitor")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()

    @property
    def monitor_mode(self) -> Literal["min", "max"]:
        """Whether the monitored metric improves downwards or upwards."""
        return "min" if self.monitor.split("@")[0] in MINIMISED else "max"
