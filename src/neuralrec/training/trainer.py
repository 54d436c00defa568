"""The one training loop every neural model shares.

A model hands the trainer its ``nn.Module``, a :class:`~neuralrec.training.batches.BatchSource`,
a loss function and (optionally) a validation function; the trainer owns the optimizers,
schedules, early stopping, convergence stop, per-epoch history, checkpoints and resume.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neuralrec.errors import NeuralrecError
from neuralrec.training.batches import Batch, BatchSource
from neuralrec.training.checkpoint import (
    load_matching_checkpoint,
    save_checkpoint,
    state_fingerprint,
)
from neuralrec.training.config import TrainConfig
from neuralrec.training.losses import GradientsSet
from neuralrec.training.optim import RowSparse, clip_gradients, make_optimizers
from neuralrec.training.progress import TrainingProgress
from neuralrec.utils.numeric import flush_denormals
from neuralrec.utils.seeding import set_threads

#: a loss function returns one loss per batch, or an iterator of losses when one batch takes
#: several optimizer steps (e.g. DeepRec's dense re-feeding): the trainer steps after each one,
#: so a later loss is computed with the weights the earlier steps produced
#: (a :class:`GradientsSet` instead of a loss tensor: the gradients are already in place)
LossFn = Callable[[Batch], torch.Tensor | GradientsSet | Iterator[torch.Tensor]]
ValidateFn = Callable[[], Mapping[str, float]]
CHECKPOINT_NAME = "checkpoint.safetensors"


class TrainingDiverged(NeuralrecError):
    """The training loss became NaN or infinite."""


@dataclass
class DistContext:
    """Where this process sits in a torch.distributed job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_mean(self, value: float) -> float:
        if self.world_size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t.item()) / self.world_size

    def broadcast_flag(self, flag: bool) -> bool:
        if self.world_size == 1:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int64)
        torch.distributed.broadcast(t, src=0)
        return bool(t.item())


@dataclass
class _State:
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: str = ""
    finished: bool = False
    lr_drops: int = 0
    #: epochs in the running weight average (``cfg.average_from``)
    averaged: int = 0


class Trainer:
    """Mini-batch training with early stopping, checkpoints and resume.

    Early stopping watches ``cfg.monitor`` in the validation metrics (or the training loss when
    there is no validation data) and restores the best weights at the end.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        checkpoint_dir: str | Path | None = None,
        resume: bool = True,
        quiet: bool = True,
        description: str = "training",
        dist: DistContext | None = None,
        on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.resume = resume
        self.quiet = quiet
        self.description = description
        self.dist = dist or DistContext()
        self.on_epoch_end = on_epoch_end

    # ------------------------------------------------------------------ public
    def fit(
        self,
        module: nn.Module,
        batches: BatchSource,
        loss_fn: LossFn,
        validate: ValidateFn | None = None,
        *,
        train_module: nn.Module | None = None,
    ) -> list[dict[str, Any]]:
        """Train ``module`` in place; return the per-epoch history.

        ``train_module`` is what the optimizers see when it differs from ``module`` (a
        DistributedDataParallel wrapper); weights are always read from ``module``.
        """
        cfg = self.cfg
        set_threads(cfg.threads)
        optimizers = make_optimizers(
            train_module or module,
            cfg.optimizer,
            cfg.lr,
            weight_decay=cfg.weight_decay,
            decay_biases=cfg.decay_biases,
            momentum=cfg.momentum,
        )
        state = _State()
        best_weights: dict[str, torch.Tensor] | None = None
        average: dict[str, torch.Tensor] | None = None
        ckpt = self._checkpoint_path()
        fingerprint = self._fingerprint(module)
        if ckpt is not None and self.resume and ckpt.exists():
            state, best_weights, average = self._restore(ckpt, fingerprint, module, optimizers)
        if state.finished:  # the last checkpoint already holds the final (best) weights
            return state.history

        last = min(cfg.epochs, cfg.stop_epoch or cfg.epochs)
        with (
            flush_denormals(),
            TrainingProgress(
                last, quiet=self.quiet or not self.dist.is_main, description=self.description
            ) as bar,
        ):
            for epoch in range(state.epoch + 1, last + 1):
                record, before = self._train_epoch(
                    module,
                    train_module or module,
                    batches,
                    loss_fn,
                    optimizers,
                    epoch,
                    self._lr_for(state),
                    bar,
                )
                if before is not None:
                    record["weight_change"] = _relative_change(before, module)
                if cfg.average_from is not None and epoch >= cfg.average_from:
                    state.averaged += 1
                    average = _accumulate_mean(module, average, state.averaged)
                validating = validate is not None and self.dist.is_main
                # once averaging has begun, the running mean is the model that is validated
                # and kept as the best; training goes on from the last iterate
                with _swapped_in(module, average if validating else None):
                    if validating:
                        module.eval()
                        with torch.no_grad():
                            record.update({k: float(v) for k, v in validate().items()})
                    state.epoch = epoch
                    improved = self._track(state, record, validating)
                    if improved and self.dist.is_main:
                        best_weights = _copy_weights(module, best_weights)
                self._update_schedule(state)
                stop = self._should_stop(state, record)
                stop = self.dist.broadcast_flag(stop)
                state.history.append(record)
                bar.end_epoch(record)
                if self.on_epoch_end is not None and self.dist.is_main:
                    self.on_epoch_end(record)
                if stop or epoch == last:
                    state.finished = True
                    if not state.stopped:
                        state.stopped = "max_epochs"
                if state.finished:
                    final = _final_weights(cfg, validating, best_weights, average)
                    if final is not None:
                        module.load_state_dict(final)
                if ckpt is not None and self.dist.is_main:
                    self._save(ckpt, fingerprint, state, module, optimizers, best_weights, average)
                if state.finished:
                    break
        return state.history

    # ------------------------------------------------------------------ epoch
    def _train_epoch(
        self,
        module: nn.Module,
        train_module: nn.Module,
        batches: BatchSource,
        loss_fn: LossFn,
        optimizers: list[RowSparse],
        epoch: int,
        lr: float,
        bar: TrainingProgress,
    ) -> tuple[dict[str, Any], list[torch.Tensor] | None]:
        cfg = self.cfg
        before = [p.detach().clone() for p in module.parameters()] if cfg.tol else None
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = lr
        # dropout and any other randomness in the forward pass depend only on (seed, epoch, rank)
        torch.manual_seed((cfg.seed * 1_000_003 + epoch * 7919 + 104729 * self.dist.rank) % (2**63))
        train_module.train()
        start, cpu_start = time.perf_counter(), time.process_time()
        total = torch.zeros((), dtype=torch.float64)
        steps = 0
        bar.start_epoch(epoch, batches.num_batches(self.dist.world_size), epoch - 1)
        amp = _autocast(cfg.amp, module)  # decided once: the module stays on its device
        for batch in batches.epoch(epoch, cfg.seed, self.dist.rank, self.dist.world_size):
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            with amp:
                out = loss_fn(batch)
                single = isinstance(out, torch.Tensor | GradientsSet)
                losses = iter((out,)) if single else out
                # the first loss is the batch's objective (what train_loss reports); any further
                # ones are extra steps on the same batch (a generator: their forward runs here)
                for step, loss in enumerate(losses):
                    if step:
                        for opt in optimizers:
                            opt.zero_grad(set_to_none=True)
                    if isinstance(loss, GradientsSet):
                        loss = loss.loss
                    else:
                        loss.float().backward()
                    if cfg.grad_clip:
                        clip_gradients(train_module, cfg.grad_clip)
                    for opt in optimizers:
                        opt.step()
                    if step == 0:
                        total += loss.detach().to("cpu", torch.float64)
            steps += 1
            bar.advance_batch()
        train_loss = self.dist.all_reduce_mean(float(total) / max(steps, 1))
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"training diverged at epoch {epoch}: the loss is {train_loss}; lower lr (now {cfg.lr}) "
                "or add grad_clip"
            )
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu_start,
            "lr": optimizers[0].param_groups[0]["lr"] if optimizers else cfg.lr,
        }
        return record, before

    # ------------------------------------------------------------------ stopping
    def _monitor(self, record: Mapping[str, Any], validating: bool) -> tuple[str, float, str]:
        """The monitored metric's name, value in ``record`` and direction."""
        if not validating:
            return "train_loss", float(record["train_loss"]), "min"
        key = self.cfg.monitor
        if key not in record:
            known = ", ".join(k for k in record if k not in _BOOKKEEPING)
            raise NeuralrecError(f"monitor={key!r} is not among the validation metrics ({known})")
        return key, float(record[key]), self.cfg.monitor_mode

    def _track(self, state: _State, record: dict[str, Any], validating: bool) -> bool:
        _, value, mode = self._monitor(record, validating)
        if state.best_score is None:
            better = True
        elif mode == "min":
            better = value < state.best_score - self.cfg.min_delta
        else:
            better = value > state.best_score + self.cfg.min_delta
        if better:
            state.best_score, state.best_epoch, state.bad_epochs = value, int(record["epoch"]), 0
        else:
            state.bad_epochs += 1
        record["best_epoch"] = state.best_epoch
        return better

    def _should_stop(self, state: _State, record: dict[str, Any]) -> bool:
        cfg = self.cfg
        if cfg.early_stopping and state.bad_epochs >= cfg.patience:
            state.stopped = f"early stopping (no improvement for {cfg.patience} epochs)"
            return True
        if cfg.tol is not None and record.get("weight_change", math.inf) <= cfg.tol:
            state.stopped = (
                f"converged (relative weight change {record['weight_change']:.2e} <= {cfg.tol})"
            )
            return True
        return False

    # ------------------------------------------------------------------ schedules
    def _lr_for(self, state: _State) -> float:
        """Learning rate of the next epoch under ``cfg.lr_schedule`` (a function of the history)."""
        cfg = self.cfg
        done = state.epoch
        if cfg.lr_schedule == "step":
            return cfg.lr * cfg.lr_gamma ** (done // cfg.lr_step)
        if cfg.lr_schedule == "exponential":
            return cfg.lr * cfg.lr_gamma**done
        if cfg.lr_schedule == "cosine":
            return 0.5 * cfg.lr * (1 + math.cos(math.pi * done / cfg.epochs))
        if cfg.lr_schedule == "plateau":
            return cfg.lr * cfg.lr_gamma**state.lr_drops
        return cfg.lr

    def _update_schedule(self, state: _State) -> None:
        # plateau: halve (lr_gamma) after patience // 2 epochs without improvement
        if (
            self.cfg.lr_schedule == "plateau"
            and state.bad_epochs
            and state.bad_epochs % max(1, self.cfg.patience // 2) == 0
        ):
            state.lr_drops += 1

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def _fingerprint(self, module: nn.Module) -> str:
        shapes = {k: list(v.shape) for k, v in module.state_dict().items()}
        return state_fingerprint(self.cfg.model_dump(mode="json"), shapes)

    def _save(
        self,
        path: Path,
        fingerprint: str,
        state: _State,
        module: nn.Module,
        optimizers: list[RowSparse],
        best: dict[str, torch.Tensor] | None,
        average: dict[str, torch.Tensor] | None,
    ) -> None:
        save_checkpoint(
            path,
            {
                "fingerprint": fingerprint,
                "trainer": {k: v for k, v in vars(state).items()},
                "model": dict(module.state_dict()),
                "best": best,
                "average": average,
                "optimizers": [o.state_dict() for o in optimizers],
            },
        )

    def _restore(
        self,
        path: Path,
        fingerprint: str,
        module: nn.Module,
        optimizers: list[RowSparse],
    ) -> tuple[_State, dict[str, torch.Tensor] | None, dict[str, torch.Tensor] | None]:
        data = load_matching_checkpoint(path, fingerprint)
        module.load_state_dict(data["model"])
        for opt, st in zip(optimizers, data["optimizers"], strict=True):
            st["state"] = {int(k): v for k, v in st["state"].items()}
            opt.load_state_dict(st)
        state = _State(**data["trainer"])
        average = data.get("average")
        if average is not None:  # on the module's device, as the running mean was kept
            average = {k: v.to(module.state_dict()[k].device) for k, v in average.items()}
        return state, data.get("best"), average


_BOOKKEEPING = {
    "epoch",
    "train_loss",
    "seconds",
    "cpu_seconds",
    "lr",
    "weight_change",
    "best_epoch",
}


def _copy_weights(
    module: nn.Module, into: dict[str, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """A copy of ``module``'s weights, reusing the buffers of an earlier copy: fresh
    allocations every improving epoch cost more than a small model's epoch."""
    weights = module.state_dict()
    if into is None or into.keys() != weights.keys():
        return {k: v.detach().clone() for k, v in weights.items()}
    for k, v in weights.items():
        into[k].copy_(v)
    return into


def _final_weights(
    cfg: TrainConfig,
    validating: bool,
    best: dict[str, torch.Tensor] | None,
    average: dict[str, torch.Tensor] | None,
) -> dict[str, torch.Tensor] | None:
    """What a finished run ends with (None: the last iterate): the best validated weights under
    early stopping, else the weight average when one is kept, else the weights of the lowest
    training loss under early stopping."""
    if validating and cfg.early_stopping and best is not None:
        return best
    if average is not None:
        return average
    return best if cfg.early_stopping else None


@contextlib.contextmanager
def _swapped_in(module: nn.Module, weights: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """``module`` holds ``weights`` inside the block and its own weights again after it
    (nothing happens when ``weights`` is None)."""
    if weights is None:
        yield
        return
    own = {k: v.detach().clone() for k, v in module.state_dict().items()}
    module.load_state_dict(weights)
    try:
        yield
    finally:
        module.load_state_dict(own)


def _accumulate_mean(
    module: nn.Module, mean: dict[str, torch.Tensor] | None, n: int
) -> dict[str, torch.Tensor]:
    """Fold ``module``'s weights into the running mean of ``n - 1`` earlier snapshots
    (``mean`` is None for the first); integer buffers keep their latest value."""
    weights = module.state_dict()
    if mean is None or n == 1:
        return {k: v.detach().clone() for k, v in weights.items()}
    for k, v in weights.items():
        if v.is_floating_point():
            mean[k].add_(v.detach() - mean[k], alpha=1.0 / n)
        else:
            mean[k].copy_(v)
    return mean


def _relative_change(before: list[torch.Tensor], module: nn.Module) -> float:
    num = 0.0
    den = 0.0
    for old, p in zip(before, module.parameters(), strict=True):
        num += float((p.detach() - old).double().square().sum())
        den += float(old.double().square().sum())
    return math.sqrt(num) / max(math.sqrt(den), 1e-12)


def _autocast(enabled: bool, module: nn.Module) -> contextlib.AbstractContextManager:
    """bfloat16 autocast for the forward pass when ``enabled`` and the module is on CUDA.

    bfloat16 keeps float32's exponent range, so no loss scaling is needed; on CPU the option is
    ignored (CPU autocast slows the small matrices of these models down).
    """
    param = next(module.parameters(), None)
    if enabled and param is not None and param.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
