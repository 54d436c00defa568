"""Result containers: one protocol's per-user values, and the tidy table of a whole evaluation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from neuralrec.data.idmap import IdMap
from neuralrec.errors import ConfigError

_KEY = re.compile(r"^(?P<metric>[a-z_]+)(?:@(?P<k>\d+))?$")


def split_key(key: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ``"rmse"`` -> ``("rmse", None)``."""
    m = _KEY.match(key)
    if not m:
        raise ConfigError(f"malformed metric key {key!r}")
    return m.group("metric"), int(m.group("k")) if m.group("k") else None


@dataclass
class ProtocolResult:
    """What one protocol measured: summary values and the per-user values behind them.

    ``per_user[key][j]`` is user ``users[j]``'s value (NaN where undefined for that user, e.g.
    a per-user AUC without both classes). ``values`` holds the summary: the mean over evaluated
    users for per-user metrics, plus global metrics (coverage, pooled AUC, RMSE) that have no
    per-user form. Users without anything to evaluate are skipped and counted in
    ``n_skipped``. Sampled protocols also keep one row per ranked case in ``cases``.
    """

    protocol: str
    ks: tuple[int, ...]
    users: np.ndarray
    per_user: dict[str, np.ndarray]
    values: dict[str, float] = field(default_factory=dict)
    n_skipped: int = 0
    cases: pd.DataFrame | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, arr in self.per_user.items():
            if len(arr) != len(self.users):
                raise ValueError(f"{key}: {len(arr)} values for {len(self.users)} users")
            if key not in self.values:
                self.values[key] = float(np.nanmean(arr)) if np.isfinite(arr).any() else np.nan

    @property
    def n_users(self) -> int:
        """Number of evaluated users."""
        return len(self.users)

    def summary(self) -> dict[str, float]:
        """Every summary value, e.g. ``{"ndcg@10": 0.31, "recall@10": 0.25, ...}``."""
        return dict(self.values)

    def frame(self, user_ids: IdMap | None = None) -> pd.DataFrame:
        """Per-user values as a DataFrame: ``user`` (dense index), ``user_id`` when known."""
        data: dict[str, Any] = {"user": self.users}
        if user_ids is not None:
            data["user_id"] = user_ids.to_ids(self.users)
        data.update(self.per_user)
        return pd.DataFrame(data)

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (protocol, metric, k, value, n_users, n_skipped) of the summary."""
        out = []
        # grouped by K (metrics without K last), in the order they were computed
        keyed = sorted(self.values.items(), key=lambda kv: split_key(kv[0])[1] or 1 << 30)
        for key, value in keyed:
            metric, k = split_key(key)
            out.append(
                {
                    "protocol": self.protocol,
                    "metric": metric,
                    "k": k,
                    "value": float(value),
                    "n_users": self.n_users,
                    "n_skipped": self.n_skipped,
                }
            )
        return out


#: the name the trainer's validator and older code use
RankingResult = ProtocolResult


@dataclass
class EvaluationResult:
    """The results of :func:`neuralrec.evaluation.evaluate`, one per protocol.

    ``table`` is tidy: one row per (protocol, metric, k) with the value, the number of evaluated
    users and the number skipped. ``per_user(protocol)`` gives the values behind each mean.
    """

    results: dict[str, ProtocolResult]
    user_ids: IdMap | None = None
    model_name: str = ""

    @property
    def table(self) -> pd.DataFrame:
        rows = [row for res in self.results.values() for row in res.rows()]
        frame = pd.DataFrame(
            rows, columns=["protocol", "metric", "k", "value", "n_users", "n_skipped"]
        )
        frame["k"] = frame["k"].astype("Int64")
        if self.model_name:
            frame.insert(0, "model", self.model_name)
        return frame

    @property
    def protocols(self) -> list[str]:
        return list(self.results)

    def result(self, protocol: str | None = None) -> ProtocolResult:
        """One protocol's result; ``None`` is allowed when there is only one."""
        if protocol is None:
            if len(self.results) != 1:
                raise ConfigError(f"several protocols were evaluated; name one of {self.protocols}")
            return next(iter(self.results.values()))
        if protocol not in self.results:
            raise ConfigError(f"no protocol {protocol!r} in this result; have {self.protocols}")
        return self.results[protocol]

    def value(self, metric: str, k: int | None = None, protocol: str | None = None) -> float:
        """One summary value, e.g. ``value("ndcg", 10)`` or ``value("rmse", protocol="rating")``."""
        key = metric if k is None else f"{metric}@{k}"
        if protocol is None:
            found = [p for p, r in self.results.items() if key in r.values]
            if len(found) != 1:
                raise ConfigError(
                    f"{key!r} is in protocols {found}; pass protocol= to choose"
                    if found
                    else f"no metric {key!r} was computed"
                )
            protocol = found[0]
        values = self.result(protocol).values
        if key not in values:
            raise ConfigError(f"no metric {key!r} under protocol {protocol!r}")
        return values[key]

    def per_user(self, protocol: str | None = None) -> pd.DataFrame:
        """Per-user values of one protocol (for significance tests and error analysis)."""
        return self.result(protocol).frame(self.user_ids)

    def summary(self) -> dict[str, float]:
        """Flat ``{"full/ndcg@10": ..., "rating/rmse": ...}`` over all protocols."""
        return {f"{p}/{k}": v for p, r in self.results.items() for k, v in r.values.items()}

    def __str__(self) -> str:
        return self.table.to_string(index=False, float_format=lambda x: f"{x:.4f}")
