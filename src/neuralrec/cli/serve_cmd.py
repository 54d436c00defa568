"""``neuralrec serve DIR``: the HTTP service (FastAPI on uvicorn) for a trained model."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from neuralrec.cli.common import err

#: environment through which `--workers N` passes the options to each worker process
_ENV = "NEURALREC_SERVE_"


def serve(
    model_dir: Path = typer.Argument(..., help="a run or model directory"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: all interfaces)"),
    port: int = typer.Option(8000, min=1, max=65535),
    api_key: str = typer.Option(
        None,
        "--api-key",
        envvar="NEURALREC_API_KEY",
        help="require this key (X-API-Key or Bearer) on every data route; /health, the page and /docs stay open (prefer the env var: arguments show in ps)",
        show_default=False,
    ),
    workers: int = typer.Option(
        1, min=1, help="worker processes; more than one implies --watch (each has its own model)"
    ),
    watch: float = typer.Option(
        0.0, help="seconds between checks of DIR for a new artifact (0: reload only on request)"
    ),
    ann: str = typer.Option("auto", help="approximate similar-items index: auto, on or off"),
    torch_threads: int = typer.Option(
        1, min=1, help="torch threads per worker: requests are small, so more threads only contend"
    ),
    access_log: bool = typer.Option(False, help="log every request (slower)"),
    log_level: str = typer.Option("info"),
) -> None:
    """Serve recommendations over HTTP; open http://HOST:PORT/ to try the model, /docs for the API."""
    import uvicorn

    from neuralrec.errors import ConfigError
    from neuralrec.models.persistence import read_manifest

    if ann not in ("auto", "on", "off"):
        raise ConfigError(f"--ann must be auto, on or off, not {ann!r}")
    read_manifest(model_dir)  # fail fast, with the artifact's own message
    if workers > 1 and not watch:
        # POST /admin/reload reaches one worker only; the watch keeps all of them in step
        watch = 2.0
        err("note: --workers > 1: watching DIR every 2 s so every worker reloads")
    os.environ.update(
        {
            f"{_ENV}DIR": str(model_dir.resolve()),
            f"{_ENV}ANN": ann,
            f"{_ENV}WATCH": str(watch),
            f"{_ENV}TORCH_THREADS": str(torch_threads),
        }
    )
    if api_key:
        os.environ["NEURALREC_API_KEY"] = api_key
    # one worker: build the app here, so a broken model is one clear error line (exit 2);
    # several: uvicorn imports the factory in each worker process
    target = app_from_env() if workers == 1 else "neuralrec.cli.serve_cmd:app_from_env"
    err(f"serving {model_dir} on http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(
        target,
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level=log_level,
    )


def app_from_env():  # -> FastAPI (not imported at CLI start-up: fastapi is an optional extra)
    """The app factory uvicorn calls in each worker, configured by ``serve`` through the environment."""
    import torch

    from neuralrec.serving import create_app

    torch.set_num_threads(int(os.environ.get(f"{_ENV}TORCH_THREADS", "1")))
    watch = float(os.environ.get(f"{_ENV}WATCH", "0"))
    return create_app(
        os.environ[f"{_ENV}DIR"],
        api_key=os.environ.get("NEURALREC_API_KEY") or None,
        ann=os.environ.get(f"{_ENV}ANN", "auto"),  # type: ignore[arg-type]
        watch_seconds=watch or None,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
