"""Training runs: ``train`` a model into a run directory, ``evaluate`` it, ``load`` it.

``train`` loads a dataset, splits it, fits a model and (with ``out``) writes a run directory:
the model artifact plus ``config.toml`` (the resolved run config: ``neuralrec train --config
DIR/config.toml`` reproduces the run), ``run.json``, ``metrics.json`` (test metrics) and
``learning_curve.png``. ``evaluate`` rebuilds the run's split from its config and scores the
test part; ``load`` returns the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from neuralrec._version import __version__
from neuralrec.data.dataset import Dataset
from neuralrec.data.splits import Split, SplitSpec
from neuralrec.errors import ConfigError
from neuralrec.utils import tomlio

RUN_CONFIG = "config.toml"


class RunConfig(BaseModel):
    """Everything that determines a training run; it round-trips through ``config.toml``."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model: str
    dataset: str
    columns: str | None = Field(
        None, description="column mapping for files, e.g. user=u,item=i,rating=r"
    )
    sep: str | None = None
    split: str = "random:0.2"
    seed: int = 0
    valid_fraction: float | None = Field(
        None, description="share of all rows carved from training for early stopping"
    )
    keep_cold: bool = False
    refit: bool = Field(
        False, description="train on train+validation (after tuning); no early stopping"
    )
    relevance_threshold: float | None = Field(
        4.0,
        description="ranking metrics count test ratings >= this as relevant; None: every test interaction",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="model hyperparameters")

    def model_params(self) -> dict[str, Any]:
        """Hyperparameters with the run seed applied unless ``params`` sets its own."""
        return {"seed": self.seed, **self.params}

    def to_toml(self) -> str:
        data = self.model_dump(mode="json")
        return tomlio.dumps(data)

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        """Read ``path`` (a TOML file, or a run directory holding config.toml)."""
        path = Path(path)
        if path.is_dir():
            path = path / RUN_CONFIG
        try:
            return cls.model_validate(tomlio.load(path))
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from exc


@dataclass
class Run:
    """The outcome of :func:`train`."""

    config: RunConfig
    model: Any
    dataset: Dataset
    split: Split
    metrics: dict[str, float]
    fit_seconds: float
    directory: Path | None = None


def load_run_data(cfg: RunConfig) -> tuple[Dataset, Split]:
    """The dataset and the (deterministic) split a run config names."""
    from neuralrec.data import load_dataset, split

    ds = load_dataset(cfg.dataset, columns=cfg.columns, sep=cfg.sep)
    sp = split(
        ds.interactions,
        cfg.split,
        seed=cfg.seed,
        valid_fraction=cfg.valid_fraction,
        keep_cold=cfg.keep_cold,
    )
    return ds, sp


def train(
    model: str | None = None,
    dataset: str | None = None,
    *,
    config: RunConfig | None = None,
    out: str | Path | None = None,
    quiet: bool = True,
    **options: Any,
) -> Run:
    """Train ``model`` on ``dataset`` (or as ``config`` says) and optionally save a run directory.

    ``options`` are RunConfig fields: ``split``, ``seed``, ``valid_fraction``, ``keep_cold``,
    ``columns``, ``sep``, ``params`` (model hyperparameters). A killed run resumes from the
    checkpoint in ``out`` when started again with the same config.
    """
    from neuralrec.models import create

    if config is None:
        if model is None or dataset is None:
            raise ConfigError("train needs a model and a dataset (or a config)")
        config = RunConfig(model=model, dataset=str(dataset), **options)
    SplitSpec.parse(config.split)
    ds, sp = load_run_data(config)
    recommender = create(config.model, **config.model_params())
    from neuralrec.training.distributed import init_from_env

    # under torchrun every rank trains its shard; rank 0 alone evaluates and writes the run
    dist = init_from_env(getattr(recommender.config, "device", "cpu"))
    if dist is not None:
        recommender.dist = dist
    out_path = Path(out) if out is not None else None
    checkpoints = None
    if out_path is not None:
        checkpoints = out_path.with_name(f".{out_path.name}.checkpoints")
    start = time.perf_counter()
    recommender.fit(sp.train, sp.valid, dataset=ds, checkpoint_dir=checkpoints, quiet=quiet)
    fit_seconds = time.perf_counter() - start
    if dist is not None and not dist.is_main:
        return Run(config, recommender, ds, sp, {}, fit_seconds, None)
    metrics = evaluate_split(recommender, sp, config.relevance_threshold).summary()
    run = Run(config, recommender, ds, sp, metrics, fit_seconds, out_path)
    if out_path is not None:
        write_run(run)
        if checkpoints is not None and checkpoints.exists():
            import shutil

            shutil.rmtree(checkpoints, ignore_errors=True)
    return run


def evaluate_split(
    model: Any, sp: Split, relevance_threshold: float | None = 4.0, ks: tuple[int, ...] = (10,)
) -> Any:
    """Test-split evaluation of a fitted model: rating metrics where the data has ratings (RMSE/MAE
    for rating models, AUC for all) and full-ranking P/R/NDCG/HR/MAP/MRR@k.

    Ranking relevance: test ratings >= ``relevance_threshold``, or every test interaction when it
    is None or the data has no ratings. Returns an :class:`EvaluationResult`.
    """
    from neuralrec.evaluation import evaluate

    has_ratings = sp.test.ratings is not None
    protocols = ["rating", "full"] if has_ratings else ["full"]
    threshold = relevance_threshold if has_ratings else None
    return evaluate(model, sp, protocol=protocols, ks=ks, relevance_threshold=threshold)


def write_run(run: Run) -> None:
    from neuralrec.models.persistence import save_model

    run_info = {
        "model": run.config.model,
        "dataset": run.dataset.name,
        "split": str(SplitSpec.parse(run.config.split)),
        "seed": run.config.seed,
        "train_rows": len(run.split.train),
        "valid_rows": 0 if run.split.valid is None else len(run.split.valid),
        "test_rows": len(run.split.test),
        "test_rows_dropped_cold": run.split.dropped_cold,
        "fit_seconds": run.fit_seconds,
        "neuralrec_version": __version__,
    }

    def extra(directory: Path) -> None:
        (directory / RUN_CONFIG).write_text(run.config.to_toml())
        if run.model.history_:
            from neuralrec.training.plots import learning_curve

            learning_curve(
                run.model.history_, directory / "learning_curve.png", title=run.config.model
            )

    save_model(
        run.model,
        run.directory,
        extra={"run.json": run_info, "metrics.json": run.metrics},
        writer=extra,
    )


def load(path: str | Path, device: str | None = None) -> Any:
    """The model saved in a run (or artifact) directory, ready to recommend.

    ``device`` places a torch model's weights; by default where it was trained, or the CPU.
    """
    from neuralrec.models.base import Recommender

    return Recommender.load(path, device)


def evaluate(path: str | Path, ks: tuple[int, ...] = (10,)) -> dict[str, float]:
    """Test metrics of a saved run, recomputed from its config (same split, same seed)."""
    cfg = RunConfig.from_file(path)
    _, sp = load_run_data(cfg)
    return evaluate_split(load(path), sp, cfg.relevance_threshold, ks=ks).summary()
