"""``tune``: search on the validation split only, refit on train+validation, score test once.

Each trial trains on the training part with early stopping on the validation part; Optuna's
median pruner stops trials whose per-epoch validation metric is clearly behind. The study lives
in ``DIR/study.db`` (SQLite), so a killed search resumes where it stopped: finished trials are
kept and the search runs until ``trials`` trials have completed or been pruned. The best
configuration is then refitted on train+validation for the best trial's number of epochs, and
the untouched test split is scored once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuralrec.errors import ConfigError
from neuralrec.utils.atomic import write_json
from neuralrec.workflow.runs import RunConfig, evaluate_split, load_run_data, write_run

SAMPLERS = ("tpe", "random", "grid")


@dataclass
class TuneResult:
    """What a search found and how the refitted model scored on test."""

    best_params: dict[str, Any]
    best_value: float
    metric: str
    direction: str
    n_trials: int
    test_metrics: dict[str, float]
    directory: Path | None


def _suggest(trial: Any, name: str, spec: tuple) -> Any:
    kind = spec[0]
    if kind == "float":
        return trial.suggest_float(
            name, spec[1], spec[2], log=bool(spec[3]) if len(spec) > 3 else False
        )
    if kind == "int":
        return trial.suggest_int(
            name, spec[1], spec[2], log=bool(spec[3]) if len(spec) > 3 else False
        )
    if kind == "cat":
        return trial.suggest_categorical(name, list(spec[1]))
    raise ConfigError(f"unknown search-space kind {kind!r} for {name}")


def _defaults_in_space(config: Any, space: dict[str, tuple]) -> dict[str, Any]:
    """The config's values of the searched parameters that lie inside their ranges."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        value = getattr(config, name, None)
        if value is None:
            continue
        if spec[0] == "cat":
            if value in list(spec[1]):
                out[name] = value
        elif spec[1] <= value <= spec[2]:
            out[name] = value
    return out


def _grid(space: dict[str, tuple], points: int = 3) -> dict[str, list[Any]]:
    """A grid over ``space``: categorical choices, ``points`` values per numeric range
    (geometric for log ranges)."""
    grid: dict[str, list[Any]] = {}
    for name, spec in space.items():
        if spec[0] == "cat":
            grid[name] = list(spec[1])
            continue
        lo, hi = spec[1], spec[2]
        log = len(spec) > 3 and spec[3]
        vals = [
            math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * t / (points - 1))
            if log
            else lo + (hi - lo) * t / (points - 1)
            for t in range(points)
        ]
        grid[name] = sorted({round(v) for v in vals}) if spec[0] == "int" else vals
    return grid


def tune(
    model: str,
    dataset: str,
    *,
    trials: int = 30,
    out: str | Path | None = None,
    sampler: str = "tpe",
    space: dict[str, tuple] | None = None,
    fixed: dict[str, Any] | None = None,
    timeout: float | None = None,
    quiet: bool = True,
    **options: Any,
) -> TuneResult:
    """Search ``model``'s hyperparameters on ``dataset``; ``options`` are RunConfig fields.

    ``space`` overrides the model's ``search_space``; ``fixed`` parameters are not searched.
    Without ``valid_fraction`` a 10% validation part is carved from training.
    """
    import optuna

    from neuralrec.models import create, get_model_class

    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; use {', '.join(SAMPLERS)}")
    cls = get_model_class(model)
    space = dict(space if space is not None else cls.search_space)
    fixed = dict(fixed or {})
    for k in fixed:
        space.pop(k, None)
    if not space:
        raise ConfigError(f"{model} has no search space; pass one")
    options.setdefault("valid_fraction", 0.1)
    cfg = RunConfig(model=model, dataset=str(dataset), params=fixed, **options)
    ds, sp = load_run_data(cfg)
    if sp.valid is None or not len(sp.valid):
        raise ConfigError("tuning needs a non-empty validation split (valid_fraction)")
    probe = create(model, **cfg.model_params())
    metric = getattr(probe.config, "monitor", "rmse" if probe.predicts_ratings else "ndcg@10")
    mode = getattr(probe.config, "monitor_mode", "min" if metric in ("rmse", "mae") else "max")
    direction = "minimize" if mode == "min" else "maximize"

    out_path = Path(out) if out is not None else None
    storage = None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{out_path / 'study.db'}"
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=cfg.seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=cfg.seed),
        "grid": lambda: optuna.samplers.GridSampler(_grid(space), seed=cfg.seed),
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"{model}-{Path(str(dataset)).name}-{cfg.split}",
        storage=storage,
        load_if_exists=True,
        direction=direction,
        sampler=samplers[sampler](),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
    )

    def objective(trial: Any) -> float:
        params = {name: _suggest(trial, name, spec) for name, spec in space.items()}
        m = create(model, **{**cfg.model_params(), **params})

        def report(record: dict[str, Any]) -> None:
            if metric in record:
                trial.report(float(record[metric]), int(record["epoch"]))
                if trial.should_prune():
                    raise optuna.TrialPruned()

        m.fit(sp.train, sp.valid, dataset=ds, quiet=True, on_epoch_end=report)
        value = _validation_value(m, sp, metric)
        best_epoch = m.history_[-1].get("best_epoch") if m.history_ else None
        trial.set_user_attr("best_epoch", best_epoch)
        return value

    if not study.trials and sampler != "grid":
        # the first trial is the model's defaults (where they lie in the space), so the search
        # can only improve on them on validation
        start = _defaults_in_space(probe.config, space)
        if start:
            study.enqueue_trial(start)
    done = sum(t.state.is_finished() for t in study.trials)
    remaining = max(0, trials - done)
    if remaining:
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=timeout,
            show_progress_bar=not quiet,
            catch=(ValueError,),
        )
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise ConfigError("no trial completed; widen the search space or check the data")
    best = study.best_trial
    best_params = {**fixed, **best.params}
    if (
        best.user_attrs.get("best_epoch")
        and "epochs" not in best_params
        and hasattr(probe.config, "epochs")
    ):
        # replay the validated run to its best epoch; a schedule that decays over `epochs`
        # keeps its length (cutting `epochs` would decay the lr faster than in the trial)
        if getattr(probe.config, "lr_schedule", "constant") in ("cosine", "step", "exponential"):
            best_params["stop_epoch"] = int(best.user_attrs["best_epoch"])
        else:
            best_params["epochs"] = int(best.user_attrs["best_epoch"])

    # refit on train + validation with the chosen values, score test once
    final_cfg = cfg.model_copy(update={"params": best_params, "refit": True})
    refit_split = sp.merged()
    final = create(model, **final_cfg.model_params())
    start = time.perf_counter()
    final.fit(refit_split.train, dataset=ds, quiet=quiet)
    seconds = time.perf_counter() - start
    test = evaluate_split(final, refit_split, cfg.relevance_threshold).summary()
    result = TuneResult(
        best_params, float(best.value), metric, direction, len(study.trials), test, out_path
    )
    if out_path is not None:
        from neuralrec.workflow.runs import Run

        write_run(Run(final_cfg, final, ds, refit_split, test, seconds, out_path / "best"))
        write_json(
            out_path / "tune.json",
            {
                "model": model,
                "metric": metric,
                "direction": direction,
                "best_value": best.value,
                "best_params": best_params,
                "test_metrics": test,
                "trials": [
                    {
                        "number": t.number,
                        "state": t.state.name,
                        "value": t.value,
                        "params": t.params,
                        "best_epoch": t.user_attrs.get("best_epoch"),
                    }
                    for t in study.trials
                ],
            },
        )
    return result


def _validation_value(model: Any, sp: Any, metric: str) -> float:
    """The monitored metric of the restored (best-epoch) model on the validation part."""
    hist = getattr(model, "history_", None)
    if hist:
        values = [h[metric] for h in hist if metric in h]
        if values:
            best_epoch = hist[-1].get("best_epoch")
            for h in hist:
                if h["epoch"] == best_epoch and metric in h:
                    return float(h[metric])
    # closed-form models: evaluate directly
    from neuralrec.data.splits import Split
    from neuralrec.evaluation import evaluate

    valid_split = Split(sp.train, sp.valid)
    if metric in ("rmse", "mae"):
        return float(evaluate(model, valid_split, protocol="rating").summary()[f"rating/{metric}"])
    name, _, k = metric.partition("@")
    res = evaluate(model, valid_split, protocol="full", ks=(int(k or 10),))
    return float(res.summary()[f"full/{name}@{int(k or 10)}"])
