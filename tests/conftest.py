"""Shared fixtures: small generated data for unit tests, real MovieLens when available."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neuralrec.data.synthetic import synthetic_ratings


def data_home() -> Path | None:
    env = os.environ.get("NEURALREC_DATA_HOME")
    return Path(env) if env and Path(env).is_dir() else None


def require_dataset(name: str) -> Path:
    """The directory of a real dataset, or skip the test (with the reason) when absent."""
    home = data_home()
    if home is None or not (home / name).is_dir():
        pytest.skip(f"{name} not found: set NEURALREC_DATA_HOME to a directory containing {name}/")
    return home / name


@pytest.fixture(scope="session")
def small_dataset():
    """200 users x 100 items, 4000 ratings, with timestamps, titles, genres and user fields."""
    return synthetic_ratings(200, 100, 4000, seed=0)


@pytest.fixture(scope="session")
def tiny_dataset():
    """60 users x 40 items: for tests that train several models."""
    return synthetic_ratings(60, 40, 900, seed=1)
