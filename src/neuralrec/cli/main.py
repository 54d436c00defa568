"""Entry point of the ``neuralrec`` command. Each command group lives in its own module and
adds itself to :data:`app` through a ``register(app)`` function listed in :data:`COMMANDS`."""

from __future__ import annotations

import importlib
import sys

import typer

from neuralrec.errors import NeuralrecError

app = typer.Typer(
    name="neuralrec",
    help="Neural-network recommender systems: train, evaluate, tune, recommend and serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: command modules under neuralrec.cli, each with register(app)
COMMANDS = ("datasets_cmd", "train_cmd", "use_cmd", "compare_cmd", "tune_cmd", "serve_cmd")


def _register_all() -> None:
    for name in COMMANDS:
        importlib.import_module(f"neuralrec.cli.{name}").register(app)


_register_all()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="print the version and exit", is_eager=True
    ),
) -> None:
    if version:
        from neuralrec._version import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    """Run the CLI; library errors print one clear line (no traceback) and exit with status 2."""
    try:
        # without standalone mode click returns a command's typer.Exit code instead of exiting
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except NeuralrecError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
