"""The HTTP service: ``create_app(model_dir)`` builds a FastAPI app serving one model artifact.

Routes: ``GET /recommend/{user_id}``, ``POST /recommend`` (a visitor's liked items),
``GET /similar/{item_id}``, ``GET /items?search=``, ``GET /health``, ``GET /model``,
``POST /admin/reload``; the try-it page at ``/`` and OpenAPI docs at ``/docs``.

Every request takes the model snapshot current when its handler starts (``served =
holder.current``, one read) and uses only that, so a reload in the meantime never mixes two models in one answer. Scoring a
small catalog takes well under a millisecond, less than a hop to the thread pool costs, so it
runs inline; catalogs of ``thread_items`` items or more are scored in the thread pool, so one
slow request never stalls the event loop. Reloads always load in the thread pool. Answers are
serialised once by pydantic (``model_dump_json``), not validated a second time by FastAPI.
"""

# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime, and
# they use names local to create_app (K)
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from neuralrec._version import __version__
from neuralrec.errors import ArtifactError, UnknownIdError
from neuralrec.serving.ann import DEFAULT_ANN_THRESHOLD, AnnMode
from neuralrec.serving.middleware import DEFAULT_MAX_BODY, ApiKeyCheck, BodyLimit, CatchAll
from neuralrec.serving.schemas import (
    MAX_K,
    ErrorResponse,
    Health,
    HistoryRecommendations,
    HistoryRequest,
    ItemSearch,
    ModelInfo,
    Recommendations,
    Reloaded,
    SimilarItems,
)
from neuralrec.serving.state import ModelHolder, ServedModel

log = logging.getLogger(__name__)
T = TypeVar("T")

STATIC_DIR = Path(__file__).with_name("static")
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"number of items, 1..{MAX_K}")]
_ERRORS = {
    401: {"model": ErrorResponse, "description": "missing or wrong API key"},
    413: {"model": ErrorResponse, "description": "request body too large"},
    422: {"model": ErrorResponse, "description": "invalid parameters or body"},
}


def create_app(
    model_dir: str | Path,
    api_key: str | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    ann: AnnMode = "auto",
    ann_threshold: int = DEFAULT_ANN_THRESHOLD,
    watch_seconds: float | None = None,
    thread_items: int = 50_000,
) -> FastAPI:
    """A FastAPI app serving the artifact (or run directory) ``model_dir``.

    ``api_key`` protects every data route (``/health``, the page and the docs stay open);
    ``watch_seconds`` polls the directory and reloads when a new artifact is renamed into place
    (what keeps several worker processes in step); catalogs of ``thread_items`` or more items
    are scored in the thread pool instead of inline. Raises ArtifactError if the model is broken.
    """
    holder = ModelHolder(model_dir, ann=ann, ann_threshold=ann_threshold)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if watch_seconds:
            thread = threading.Thread(
                target=_watch, args=(holder, watch_seconds, stop), name="neuralrec-watch"
            )
            thread.daemon = True
            thread.start()
        yield
        stop.set()

    app = FastAPI(
        title="neuralrec",
        version=__version__,
        description="Recommendations, similar items and title search from a trained model.",
        lifespan=lifespan,
    )
    app.state.holder = holder
    app.add_exception_handler(RequestValidationError, _invalid_request)
    # the key check is a dependency only when a key is set: each dependency costs every request
    auth = [Depends(ApiKeyCheck(api_key))] if api_key else []

    async def compute(served: ServedModel, fn: Callable[..., T], *args: Any) -> T:
        if served.model.n_items >= thread_items:
            return await run_in_threadpool(fn, *args)
        return fn(*args)

    @app.get(
        "/recommend/{user_id}", dependencies=auth, responses=_ERRORS, response_model=Recommendations
    )
    async def recommend_user(
        user_id: Annotated[str, PathParam(max_length=200)],
        k: K = 10,
        exclude_seen: bool = True,
    ) -> Response:
        """Top-K items for a user; an unknown user gets popular items, flagged cold_start."""
        served = holder.current
        items, cold = await compute(served, served.recommend_user, user_id, k, exclude_seen)
        return _json(Recommendations(user=user_id, cold_start=cold, items=items))

    @app.post(
        "/recommend", dependencies=auth, responses=_ERRORS, response_model=HistoryRecommendations
    )
    async def recommend_history(body: HistoryRequest) -> Response:
        """Top-K for a visitor known only by the items they liked (cold start, no retraining)."""
        served = holder.current
        if body.ratings is not None and len(body.ratings) != len(body.items):
            raise HTTPException(
                422,  # (starlette renamed the constant; the number is stable)
                f"{len(body.items)} items but {len(body.ratings)} ratings: give one per item",
            )
        items, used, unknown = await compute(
            served, served.recommend_history, body.items, body.ratings, body.k, body.exclude_seen
        )
        return _json(
            HistoryRecommendations(
                basis="history" if used else "popularity",
                used_items=used,
                unknown_items=unknown,
                items=items,
            )
        )

    @app.get(
        "/similar/{item_id}",
        dependencies=auth,
        responses={404: {"model": ErrorResponse, "description": "unknown item"}, **_ERRORS},
        response_model=SimilarItems,
    )
    async def similar(item_id: Annotated[str, PathParam(max_length=200)], k: K = 10) -> Response:
        """The K items most similar to an item (cosine in the model's item space)."""
        served = holder.current
        try:
            item, rows = await compute(served, served.similar, item_id, k)
        except UnknownIdError:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"unknown item id {item_id!r}: the model has no such item "
                "(find ids with GET /items?search=...)",
            ) from None
        return _json(
            SimilarItems(item=item, approximate=served.similarity.approximate, similar=rows)
        )

    @app.get("/items", dependencies=auth, responses=_ERRORS, response_model=ItemSearch)
    async def items(
        search: Annotated[str, Query(max_length=200, description="part of a title")] = "",
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Response:
        """Items whose title contains ``search`` (case-insensitive), most popular first."""
        served = holder.current
        hits = await compute(served, served.search, search, limit)
        return _json(ItemSearch(query=search, items=hits))

    @app.get("/health")
    async def health() -> Health:
        """Liveness: always open, even with an API key."""
        info = holder.current.info
        return Health(model=info.model, loaded_at=info.loaded_at)

    @app.get("/model", dependencies=auth, responses=_ERRORS)
    async def model_info() -> ModelInfo:
        """What is served: model, dataset, test metrics, training time, format version."""
        return holder.current.info

    @app.post(
        "/admin/reload",
        dependencies=auth,
        responses={409: {"model": ErrorResponse, "description": "artifact refused"}, **_ERRORS},
    )
    def reload() -> Reloaded:
        """Load the model directory again and swap it in; a broken artifact is refused (409)."""
        try:
            previous, current = holder.reload()
        except ArtifactError as exc:
            old = holder.current.info
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"refused the new artifact, still serving {old.model} trained at "
                f"{old.trained_at}: {exc}",
            ) from None
        return Reloaded(previous=previous.info, current=current.info)

    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(CatchAll)
    # outermost: an oversized body is refused before any other work
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """422 listing each problem's location, message and type. Unlike FastAPI's default it does
    not echo the input back: that can be large, or not JSON at all (a NaN rating)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
    return JSONResponse({"detail": detail}, status_code=422)


def _json(answer: BaseModel) -> Response:
    """A JSON response serialised by pydantic's core in one pass (the route's response_model
    still documents it in OpenAPI)."""
    return Response(answer.model_dump_json(), media_type="application/json")


def _watch(holder: ModelHolder, seconds: float, stop: threading.Event) -> None:
    """Poll the model directory and reload when a new artifact appears (until ``stop``)."""
    while not stop.wait(seconds):
        try:
            holder.reload_if_changed()
        except Exception:  # the watch must outlive any one failure
            log.exception("model directory watch failed")
