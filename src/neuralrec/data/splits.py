"""Deterministic train/validation/test splits.

A split is written ``NAME[:TEST_FRACTION]`` (``random:0.1``, ``user-random:0.2``, ``temporal:0.2``,
``user-temporal:0.2``, ``leave-one-out``, ``kfold:5`` (fold 1 of 5), ``kfold:5:3`` (fold 3),
``u1``..``u5``). The seed is passed separately. Validation data is carved from the training part
with the same method, ``valid_fraction`` being a share of the whole dataset (80/10/10 is
``test_fraction=0.1, valid_fraction=0.1``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from neuralrec.data.interactions import Interactions
from neuralrec.errors import ConfigError

SPLIT_KINDS = (
    "random",
    "user-random",
    "temporal",
    "user-temporal",
    "leave-one-out",
    "kfold",
    "u1",
    "u2",
    "u3",
    "u4",
    "u5",
)
_DEFAULT_FRACTION = {"random": 0.2, "user-random": 0.2, "temporal": 0.2, "user-temporal": 0.2}


@dataclass(frozen=True)
class SplitSpec:
    """A parsed split name: kind, test fraction (where it applies) and k-fold parameters."""

    kind: str
    test_fraction: float | None = None
    folds: int | None = None
    fold: int | None = None

    @classmethod
    def parse(cls, text: str | SplitSpec) -> SplitSpec:
        """Parse ``NAME[:FRACTION]`` (or ``kfold:K[:I]``)."""
        if isinstance(text, SplitSpec):
            return text
        raw = str(text).strip().lower()
        m = re.fullmatch(r"([a-z0-9-]+)(?::([0-9.]+))?(?::([0-9]+))?", raw)
        if not m or m.group(1) not in SPLIT_KINDS:
            raise ConfigError(
                f"unknown split {text!r}; use one of {', '.join(SPLIT_KINDS)} as NAME[:TEST_FRACTION]"
            )
        kind, a, b = m.group(1), m.group(2), m.group(3)
        if a is not None and not re.fullmatch(r"[0-9]*\.?[0-9]+|[0-9]+\.", a):
            raise ConfigError(f"split {text!r}: {a!r} is not a number")
        if kind == "kfold":
            if a is not None and not a.isdigit():
                raise ConfigError(f"split {text!r}: the number of folds must be an integer")
            folds = int(a) if a else 5
            fold = int(b) if b else 1
            if folds < 2 or not 1 <= fold <= folds:
                raise ConfigError(f"kfold needs K >= 2 and 1 <= fold <= K, got {text!r}")
            return cls(kind, 1.0 / folds, folds, fold)
        if b is not None:
            raise ConfigError(f"split {text!r}: only kfold takes a second parameter")
        if kind in _DEFAULT_FRACTION:
            frac = float(a) if a else _DEFAULT_FRACTION[kind]
            if not 0.0 < frac < 1.0:
                raise ConfigError(f"split {text!r}: test fraction must be in (0, 1)")
            return cls(kind, frac)
        if a is not None:
            raise ConfigError(f"split {text!r} takes no fraction")
        return cls(kind)

    def __str__(self) -> str:
        if self.kind == "kfold":
            return f"kfold:{self.folds}:{self.fold}"
        if self.test_fraction is not None:
            return f"{self.kind}:{self.test_fraction:g}"
        return self.kind


@dataclass(eq=False)
class Split:
    """Train / optional validation / test interactions over one shared vocabulary."""

    train: Interactions
    test: Interactions
    valid: Interactions | None = None
    spec: str = ""
    seed: int = 0
    dropped_cold: int = 0

    @property
    def train_full(self) -> Interactions:
        """Training plus validation rows: what a final refit trains on."""
        return self.train if self.valid is None else self.train.concat(self.valid)

    def merged(self) -> Split:
        """The same split with validation folded into training (for a refit after tuning)."""
        return Split(self.train_full, self.test, None, self.spec, self.seed, self.dropped_cold)

    def __repr__(self) -> str:
        v = f", valid={len(self.valid)}" if self.valid is not None else ""
        return f"Split({self.spec} seed={self.seed}: train={len(self.train)}{v}, test={len(self.test)})"


def split(
    data: Interactions,
    spec: str | SplitSpec,
    *,
    seed: int = 0,
    valid_fraction: float | None = None,
    keep_cold: bool = False,
) -> Split:
    """Split ``data`` as ``spec`` says, deterministically for a given ``seed``.

    ``valid_fraction`` (a share of the whole dataset) carves a validation part out of training
    with the same method as the test part. Test and validation rows whose user or item has no
    training row are dropped unless ``keep_cold`` (for cold-start evaluation); the number of test
    rows dropped is kept on the result.
    """
    sp = SplitSpec.parse(spec)
    if len(data) == 0:
        raise ConfigError("cannot split an empty interaction set")
    if valid_fraction is not None and not 0.0 <= valid_fraction < 1.0:
        raise ConfigError("valid_fraction must be in [0, 1)")
    if sp.test_fraction is not None and sp.test_fraction + (valid_fraction or 0.0) >= 1.0:
        raise ConfigError(
            f"test fraction {sp.test_fraction:g} + valid_fraction {valid_fraction:g} "
            "leave no training data"
        )
    labels = _assign(data, sp, float(valid_fraction or 0.0), np.random.default_rng(seed))
    train = data.subset(labels == _TRAIN)
    test = data.subset(labels == _TEST)
    valid = data.subset(labels == _VALID) if valid_fraction else None
    dropped = 0
    if not keep_cold:
        test, dropped = _drop_cold(train, test)
        if valid is not None:
            valid, _ = _drop_cold(train, valid)
    return Split(train, test, valid, spec=str(sp), seed=seed, dropped_cold=dropped)


def kfold(data: Interactions, k: int = 5, *, seed: int = 0, keep_cold: bool = False) -> list[Split]:
    """All ``k`` folds of a random k-fold split (each row is in exactly one test fold)."""
    if k < 2:
        raise ConfigError(f"kfold needs k >= 2, got {k}")
    return [
        split(data, SplitSpec("kfold", 1.0 / k, k, f), seed=seed, keep_cold=keep_cold)
        for f in range(1, k + 1)
    ]


# ---------------------------------------------------------------------------- internals
_TRAIN, _VALID, _TEST = 0, 1, 2


def _assign(data: Interactions, sp: SplitSpec, fv: float, rng: np.random.Generator) -> np.ndarray:
    """Label every row train (0), validation (1) or test (2)."""
    n = len(data)
    labels = np.zeros(n, dtype=np.int8)
    kind = sp.kind
    if kind == "random":
        # train = perm[:int((1 - f) * n)], as the Surprise/LensKit anchor protocols cut it, so
        # random:0.2 with seed 42 reproduces their exact rows; validation is the tail of train
        order = rng.permutation(n)
        n_train = int((1.0 - float(sp.test_fraction)) * n + 1e-9)
        n_valid = min(round(n * fv), n_train)
        labels[order[n_train:]] = _TEST
        labels[order[n_train - n_valid : n_train]] = _VALID
        return labels
    if kind in ("user-random", "user-temporal"):
        key = (
            _require_time(data, kind).astype(np.float64)
            if kind == "user-temporal"
            else rng.random(n)
        )
        return _per_user(data, key, rng, float(sp.test_fraction), fv)
    if kind == "leave-one-out":
        key = data.timestamps.astype(np.float64) if data.timestamps is not None else rng.random(n)
        rank, size = _rank_within_user(data, key, rng)
        labels[(rank == size - 1) & (size >= 2)] = _TEST
        if fv:
            labels[(rank == size - 2) & (size >= 3)] = _VALID
        return labels
    if kind == "temporal":
        order = np.lexsort((rng.random(n), _require_time(data, kind)))
        n_test = round(n * float(sp.test_fraction))
        n_valid = round(n * fv)
        labels[order[n - n_test :]] = _TEST
        labels[order[n - n_test - n_valid : n - n_test]] = _VALID
        return labels
    if kind == "kfold":
        fold_of = rng.permutation(n) % int(sp.folds)
        labels[fold_of == int(sp.fold) - 1] = _TEST
    elif kind in ("u1", "u2", "u3", "u4", "u5"):
        if n != 100_000:
            raise ConfigError(
                f"split {kind} is defined for MovieLens 100K's u.data (100000 rows in file order), got {n} rows"
            )
        k = int(kind[1])
        labels[(k - 1) * 20_000 : k * 20_000] = _TEST
    else:
        raise ConfigError(f"unknown split kind {kind!r}")
    if fv:
        rest = np.flatnonzero(labels == _TRAIN)
        n_valid = round(n * fv)
        labels[rest[rng.permutation(len(rest))[:n_valid]]] = _VALID
    return labels


def _require_time(data: Interactions, kind: str) -> np.ndarray:
    if data.timestamps is None:
        raise ConfigError(
            f"split {kind!r} needs timestamps, and this data has none; use a random split"
        )
    return data.timestamps


def _rank_within_user(
    data: Interactions, key: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each row among its user's rows by ``key`` (ties broken randomly), and user sizes."""
    n = len(data)
    order = np.lexsort((rng.random(n), key, data.users))
    counts = data.user_counts()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[data.users[order]]
    return rank, counts[data.users]


def _per_user(
    data: Interactions, key: np.ndarray, rng: np.random.Generator, ft: float, fv: float
) -> np.ndarray:
    """Per user, the rows with the largest ``key`` go to test, the next ones to validation.

    Counts follow RecBole's rule so that side-by-side runs see the same split sizes: floor(f * n)
    rows, plus one when f * n is in (0, 1) and training still keeps more than one row.
    """
    rank, size = _rank_within_user(data, key, rng)
    n_test = np.floor(ft * size + 1e-9).astype(np.int64)
    n_valid = np.floor(fv * size + 1e-9).astype(np.int64)
    n_train = size - n_test - n_valid
    bump = (n_train > 1) & (ft * size > 0) & (ft * size < 1)
    n_test += bump
    n_train -= bump
    bump = (n_train > 1) & (fv * size > 0) & (fv * size < 1)
    n_valid += bump
    labels = np.zeros(len(data), dtype=np.int8)
    labels[rank >= size - n_test] = _TEST
    labels[(rank >= size - n_test - n_valid) & (rank < size - n_test)] = _VALID
    return labels


def _drop_cold(train: Interactions, other: Interactions) -> tuple[Interactions, int]:
    known_u = train.user_counts() > 0
    known_i = train.item_counts() > 0
    keep = known_u[other.users] & known_i[other.items]
    if keep.all():
        return other, 0
    return other.subset(keep), int((~keep).sum())
