"""``neuralrec compare`` and ``neuralrec quickstart``."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import typer

from neuralrec.cli.common import echo_json, err, parse_sets
from neuralrec.errors import ConfigError

#: the quickstart's models: what a newcomer should see first on MovieLens 100K
QUICKSTART_MODELS = ("bias", "biased-mf", "mf-history", "ease")
#: whose item factors give the quickstart's neighbours: biased-mf fitted by the trainer, whose
#: factor cosines group films by audience far better than the Gibbs posterior mean's do
#: (Toy Story: 5-6 family films of 10 against 1-3). BPR with popularity-drawn negatives and
#: cdae follow genres better over all movies, but fit in 60-90 s against ~5 s, and on u1's
#: training part give Toy Story 4 of 10 against 6 (docs/hybrid.md)
NEIGHBOURS_MODEL = ("biased-mf", {"estimator": "map"})
#: neighbours come from movies with at least this many training ratings
QUICKSTART_MIN_COUNT = 20


def _per_model_params(sets: list[str] | None, models: list[str]) -> dict[str, dict[str, Any]]:
    """``--set biased-mf.factors=64`` -> ``{"biased-mf": {"factors": 64}}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_sets(sets).items():
        model, dot, name = key.rpartition(".")
        if not dot:
            raise ConfigError(f"compare --set needs MODEL.key=value, got {key!r}")
        model = model.replace("_", "-")
        if model not in models:
            raise ConfigError(f"--set {key}: {model!r} is not among the compared models {models}")
        out.setdefault(model, {})[name] = value
    return out


def compare(
    models: list[str] = typer.Argument(
        ..., help="models to compare; the first is the reference for p-values"
    ),
    dataset: str = typer.Option(..., "--dataset", "-d"),
    split: str = typer.Option("random:0.2", "--split"),
    seed: int = typer.Option(0, "--seed"),
    sets: list[str] = typer.Option(None, "--set", help="MODEL.key=value (repeatable)"),
    valid_fraction: float = typer.Option(None, "--valid-fraction"),
    columns: str = typer.Option(None, "--columns"),
    sep: str = typer.Option(None, "--sep"),
    out: Path = typer.Option(
        None, "--out", "-o", help="write compare.md/.html/.json and PNG charts here"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train several models on one split and print one comparison table."""
    from neuralrec.workflow import compare as run_compare

    result = run_compare(
        list(models),
        dataset,
        params=_per_model_params(sets, list(models)),
        out=out,
        quiet=quiet,
        split=split,
        seed=seed,
        valid_fraction=valid_fraction,
        columns=columns,
        sep=sep,
    )
    table = result.table()
    if as_json:
        echo_json(
            [
                {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in table.to_dict("records")
            ]
        )
        return
    _print_table(table, result.to_markdown().strip().splitlines()[-1])
    if out is not None:
        err(f"report: {out / 'compare.html'}")


def quickstart(
    dataset: str = typer.Option("ml-100k", "--dataset", "-d"),
    split: str = typer.Option("u1", "--split"),
    user: str = typer.Option("1", "--user", help="whose top-10 to show"),
    item: str = typer.Option("Toy Story (1995)", "--item", help="whose neighbours to show"),
    out: Path = typer.Option(None, "--out", "-o", help="also write the comparison report here"),
) -> None:
    """The main job: train strong models on MovieLens 100K, compare them, show a top-10 and neighbours."""
    from rich.console import Console

    from neuralrec.models import create
    from neuralrec.workflow import compare as run_compare

    console = Console()
    start = time.perf_counter()
    console.print(
        f"[bold]neuralrec quickstart[/]: {', '.join(QUICKSTART_MODELS)} on {dataset}, split {split}"
    )
    result = run_compare(list(QUICKSTART_MODELS), dataset, split=split, out=out, quiet=False)
    ds = result.dataset
    info = ds.summary()
    console.print(f"{info['users']} users, {info['items']} items, {info['interactions']} ratings")
    _print_table(result.table(), result.to_markdown().strip().splitlines()[-1])
    # the top-10 from the best full-ranking model: rating models put rarely rated films with a
    # few high ratings first, a ranker what the user is likely to watch and like
    ranked = [e for e in result.entries if "full/ndcg@10" in e.result.summary()]
    best = max(ranked, key=lambda e: e.result.summary()["full/ndcg@10"])
    model = best.model
    ids, scores = model.recommend(user, 10)
    _print_items(
        console, f"top-10 for user {user} ({best.label}, unseen movies)", model, ids, scores
    )
    # neighbours from latent factors: co-occurrence (EASE, ItemKNN) ranks blockbusters near
    # everything, the factor cosine finds films of the same kind (docs/hybrid.md's benchmark)
    name, params = NEIGHBOURS_MODEL
    model = create(name, **params).fit(result.split.train, dataset=ds)
    label = " ".join([name, *(f"{k}={v}" for k, v in params.items())])
    item_id = model.find_item(item)
    ids, scores = model.similar_items(item_id, 10, min_count=QUICKSTART_MIN_COUNT)
    _print_items(
        console,
        f"movies most similar to {model.item_title(item_id)} ({label}, cosine of item "
        f"factors, movies with {QUICKSTART_MIN_COUNT}+ ratings)",
        model,
        ids,
        scores,
    )
    console.print(f"done in {time.perf_counter() - start:.1f} s")


def _print_items(console, title: str, model, ids, scores) -> None:
    from rich.table import Table

    table = Table("rank", "item", "title", "score", title=title)
    for n, (i, s) in enumerate(zip(ids, scores, strict=True), 1):
        table.add_row(str(n), str(i), model.item_title(i) or "", f"{s:.3f}")
    console.print(table)


def _print_table(table, note: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from neuralrec.workflow.compare import DISPLAY

    t = Table(*[DISPLAY.get(str(c), str(c)) for c in table.columns], caption=note)
    for _, row in table.iterrows():
        t.add_row(*[_cell(v) for v in row])
    console = Console()
    if not console.is_terminal:  # a log or a pipe: do not squash the table into 80 columns
        console = Console(width=max(console.width, 160))
    console.print(t)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else (f"{v:.2g}" if abs(v) < 1e-3 and v else f"{v:.4f}")
    return str(v)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
    app.command("quickstart")(quickstart)
