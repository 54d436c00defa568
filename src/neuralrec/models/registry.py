"""The model registry: adding a model means adding one module with a ``@register`` class.

Every module in the ``neuralrec.models`` package is imported on first lookup, so a new file
registers itself without edits elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from neuralrec.errors import ConfigError

if TYPE_CHECKING:
    from neuralrec.models.base import Recommender

_REGISTRY: dict[str, type[Recommender]] = {}
_DISCOVERED = False


def register(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    name = cls.name
    if not name:
        raise TypeError(f"{cls.__name__} has no registry name")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise TypeError(
            f"model name {name!r} is registered twice ({_REGISTRY[name].__name__}, {cls.__name__})"
        )
    _REGISTRY[name] = cls
    return cls


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    import neuralrec.models as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_") and info.name not in (
            "base",
            "registry",
            "torch_base",
            "persistence",
        ):
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    _DISCOVERED = True


def get_model_class(name: str) -> type[Recommender]:
    """The class registered as ``name``."""
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        ) from None


def available_models() -> list[str]:
    """Registered model names, sorted."""
    _discover()
    return sorted(_REGISTRY)
