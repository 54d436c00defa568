"""A dataset: interactions plus optional item and user metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from neuralrec.data.interactions import Interactions


@dataclass(eq=False)
class Dataset:
    """Interactions with item and user metadata, aligned by raw id.

    ``items`` is indexed by raw item id and may hold ``title``, ``genres`` (a list of strings per
    item) and ``year``; ``users`` is indexed by raw user id and may hold ``gender``, ``age``,
    ``occupation``. Either may be ``None``.
    """

    name: str
    interactions: Interactions
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    rating_scale: tuple[float, float] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        meta = []
        if self.items is not None:
            meta.append(f"items[{', '.join(map(str, self.items.columns))}]")
        if self.users is not None:
            meta.append(f"users[{', '.join(map(str, self.users.columns))}]")
        tail = f"; {'; '.join(meta)}" if meta else ""
        return f"Dataset({self.name!r}: {self.interactions!r}{tail})"

    def item_table(self) -> pd.DataFrame:
        """Item metadata aligned to the item vocabulary (one row per item index; gaps are NaN)."""
        ids = self.interactions.item_ids.ids
        if self.items is None:
            return pd.DataFrame(index=pd.Index(ids, name="item"))
        return self.items.reindex(pd.Index(ids, name="item"))

    def user_table(self) -> pd.DataFrame:
        """User metadata aligned to the user vocabulary."""
        ids = self.interactions.user_ids.ids
        if self.users is None:
            return pd.DataFrame(index=pd.Index(ids, name="user"))
        return self.users.reindex(pd.Index(ids, name="user"))

    def item_titles(self) -> np.ndarray | None:
        """Titles aligned to item indices, or None when the dataset has no titles."""
        if self.items is None or "title" not in self.items.columns:
            return None
        return self.item_table()["title"].fillna("").astype(str).to_numpy()

    def summary(self) -> dict[str, Any]:
        """Counts, density and rating histogram (JSON-friendly)."""
        data = self.interactions
        present_users = int((data.user_counts() > 0).sum())
        present_items = int((data.item_counts() > 0).sum())
        out: dict[str, Any] = {
            "name": self.name,
            "users": present_users,
            "items": present_items,
            "interactions": len(data),
            "density": len(data) / (present_users * present_items)
            if present_users and present_items
            else 0.0,
            "explicit": data.is_explicit,
            "has_timestamps": data.timestamps is not None,
            "item_features": [] if self.items is None else [str(c) for c in self.items.columns],
            "user_features": [] if self.users is None else [str(c) for c in self.users.columns],
        }
        if data.ratings is not None and len(data):
            values, counts = np.unique(data.ratings, return_counts=True)
            out["rating_histogram"] = {
                f"{v:g}": int(c) for v, c in zip(values, counts, strict=True)
            }
            out["rating_mean"] = float(data.ratings.mean())
        if data.timestamps is not None and len(data):
            out["time_range"] = [int(data.timestamps.min()), int(data.timestamps.max())]
        return out
