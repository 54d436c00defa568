"""Glue between a model's ``nn.Module`` and the shared :class:`~neuralrec.training.Trainer`.

A neural model subclasses :class:`TorchRecommender` and writes four things: ``_module_meta``
(JSON-able dimensions), ``_build_module``, ``_batches`` and ``_loss``; plus ``score_users``.
Fitting, validation, early stopping, checkpoints, devices and save/load come from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from neuralrec.data.dataset import Dataset
from neuralrec.data.interactions import Interactions
from neuralrec.errors import ConfigError
from neuralrec.models.base import Recommender
from neuralrec.training.batches import Batch, BatchSource
from neuralrec.training.config import TrainConfig
from neuralrec.training.trainer import DistContext, Trainer


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device=cuda was asked for, but torch sees no CUDA device; use device=cpu or auto"
        )
    return dev


class TorchRecommender(Recommender):
    """A model trained by the shared trainer."""

    Config: ClassVar[type[TrainConfig]] = TrainConfig
    #: set by the distributed launcher; None for a single process
    dist: DistContext | None = None
    #: CPU training calls the compiled loops of :mod:`neuralrec.training.kernels`; they are
    #: loaded before the first epoch, so that its time is the epoch's work (the README's
    #: per-epoch figures count it so)
    cpu_kernels: ClassVar[bool] = False

    module_: nn.Module
    meta_: dict[str, Any]

    # ------------------------------------------------------------------ to implement
    def _module_meta(self, train: Interactions, dataset: Dataset | None) -> dict[str, Any]:
        """JSON-able facts the module is built from (sizes, vocabularies)."""
        return {"n_users": train.n_users, "n_items": train.n_items}

    def _build_module(self, meta: Mapping[str, Any]) -> nn.Module:
        raise NotImplementedError

    def _prepare(self, train: Interactions, dataset: Dataset | None) -> None:
        """Precompute anything training and scoring need beyond the module (optional)."""

    def _batches(self, train: Interactions) -> BatchSource:
        raise NotImplementedError

    def _loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ fitting
    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.device)

    def _fit(
        self,
        train: Interactions,
        valid: Interactions | None,
        *,
        dataset: Dataset | None,
        checkpoint_dir: str | Path | None,
        quiet: bool,
    ) -> None:
        cfg = self.config
        self.meta_ = self._module_meta(train, dataset)
        # initialisation is seeded without disturbing the caller's global RNG
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.module_ = self._build_module(self.meta_).to(self.device)
        self._prepare(train, dataset)
        if self.cpu_kernels and self.device.type == "cpu":
            from neuralrec.training import kernels

            kernels.warm_up()
        batches = self._batches(train)
        validate = self._validator(train, valid) if valid is not None and len(valid) else None
        loss_fn, train_module = self._loss, None
        if self.dist is not None and self.dist.world_size > 1:
            from neuralrec.training.distributed import wrap

            train_module = wrap(self.module_, self._loss, self.device)
            loss_fn = train_module
        trainer = Trainer(
            self._train_config(train),
            checkpoint_dir=checkpoint_dir,
            quiet=quiet,
            description=self.name,
            dist=self.dist,
            on_epoch_end=self._end_epoch,
        )
        self.history_ = trainer.fit(
            self.module_, batches, loss_fn, validate, train_module=train_module
        )
        self.module_.eval()

    def _end_epoch(self, record: dict[str, Any]) -> None:
        self._after_epoch(record)
        callback = getattr(self, "_epoch_callback", None)  # the caller's, from fit()
        if callback is not None:
            callback(record)

    def _after_epoch(self, record: dict[str, Any]) -> None:
        """Model hook at each epoch's end, before the caller's callback (default: nothing)."""

    @torch.no_grad()
    def score_users(self, users: np.ndarray) -> torch.Tensor:
        """Scores of every item for ``users`` from the module's ``score_all`` (models whose
        module has none override this)."""
        score_all = getattr(self.module_, "score_all", None)
        if score_all is None:
            return super().score_users(users)
        u = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self.device)
        return score_all(u).float().cpu()

    def _train_config(self, train: Interactions) -> TrainConfig:
        """The options the trainer runs with: the model's config, unless the model folds one of
        its own terms in (e.g. an L2 penalty whose gradient is exactly a weight decay)."""
        return self.config

    def _validator(self, train: Interactions, valid: Interactions):
        """Validation metrics for early stopping: RMSE/MAE for rating models, NDCG@10 otherwise."""
        if self.predicts_ratings and valid.ratings is not None:
            users, items = valid.users, valid.items
            target = valid.ratings

            def rating_metrics() -> dict[str, float]:
                pred = self.score_pairs(users, items)
                err = pred - target
                return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}

            return rating_metrics
        from neuralrec.evaluation.ranking import full_ranking

        train_csr = train.tocsr("ones")
        valid_csr = valid.tocsr("ones")

        def ranking_metrics() -> dict[str, float]:
            res = full_ranking(
                self.score_users, train_csr, valid_csr, ks=(10,), metrics=("ndcg", "recall")
            )
            return dict(res.summary())

        return ranking_metrics

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {f"module.{k}": v for k, v in self.module_.state_dict().items()}
        tensors.update(self._extra_tensors())
        return tensors, {"meta": self.meta_}

    def _extra_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors besides the module's state that scoring needs (override when used)."""
        return {}

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.meta_ = meta["meta"]
        module = self._build_module(self.meta_)
        prefix = "module."
        module.load_state_dict(
            {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        )
        self.module_ = module.to(self.device).eval()
        self._load_extra({k: v for k, v in tensors.items() if not k.startswith(prefix)})

    def _load_extra(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`_extra_tensors` saved."""
