"""``neuralrec recommend``, ``neuralrec similar`` and ``neuralrec models``: using a trained model."""

from __future__ import annotations

from pathlib import Path

import typer

from neuralrec.cli.common import echo_json


def recommend(
    run_dir: Path = typer.Argument(..., help="a run or model directory"),
    user: str = typer.Option(
        None, "--user", "-u", help="user id (unknown users get popular items)"
    ),
    liked: str = typer.Option(
        None, "--liked", help="comma-separated item ids a new user liked (cold start)"
    ),
    k: int = typer.Option(10, "-k", "--k", min=1, max=1000),
    include_seen: bool = typer.Option(
        False, "--include-seen", help="do not exclude items the user already has"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Top-K items for a user (or for a list of liked items), with titles where known."""
    from neuralrec.errors import ConfigError
    from neuralrec.workflow import load

    model = load(run_dir)
    if (user is None) == (liked is None):
        raise ConfigError("give exactly one of --user or --liked")
    if user is not None:
        known = user in model.user_ids_
        ids, scores = model.recommend(user, k, exclude_seen=not include_seen)
    else:
        known = False
        items = [s.strip() for s in liked.split(",") if s.strip()]
        ids, scores = model.recommend_from_history(items, k)
    rows = [_row(model, i, s) for i, s in zip(ids, scores, strict=True)]
    if as_json:
        echo_json({"user": user, "liked": liked, "cold_start": not known, "items": rows})
        return
    _table(
        f"top-{k} for user {user}"
        if user is not None
        else f"top-{k} for a visitor who liked {liked}",
        rows,
    )


def similar(
    run_dir: Path = typer.Argument(..., help="a run or model directory"),
    item: str = typer.Option(..., "--item", "-i", help='item id or title, e.g. "Toy Story (1995)"'),
    k: int = typer.Option(10, "-k", "--k", min=1, max=1000),
    min_count: int = typer.Option(
        0, "--min-count", min=0, help="only items with at least this many training interactions"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The K items most similar to an item (cosine in the model's item space)."""
    from neuralrec.workflow import load

    model = load(run_dir)
    item_id = model.find_item(item)
    ids, scores = model.similar_items(item_id, k, min_count=min_count)
    rows = [_row(model, i, s) for i, s in zip(ids, scores, strict=True)]
    if as_json:
        echo_json({"item": _row(model, item_id, None), "similar": rows})
        return
    title = model.item_title(item_id)
    _table(f"items similar to {item_id}" + (f" ({title})" if title else ""), rows)


def models() -> None:
    """List the available models."""
    from neuralrec.models import available_models, get_model_class

    for name in available_models():
        cls = get_model_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        typer.echo(f"{name:18s} {cls.task:8s} {doc}")


def _row(model, item_id, score) -> dict:
    row = {"item": item_id.item() if hasattr(item_id, "item") else item_id}
    title = model.item_title(item_id)
    if title is not None:
        row["title"] = title
    if score is not None:
        row["score"] = float(score)
    return row


def _table(title: str, rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("rank", "item", "title", "score", title=title)
    for n, r in enumerate(rows, 1):
        table.add_row(str(n), str(r["item"]), r.get("title", ""), f"{r['score']:.4f}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend)
    app.command("similar")(similar)
    app.command("models")(models)
