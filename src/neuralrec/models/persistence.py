"""Model artifacts: a directory of safetensors + JSON that loads without pickle.

Layout::

    neuralrec.json        manifest: format version, model name, versions, fitted time
    config.json           the model's hyperparameters
    ids.json              raw user and item ids in index order
    weights.safetensors   every learned tensor (model state + seen items + popularity)
    state.json            model-specific JSON state (dimensions, vocabularies, ...)
    history.json          per-epoch training history
    items.json            item titles in index order (when the dataset had titles)

The directory is written under a temporary name and swapped into place, so a reader never sees
half an artifact.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from neuralrec._version import __version__
from neuralrec.data.idmap import IdMap
from neuralrec.errors import ArtifactError
from neuralrec.models.cold_start import UserSegments
from neuralrec.utils.atomic import atomic_directory, write_json

if TYPE_CHECKING:
    from neuralrec.models.base import Recommender

FORMAT_VERSION = 1
MANIFEST = "neuralrec.json"


def write_model_files(model: Recommender, directory: Path) -> None:
    """Write the artifact files of ``model`` into an existing ``directory``."""
    tensors, meta = model._state()
    base = {
        "_seen.indptr": torch.from_numpy(model.seen_.indptr.astype(np.int64)),
        "_seen.indices": torch.from_numpy(model.seen_.indices.astype(np.int64)),
        "_item_popularity": torch.from_numpy(model.item_popularity_),
        "_user_counts": torch.from_numpy(model.user_counts_),
    }
    segments = getattr(model, "user_segments_", None)
    if segments is not None:
        base.update(segments.tensors())
    clash = set(base) & set(tensors)
    if clash:
        raise ArtifactError(f"model state uses reserved tensor names {sorted(clash)}")
    all_tensors = {k: v.detach().to("cpu").contiguous() for k, v in {**base, **tensors}.items()}
    save_file(
        all_tensors,
        str(directory / "weights.safetensors"),
        metadata={"format": str(FORMAT_VERSION)},
    )
    write_json(directory / "config.json", model.config.model_dump(mode="json"))
    write_json(
        directory / "ids.json",
        {"users": model.user_ids_.to_list(), "items": model.item_ids_.to_list()},
    )
    write_json(
        directory / "state.json",
        {
            "global_mean": model.global_mean_,
            "rating_range": model.rating_range_,
            "dataset": model.dataset_name_,
            "model": meta,
            "user_fields": None if segments is None else segments.meta(),
        },
    )
    write_json(directory / "history.json", model.history_)
    if model.item_titles_ is not None:
        write_json(directory / "items.json", {"titles": model.item_titles_})
    write_json(
        directory / MANIFEST,
        {
            "format_version": FORMAT_VERSION,
            "model": model.name,
            "neuralrec_version": __version__,
            "torch_version": torch.__version__.split("+")[0],
            "fitted_at": getattr(model, "fitted_at_", ""),
            "dataset": model.dataset_name_,
        },
    )


def save_model(
    model: Recommender,
    path: str | Path,
    extra: dict[str, Any] | None = None,
    writer: Callable[[Path], None] | None = None,
) -> Path:
    """Save ``model`` atomically to ``path``, with JSON documents in ``extra`` (by file name)
    and whatever ``writer`` adds to the directory before it is swapped into place."""
    path = Path(path)
    with atomic_directory(path) as tmp:
        write_model_files(model, tmp)
        for name, obj in (extra or {}).items():
            write_json(tmp / name, obj)
        if writer is not None:
            writer(tmp)
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of an artifact directory, validated for format version."""
    path = Path(path)
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise ArtifactError(f"{path} is not a neuralrec model directory (no {MANIFEST})")
    try:
        data = json.loads(manifest.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest}: corrupt manifest ({exc})") from exc
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {version!r} is not supported by neuralrec {__version__} "
            f"(expects {FORMAT_VERSION}); retrain the model or use a matching neuralrec version"
        )
    return data


def load_model(path: str | Path, device: str | None = None) -> Recommender:
    """Load the model stored in artifact directory ``path``.

    ``device`` places a torch model's weights (``cpu``, ``cuda``, ``auto``); by default they go
    where the model was trained, or to the CPU, with a warning, when that was a GPU this machine
    lacks (a model trained on a GPU box and served from a CPU one).
    """
    from neuralrec.models.registry import get_model_class

    path = Path(path)
    manifest = read_manifest(path)
    cls = get_model_class(manifest["model"])
    try:
        config = cls.Config.model_validate(_read_json(path / "config.json"))
        ids = _read_json(path / "ids.json")
        state = _read_json(path / "state.json")
        history = _read_json(path / "history.json") if (path / "history.json").exists() else []
        with safe_open(str(path / "weights.safetensors"), framework="pt") as fh:
            # copies: get_tensor maps the file, and a file overwritten in place under a mapped
            # tensor kills the process with SIGBUS (a server must outlive a bad copy)
            tensors = {k: fh.get_tensor(k).clone() for k in fh.keys()}  # noqa: SIM118
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"{path}: cannot read artifact ({type(exc).__name__}: {exc})") from exc
    model = cls(_placed(config, device, path))
    model.user_ids_ = IdMap(np.asarray(ids["users"]))
    model.item_ids_ = IdMap(np.asarray(ids["items"]))
    n_users, n_items = len(model.user_ids_), len(model.item_ids_)
    indptr = tensors.pop("_seen.indptr").numpy()
    indices = tensors.pop("_seen.indices").numpy()
    model.seen_ = sp.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(n_users, n_items)
    )
    model.item_popularity_ = tensors.pop("_item_popularity").numpy()
    model.user_counts_ = tensors.pop("_user_counts").numpy()
    fields = state.get("user_fields")
    model.user_segments_ = None if not fields else UserSegments.restore(tensors, fields)
    model.global_mean_ = float(state["global_mean"])
    model.rating_range_ = tuple(state["rating_range"]) if state.get("rating_range") else None
    model.dataset_name_ = state.get("dataset", "")
    model.history_ = history
    model.fitted_at_ = manifest.get("fitted_at", "")
    titles = path / "items.json"
    model.item_titles_ = _read_json(titles)["titles"] if titles.exists() else None
    try:
        model._load_state(tensors, state.get("model", {}))
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ArtifactError(f"{path}: weights do not match the {cls.name} model ({exc})") from exc
    model._fitted = True
    return model


def _placed(config: Any, device: str | None, path: Path) -> Any:
    if not hasattr(config, "device"):
        return config  # not a torch model: nothing to place
    if device is not None:
        return config.replace(device=device)
    if str(config.device).startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(
            f"{path}: trained on {config.device}, which this machine lacks; loading on the CPU",
            stacklevel=4,
        )
        return config.replace(device="cpu")
    return config


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing from the artifact") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: corrupt JSON ({exc})") from exc
