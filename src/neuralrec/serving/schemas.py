"""Pydantic schemas of every request and response of the HTTP service (they make /docs)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
)

#: the most items one answer may hold; larger ``k`` is refused with 422
MAX_K = 1000
#: the most liked items one POST /recommend may send
MAX_HISTORY = 1000

#: a raw item or user id as the model knows it: an integer or a string (never a bool or float)
RawId = StrictInt | Annotated[StrictStr, StringConstraints(min_length=1, max_length=200)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ScoredItem(_Schema):
    """One recommended or similar item."""

    item: int | str = Field(description="raw item id")
    title: str | None = Field(None, description="title, when the training data had titles")
    score: float = Field(description="model score (a predicted rating for rating models)")


class ItemRef(_Schema):
    """An item of the catalog, with its training popularity."""

    item: int | str
    title: str | None = None
    popularity: int = Field(description="number of training interactions")


class Recommendations(_Schema):
    """Top-K for a known user, or popular items for an unknown one."""

    user: str
    cold_start: bool = Field(
        description="true when the user is unknown (or had no training data): popular items"
    )
    items: list[ScoredItem]


class HistoryRequest(_Schema):
    """A visitor known only by the items they liked (optionally with ratings)."""

    items: list[RawId] = Field(max_length=MAX_HISTORY, description="raw ids of items liked")
    ratings: list[FiniteFloat] | None = Field(
        None, max_length=MAX_HISTORY, description="one rating per item (optional)"
    )
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = Field(True, description="leave the liked items out of the answer")


class HistoryRecommendations(_Schema):
    """Recommendations folded in from a visitor's liked items (no retraining)."""

    cold_start: Literal[True] = True
    basis: Literal["history", "popularity"] = Field(
        description="'popularity' when none of the liked items is known to the model"
    )
    used_items: list[int | str] = Field(description="liked items the model knows")
    unknown_items: list[int | str] = Field(description="liked items the model does not know")
    items: list[ScoredItem]


class SimilarItems(_Schema):
    """Items nearest to one item in the model's item space (cosine)."""

    item: ItemRef
    approximate: bool = Field(description="true when served by an approximate (ANN) index")
    similar: list[ScoredItem]


class ItemSearch(_Schema):
    """Catalog items whose title contains the query (most popular first)."""

    query: str
    items: list[ItemRef]


class Health(_Schema):
    status: Literal["ok"] = "ok"
    model: str
    loaded_at: str


class ModelInfo(_Schema):
    """What is being served: from the artifact's manifest, config and run files."""

    model: str = Field(description="registry name, e.g. biased-mf")
    dataset: str
    trained_at: str
    format_version: int
    neuralrec_version: str
    predicts_ratings: bool
    n_users: int
    n_items: int
    params: dict[str, Any] = Field(description="the model's hyperparameters")
    metrics: dict[str, float] | None = Field(None, description="test metrics from metrics.json")
    run: dict[str, Any] | None = Field(None, description="run.json, for run directories")
    similarity_index: str = Field(description="'exact' or the approximate index in use")
    loaded_at: str


class Reloaded(_Schema):
    """Answer of POST /admin/reload: the model served before and the one served now."""

    previous: ModelInfo
    current: ModelInfo


class ErrorResponse(_Schema):
    """Every error answer has this shape (FastAPI's); validation errors list their fields."""

    detail: str | list[dict[str, Any]]
