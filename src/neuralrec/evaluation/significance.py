"""Paired significance tests over users: does model A beat model B on a metric?

Both models must have been evaluated with the same protocol on the same split; the test pairs
each user's value under A with the same user's value under B (users evaluated by both), and
runs a paired t-test and a Wilcoxon signed-rank test (``scipy.stats``) on the differences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from neuralrec.errors import ConfigError
from neuralrec.evaluation.result import EvaluationResult, ProtocolResult

#: summary metrics whose per-user counterpart has another name
_PER_USER_NAME = {"rmse": "user_mse", "mae": "user_mae", "auc": "user_auc"}
_LOWER_IS_BETTER = ("rmse", "mae", "user_mse", "user_mae", "logloss", "popularity")


@dataclass(frozen=True)
class PairedTest:
    """Outcome of :func:`paired_test`. ``diff`` is mean(A - B) over paired users."""

    metric: str
    protocol: str
    n_users: int
    mean_a: float
    mean_b: float
    diff: float
    higher_is_better: bool
    t_statistic: float
    t_pvalue: float
    wilcoxon_statistic: float
    wilcoxon_pvalue: float
    alternative: str

    def a_better(self, alpha: float = 0.05, test: Literal["t", "wilcoxon"] = "wilcoxon") -> bool:
        """Whether A is better than B in the metric's direction with p < ``alpha``."""
        p = self.t_pvalue if test == "t" else self.wilcoxon_pvalue
        better = self.diff > 0 if self.higher_is_better else self.diff < 0
        return bool(better and p < alpha)

    def __str__(self) -> str:
        direction = "higher" if self.higher_is_better else "lower"
        return (
            f"{self.protocol} {self.metric} ({direction} is better), {self.n_users} paired users: "
            f"A {self.mean_a:.4f} vs B {self.mean_b:.4f} (diff {self.diff:+.4f}); "
            f"paired t p={self.t_pvalue:.3g}, Wilcoxon p={self.wilcoxon_pvalue:.3g} "
            f"({self.alternative})"
        )


def paired_test(
    a: EvaluationResult | ProtocolResult,
    b: EvaluationResult | ProtocolResult,
    metric: str,
    *,
    protocol: str | None = None,
    alternative: Literal["two-sided", "better"] = "two-sided",
) -> PairedTest:
    """Compare A and B on ``metric`` (e.g. ``"ndcg@10"``, ``"rmse"``) user by user.

    ``alternative="better"`` tests one-sidedly that A is better (higher, or lower for error
    metrics); the default is two-sided. Users whose value is NaN under either model (e.g. a
    per-user AUC without both classes) are left out.
    """
    ra, rb = _protocol_result(a, protocol), _protocol_result(b, protocol)
    if ra.protocol != rb.protocol:
        raise ConfigError(f"cannot compare protocol {ra.protocol!r} with {rb.protocol!r}")
    key = _PER_USER_NAME.get(metric, metric)
    for res in (ra, rb):
        if key not in res.per_user:
            raise ConfigError(
                f"no per-user values of {metric!r} under {res.protocol!r}; "
                f"have {sorted(res.per_user)}"
            )
    _, ia, ib = np.intersect1d(ra.users, rb.users, return_indices=True)
    va, vb = ra.per_user[key][ia], rb.per_user[key][ib]
    ok = np.isfinite(va) & np.isfinite(vb)
    va, vb = va[ok], vb[ok]
    if len(va) < 2:
        raise ConfigError(f"only {len(va)} paired users: too few for a test")
    higher = metric.split("@")[0] not in _LOWER_IS_BETTER
    alt = "two-sided" if alternative == "two-sided" else ("greater" if higher else "less")
    d = va - vb
    t_stat, t_p = _ttest(d, alt)
    w_stat, w_p = _wilcoxon(d, alt)
    return PairedTest(
        metric=metric,
        protocol=ra.protocol,
        n_users=len(d),
        mean_a=float(va.mean()),
        mean_b=float(vb.mean()),
        diff=float(d.mean()),
        higher_is_better=higher,
        t_statistic=t_stat,
        t_pvalue=t_p,
        wilcoxon_statistic=w_stat,
        wilcoxon_pvalue=w_p,
        alternative=alternative,
    )


def _protocol_result(
    res: EvaluationResult | ProtocolResult, protocol: str | None
) -> ProtocolResult:
    return res.result(protocol) if isinstance(res, EvaluationResult) else res


def _ttest(d: np.ndarray, alt: str) -> tuple[float, float]:
    if np.all(d == d[0]):  # zero variance: scipy returns NaN; the answer is clear-cut
        if d[0] == 0:
            return 0.0, 1.0
        favoured = alt == "two-sided" or (d[0] > 0) == (alt == "greater")
        return float(np.sign(d[0]) * np.inf), 0.0 if favoured else 1.0
    res = stats.ttest_rel(d, np.zeros_like(d), alternative=alt)
    return float(res.statistic), float(res.pvalue)


def _wilcoxon(d: np.ndarray, alt: str) -> tuple[float, float]:
    if not np.any(d != 0):  # all differences zero: no evidence either way
        return 0.0, 1.0
    res = stats.wilcoxon(d, alternative=alt, zero_method="wilcox")
    return float(res.statistic), float(res.pvalue)
