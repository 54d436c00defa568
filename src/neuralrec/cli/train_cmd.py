"""``neuralrec train`` and ``neuralrec evaluate``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from neuralrec.cli.common import echo_json, err, parse_sets
from neuralrec.errors import ConfigError


def train(
    model: str = typer.Argument(
        None, help="model name (see `neuralrec models`); optional with --config"
    ),
    dataset: str = typer.Option(
        None, "--dataset", "-d", help="dataset name (ml-100k, ...) or a file/directory path"
    ),
    split: str = typer.Option(
        None,
        "--split",
        help="NAME[:TEST_FRACTION], e.g. u1, random:0.1, user-random:0.2, leave-one-out",
    ),
    seed: int = typer.Option(None, "--seed", help="seed for the split and the model"),
    sets: list[str] = typer.Option(
        None, "--set", help="model hyperparameter key=value (repeatable)"
    ),
    valid_fraction: float = typer.Option(
        None, "--valid-fraction", help="share of rows carved from training for early stopping"
    ),
    keep_cold: bool = typer.Option(
        None, "--keep-cold/--drop-cold", help="keep test rows whose user/item is unseen in training"
    ),
    columns: str = typer.Option(
        None, "--columns", help="column mapping for files: user=u,item=i,rating=r,timestamp=t"
    ),
    sep: str = typer.Option(None, "--sep", help="field separator for files"),
    config: Path = typer.Option(
        None, "--config", help="a run config (TOML) or a run directory; flags override it"
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="run directory to write (model artifact + metrics)"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    as_json: bool = typer.Option(False, "--json", help="print the test metrics as one JSON object"),
    device: str = typer.Option(
        None, "--device", help="cpu, cuda, cuda:N or auto (sets the model's device)"
    ),
    nproc: int = typer.Option(
        None, "--nproc", min=1, help="train data-parallel in N local processes (torchrun)"
    ),
) -> None:
    """Train a model on a dataset split and save the run (resumes if interrupted)."""
    from neuralrec.training.distributed import env_world, launch, shutdown
    from neuralrec.workflow import RunConfig
    from neuralrec.workflow import train as run_train

    if nproc and nproc > 1 and env_world()[1] == 1:
        raise typer.Exit(launch(nproc, _without_nproc(sys.argv[1:])))

    base = RunConfig.from_file(config).model_dump() if config is not None else {}
    flags = {
        "model": model,
        "dataset": dataset,
        "split": split,
        "seed": seed,
        "valid_fraction": valid_fraction,
        "keep_cold": keep_cold,
        "columns": columns,
        "sep": sep,
    }
    merged = {**base, **{k: v for k, v in flags.items() if v is not None}}
    merged["params"] = {**base.get("params", {}), **parse_sets(sets)}
    if device is not None:
        merged["params"]["device"] = device
    if not merged.get("model") or not merged.get("dataset"):
        raise ConfigError("train needs MODEL and --dataset (or a --config that names them)")
    cfg = RunConfig.model_validate(merged)
    run = run_train(config=cfg, out=out, quiet=quiet)
    shutdown()
    if env_world()[0] != 0:
        return  # only rank 0 reports
    if as_json:
        echo_json(
            {
                "model": cfg.model,
                "out": str(out),
                "fit_seconds": run.fit_seconds,
                "metrics": run.metrics,
            }
        )
        return
    err(
        f"trained {cfg.model} on {run.dataset.name} ({cfg.split}, seed {cfg.seed}) in {run.fit_seconds:.2f} s -> {out}"
    )
    _print_metrics(run.metrics)


def evaluate(
    run_dir: Path = typer.Argument(..., help="a run directory written by `neuralrec train`"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Test metrics of a saved run (RMSE, MAE, AUC, P/R/NDCG@10 on full ranking)."""
    from neuralrec.workflow import evaluate as run_evaluate

    metrics = run_evaluate(run_dir)
    if as_json:
        echo_json(metrics)
    else:
        _print_metrics(metrics)


def _print_metrics(metrics: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("metric", "value")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("evaluate")(evaluate)


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line minus ``--nproc N`` / ``--nproc=N`` (the children must not relaunch)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        out.append(arg)
    return out
