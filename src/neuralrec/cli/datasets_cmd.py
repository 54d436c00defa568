"""``neuralrec datasets``: list, inspect and download datasets."""

from __future__ import annotations

import json

import typer

datasets_app = typer.Typer(help="List, inspect and download datasets.", no_args_is_help=True)


@datasets_app.command("info")
def info(
    name: str = typer.Argument(..., help="dataset name (e.g. ml-100k) or a file path"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Counts, density and rating histogram of a dataset."""
    from neuralrec.data.movielens import load_ml100k

    ds = load_ml100k() if name == "ml-100k" else None
    summary = ds.summary()
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        for k, v in summary.items():
            typer.echo(f"{k}: {v}")


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
