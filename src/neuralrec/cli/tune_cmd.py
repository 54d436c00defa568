"""``neuralrec tune``: Optuna search on the validation split, refit, one test score."""

from __future__ import annotations

from pathlib import Path

import typer

from neuralrec.cli.common import echo_json, err, parse_sets


def tune(
    model: str = typer.Argument(..., help="model to tune"),
    dataset: str = typer.Option(..., "--dataset", "-d"),
    split: str = typer.Option("random:0.2", "--split"),
    seed: int = typer.Option(0, "--seed"),
    trials: int = typer.Option(
        30, "--trials", min=1, help="trials in total (a resumed study counts earlier ones)"
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="study.db, tune.json and the refitted run in best/"
    ),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, random or grid"),
    valid_fraction: float = typer.Option(
        0.1, "--valid-fraction", help="share of all rows carved from training for validation"
    ),
    sets: list[str] = typer.Option(
        None, "--set", help="fixed hyperparameter key=value, not searched"
    ),
    timeout: float = typer.Option(None, "--timeout", help="stop searching after this many seconds"),
    columns: str = typer.Option(None, "--columns"),
    sep: str = typer.Option(None, "--sep"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Search hyperparameters on validation only, refit on train+validation, score test once."""
    from neuralrec.tuning import tune as run_tune

    res = run_tune(
        model,
        dataset,
        trials=trials,
        out=out,
        sampler=sampler,
        fixed=parse_sets(sets),
        timeout=timeout,
        quiet=quiet,
        split=split,
        seed=seed,
        valid_fraction=valid_fraction,
        columns=columns,
        sep=sep,
    )
    summary = {
        "model": model,
        "trials": res.n_trials,
        "metric": res.metric,
        "best_validation": res.best_value,
        "best_params": res.best_params,
        "test_metrics": res.test_metrics,
        "run": str(out / "best"),
    }
    if as_json:
        echo_json(summary)
        return
    err(
        f"{res.n_trials} trials; best validation {res.metric} {res.best_value:.4f} with {res.best_params}"
    )
    for k, v in res.test_metrics.items():
        typer.echo(f"test {k}: {v:.4f}")
    err(f"refitted run: {out / 'best'}")


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
