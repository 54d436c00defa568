"""``neuralrec datasets``: list, inspect and download datasets.

Other commands take a dataset the same way: ``--dataset NAME_OR_PATH [--columns user=u,item=i]
[--sep ,]``, passed straight to :func:`neuralrec.data.load_dataset` (which parses both strings).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

datasets_app = typer.Typer(help="List, inspect and download datasets.", no_args_is_help=True)

COLUMNS_HELP = (
    "which column holds each role, e.g. user=userId,item=movieId,rating=rating,timestamp=ts "
    "(roles left out are auto-detected; positions 0,1,.. for files without a header)"
)
SEP_HELP = "field separator (sniffed when omitted): ',', '\\t' or tab, ';', '|', '::'"


def _stderr_progress(label: str) -> Any:
    """A download progress callback that rewrites one line on stderr."""

    def report(done: int, total: int | None) -> None:
        pct = f" {100 * done / total:5.1f}%" if total else ""
        sys.stderr.write(f"\r{label}: {done / 2**20:8.1f} MiB{pct}")
        if total and done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return report


@datasets_app.command("list")
def list_datasets(
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Known datasets and whether each is available offline or in the cache."""
    from neuralrec.data import dataset_status
    from neuralrec.data.registry import cache_dir, data_home, known_names

    rows = [dataset_status(name) for name in known_names()]
    if as_json:
        typer.echo(json.dumps({"data_home": str(data_home() or ""), "datasets": rows}))
        return
    from rich.console import Console
    from rich.table import Table

    home = data_home()
    table = Table(title=f"NEURALREC_DATA_HOME={home or '(unset)'}  cache={cache_dir()}")
    for col in ("name", "available", "download", "description"):
        table.add_column(col)
    for r in rows:
        where = (
            "offline"
            if r["offline"]
            else "offline zip"
            if r["offline_zip"]
            else "cached"
            if r["cached"]
            else "-"
        )
        size = f"{r['download_size'] / 2**20:.0f} MiB" if r["download_size"] else "?"
        table.add_row(r["name"], where, size, r["title"])
    Console().print(table)


@datasets_app.command("info")
def info(
    name: str = typer.Argument(..., help="dataset name (e.g. ml-100k) or a file/directory path"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object and nothing else"),
    columns: str | None = typer.Option(None, "--columns", help=COLUMNS_HELP),
    sep: str | None = typer.Option(None, "--sep", help=SEP_HELP),
    duplicates: str = typer.Option(
        "error", "--duplicates", help="repeated (user, item) pairs: error, last, first or mean"
    ),
    rating_scale: str | None = typer.Option(
        None, "--rating-scale", help="LOW,HIGH: reject ratings outside this range (files)"
    ),
    no_download: bool = typer.Option(False, "--no-download", help="never download"),
    no_cache: bool = typer.Option(False, "--no-cache", help="parse again, ignore the cache"),
) -> None:
    """Counts, density, rating histogram and metadata of a dataset."""
    from neuralrec.data import load_dataset

    ds = load_dataset(
        name,
        columns=columns,
        sep=sep,
        duplicates=duplicates,  # type: ignore[arg-type]
        rating_scale=_parse_scale(rating_scale),
        download=not no_download,
        cache=not no_cache,
        progress=_stderr_progress(f"downloading {name}"),
    )
    summary = ds.summary()
    summary["rating_scale"] = list(ds.rating_scale) if ds.rating_scale else None
    summary["source"] = ds.info.get("source")
    for key in ("release", "cache"):
        if key in ds.info:
            summary[key] = ds.info[key]
    if as_json:
        typer.echo(json.dumps(summary))
        return
    _print_summary(summary)


def _parse_scale(text: str | None) -> tuple[float, float] | None:
    from neuralrec.errors import ConfigError

    if not text:
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--rating-scale: expected LOW,HIGH, got {text!r}") from None
    if lo > hi:
        raise ConfigError(f"--rating-scale: LOW must not exceed HIGH, got {text!r}")
    return lo, hi


def _print_summary(s: dict[str, Any]) -> None:
    typer.echo(f"{s['name']}: {s['users']} users x {s['items']} items, {s['interactions']} rows")
    typer.echo(f"  density        {s['density']:.4%}")
    typer.echo(f"  explicit       {s['explicit']}   timestamps {s['has_timestamps']}")
    for key in ("rating_scale", "rating_mean", "time_range", "release", "source", "cache"):
        if s.get(key) is not None:
            value = f"{s[key]:.4f}" if isinstance(s[key], float) else s[key]
            typer.echo(f"  {key:<14} {value}")
    typer.echo(f"  item features  {', '.join(s['item_features']) or '-'}")
    typer.echo(f"  user features  {', '.join(s['user_features']) or '-'}")
    hist = s.get("rating_histogram")
    if hist:
        typer.echo("  ratings:")
        top = max(hist.values())
        for value, count in hist.items():
            bar = "#" * max(1, round(40 * count / top))
            typer.echo(f"    {value:>5} {count:>10}  {bar}")


@datasets_app.command("download")
def download(
    name: str = typer.Argument(..., help="dataset name, e.g. ml-1m"),
    force: bool = typer.Option(False, "--force", help="download again even if cached"),
) -> None:
    """Download a dataset from GroupLens into the cache, verifying its checksum."""
    from neuralrec.data import dataset_status, download_dataset

    status = dataset_status(name)
    if status["offline"] and not force:
        typer.echo(f"{name}: available offline at {status['offline']} (--force downloads anyway)")
        return
    path = download_dataset(name, force=force, progress=_stderr_progress(f"downloading {name}"))
    typer.echo(f"{name}: {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
