"""The HTTP service: ``create_app(model_dir)`` (FastAPI), run by ``neuralrec serve DIR``.

Needs the ``serve`` extra (fastapi, uvicorn); importing this package without it says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> FastAPI:
    """Build the FastAPI app serving a model directory (see :func:`neuralrec.serving.app.create_app`)."""
    try:
        from neuralrec.serving.app import create_app as _create
    except ModuleNotFoundError as exc:  # fastapi/uvicorn are the optional `serve` extra
        if exc.name not in ("fastapi", "starlette", "uvicorn"):
            raise
        from neuralrec.errors import ConfigError

        raise ConfigError(
            f"serving needs the serve extra ({exc.name} is missing): pip install 'neuralrec[serve]'"
        ) from exc
    return _create(*args, **kwargs)
