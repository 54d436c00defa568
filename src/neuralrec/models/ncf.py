"""Neural collaborative filtering: GMF, MLP and NeuMF (He et al., "Neural Collaborative
Filtering", WWW 2017).

- GMF: ŷ_ui = hᵀ(p_u ⊙ q_i) + b (a generalised, weighted matrix factorisation);
- MLP: ŷ_ui = hᵀ f_L(... f_1([p_u; q_i])) + b with f_l(x) = ReLU(W_l x + b_l), a tower whose
  sizes are ``layers`` (``layers[0]`` is the concatenated embedding size, as in the paper's
  code: 64-32-16-8 means 32-d user and item embeddings, then 32, 16 and 8 units);
- NeuMF: both, with separate embeddings, fused in the last layer
  ŷ_ui = h_Gᵀ(p_u^G ⊙ q_i^G) + h_Mᵀ f_L(...) + b, optionally initialised from pretrained GMF
  and MLP artifacts with h = [α h_GMF; (1 − α) h_MLP] (paper, section 3.4.1).

Trained on implicit feedback (``loss=bce`` with sampled negatives, as the paper; or ``bpr``)
or on ratings (``loss=mse``, the output then is a rating). Implementation notes for speed:
the user and item tables hold the GMF and MLP parts side by side (two sparse tables, not
four), the first MLP layer is applied to the user and item halves separately so a user's half
is computed once for its positive and all its negatives, and scoring every item reuses the
item half for all users.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
from pydantic import Field, field_validator
from torch import nn

from neuralrec.data.dataset import Dataset
from neuralrec.data.interactions import Interactions
from neuralrec.errors import ConfigError
from neuralrec.models._fold_in import implicit_visitor, last_rating_per_item, mean_user_row
from neuralrec.models.ncf_module import GMFHead, NCFModule
from neuralrec.models.registry import register
from neuralrec.models.torch_base import TorchRecommender
from neuralrec.training.batches import Batch, BatchSource, TensorBatches
from neuralrec.training.implicit import ImplicitTrainConfig, implicit_batches
from neuralrec.training.losses import GradientsSet, implicit_loss, mse


class NCFConfig(ImplicitTrainConfig):
    """Hyperparameters of GMF, MLP and NeuMF. Defaults: docs/implicit.md (validation search)."""

    factors: int = Field(64, ge=1, description="GMF embedding size (gmf, neumf)")
    layers: tuple[int, ...] = Field(
        (128, 64, 32),
        description="MLP tower: layers[0] = concatenated user+item embedding size, then the "
        "hidden layer sizes (mlp, neumf)",
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each MLP layer")
    l2: float = Field(
        0.0, ge=0, description="λ on the embedding rows a batch uses (per occurrence, as BPR)"
    )
    dense_l2: float = Field(
        0.0,
        ge=0,
        description="λ on the MLP tower's and the output layer's weights (not biases), once "
        "per batch: without it, scaling these up undoes the penalty on the embedding rows",
    )
    gmf_head: GMFHead = Field(
        "learned",
        description="GMF's output weights h: learned (the NCF paper) or fixed at ones, which "
        "makes the GMF part plain MF and keeps h from undoing the λ on the embedding rows",
    )
    init_std: float = Field(0.01, gt=0, description="std of the normal embedding init")
    alpha: float = Field(0.5, ge=0, le=1, description="NeuMF: weight of the pretrained GMF head")
    pretrained_gmf: str | None = Field(None, description="NeuMF: a saved gmf model directory")
    pretrained_mlp: str | None = Field(None, description="NeuMF: a saved mlp model directory")
    negatives: int = Field(4, ge=1, description="sampled negatives per positive (bce, bpr)")
    epochs: int = 100
    batch_size: int = 1024
    lr: float = 1e-3
    patience: int = 10

    @field_validator("layers", mode="before")
    @classmethod
    def _parse_layers(cls, v: Any) -> Any:
        # "64-32-16-8" or "64,32,16,8" from a command line or config file
        if isinstance(v, str):
            return tuple(int(x) for x in v.replace("-", ",").split(",") if x.strip())
        return v

    @field_validator("layers")
    @classmethod
    def _check_layers(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(v) < 2 or v[0] % 2 or min(v) < 1:
            raise ValueError(
                "layers needs an even input size and at least one hidden layer, e.g. 64,32,16,8"
            )
        return tuple(int(x) for x in v)


class _NCF(TorchRecommender):
    """Shared fitting and scoring of the three NCF models."""

    Config: ClassVar[type[NCFConfig]] = NCFConfig
    task: ClassVar[str] = "ranking"
    cpu_kernels: ClassVar[bool] = True
    use_gmf: ClassVar[bool] = True
    use_mlp: ClassVar[bool] = True

    config: NCFConfig

    def __init__(self, config: NCFConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        # the task follows the loss: a rating model with mse, a ranking model otherwise
        self.task = "rating" if self.config.loss == "mse" else "ranking"  # type: ignore[misc]

    # ------------------------------------------------------------------ building
    def _module_meta(self, train: Interactions, dataset: Dataset | None) -> dict[str, Any]:
        if self.config.loss == "mse" and train.ratings is None:
            raise ConfigError(f"{self.name} with loss=mse needs ratings; use loss=bce or bpr")
        cfg = self.config
        return {
            "n_users": train.n_users,
            "n_items": train.n_items,
            "gmf_dim": cfg.factors if self.use_gmf else 0,
            "layers": list(cfg.layers) if self.use_mlp else [],
            "mu": self.global_mean_ if cfg.loss == "mse" else 0.0,
            "gmf_head": cfg.gmf_head if self.use_gmf else "learned",
        }

    def _build_module(self, meta: Mapping[str, Any]) -> nn.Module:
        cfg = self.config
        return NCFModule(
            meta["n_users"],
            meta["n_items"],
            meta["gmf_dim"],
            tuple(meta["layers"]),
            dropout=cfg.dropout,
            init_std=cfg.init_std,
            mu=meta["mu"],
            gmf_head=meta.get("gmf_head", "learned"),  # artifacts before it was an option
        )

    def _prepare(self, train: Interactions, dataset: Dataset | None) -> None:
        self._load_pretrained(train)

    def _load_pretrained(self, train: Interactions) -> None:
        """NCF section 3.4.1: start NeuMF from trained GMF and MLP weights."""
        cfg = self.config
        if cfg.pretrained_gmf is None and cfg.pretrained_mlp is None:
            return
        if not (self.use_gmf and self.use_mlp):
            raise ConfigError("pretrained_gmf/pretrained_mlp apply to neumf only")
        gmf = _load_part(cfg.pretrained_gmf, "gmf", train) if cfg.pretrained_gmf else None
        mlp = _load_part(cfg.pretrained_mlp, "mlp", train) if cfg.pretrained_mlp else None
        alpha = cfg.alpha if gmf is not None and mlp is not None else None
        self.module_.load_parts(
            None if gmf is None else gmf.module_,
            None if mlp is None else mlp.module_,
            alpha,
        )

    def _batches(self, train: Interactions) -> BatchSource:
        cfg = self.config
        if cfg.implicit:
            return implicit_batches(train, cfg, self.device)
        dev = self.device
        tensors = [torch.from_numpy(x.astype(np.int64)).to(dev) for x in (train.users, train.items)]
        tensors.append(torch.tensor(train.ratings, device=dev))
        return TensorBatches(tensors, batch_size=cfg.batch_size)

    def _loss(self, batch: Batch) -> torch.Tensor | GradientsSet:
        m = self.module_
        cfg = self.config
        if cfg.implicit:  # items (B, 1 + k): the positive, then its negatives
            users, pos, neg = batch
            items, ratings = torch.cat([pos.unsqueeze(1), neg], dim=1), None
        else:
            users, items, ratings = batch
            items = items.unsqueeze(1)
        if self.device.type == "cpu" and not (dist.is_available() and dist.is_initialized()):
            # one CPU process: the head writes the gradients itself, no autograd graph
            return GradientsSet(
                m.loss_with_grads(users, items, cfg.loss, cfg.l2, ratings, cfg.dense_l2)
            )
        logits, penalty = m.scores_and_penalty(users, items, bool(cfg.l2))
        if ratings is None:
            loss = implicit_loss(cfg.loss, logits[:, 0], logits[:, 1:])
        else:
            loss = mse(logits.squeeze(1), ratings)
        if cfg.l2:
            # λ(‖p_u‖² + Σ‖q_i‖²) over the rows of the batch, per positive (BPR's convention)
            loss = loss + cfg.l2 * penalty / len(users)
        if cfg.dense_l2:
            loss = loss + cfg.dense_l2 * m.dense_penalty()
        return loss

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self.device)
        i = torch.as_tensor(np.asarray(items, dtype=np.int64), device=self.device)
        out = [
            self.module_(u[s : s + 65536], i[s : s + 65536, None])[:, 0]
            for s in range(0, len(u), 65536)
        ]
        return torch.cat(out).float().cpu().numpy() if out else np.zeros(0, np.float32)

    def item_vectors(self) -> np.ndarray:
        return self.module_.item_vectors().cpu().numpy()

    def score_history(self, items: np.ndarray, ratings: np.ndarray | None = None) -> torch.Tensor:
        """Fold-in, no retraining: a new user row fitted to the visitor's items with the
        network and item rows fixed, by the training objective (:mod:`._fold_in`).

        Implicit losses: the items (those rated >= ``implicit_threshold`` when ratings and a
        threshold are given) are positives against the training negative distribution over
        every other item. ``loss=mse``: the given ratings, or a notch above the mean without.
        """
        cfg, m = self.config, self.module_
        start = mean_user_row(self, m.user.weight.detach())
        if cfg.implicit:
            visitor = implicit_visitor(self, items, ratings)
            if visitor is None:
                return super().score_history(items, ratings)
            pos, weights = visitor
            user = m.fold_in(
                pos, start, loss=cfg.loss, l2=cfg.l2, negatives=cfg.negatives, neg_weights=weights
            )
        else:
            idx, r = last_rating_per_item(items, ratings, float(m.mu) + 1.0)
            dev = self.device
            target = torch.from_numpy(r).to(dev)
            user = m.fold_in(
                torch.from_numpy(idx).to(dev), start, loss="mse", l2=cfg.l2, ratings=target
            )
        with torch.no_grad():
            return m.score_row(user).float().cpu()


def _load_part(path: str, name: str, train: Interactions) -> _NCF:
    from neuralrec.models.base import Recommender

    if not Path(path).is_dir():
        raise ConfigError(f"pretrained {name}: {path} is not a saved model directory")
    model = Recommender.load(path)
    if model.name != name:
        raise ConfigError(f"pretrained_{name} must hold a {name} model, {path} holds {model.name}")
    if model.user_ids_ != train.user_ids or model.item_ids_ != train.item_ids:
        raise ConfigError(
            f"pretrained {name} at {path} was trained on other users/items than this data"
        )
    return model  # type: ignore[return-value]


#: GMF's and NeuMF's defaults for the implicit losses: BPR-MF's optimisation (λ 5e-3 on the
#: rows, 2 negatives, lr 2e-3, weights averaged from epoch 30) under a GMF head of ones
_MF_STYLE: dict[str, Any] = {
    "gmf_head": "ones",
    "l2": 5e-3,
    "negatives": 2,
    "lr": 2e-3,
    "epochs": 200,
    "patience": 15,
    "average_from": 30,
}


class GMFConfig(NCFConfig):
    """NCF options with GMF's defaults for the implicit losses (docs/implicit.md): validation
    NDCG@10 0.2624 against 0.2416 for the paper's learned head without a penalty, better on
    each of seeds 0-2. mse keeps the NCF defaults."""

    LOSS_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        loss: dict(_MF_STYLE) for loss in ("bce", "bpr")
    }


@register
class GMF(_NCF):
    """Generalised matrix factorisation (NCF paper, section 3.2)."""

    name = "gmf"
    Config = GMFConfig
    use_mlp = False


@register
class MLP(_NCF):
    """Multi-layer perceptron over concatenated user and item embeddings (NCF section 3.3)."""

    name = "mlp"
    use_gmf = False


class NeuMFConfig(NCFConfig):
    """NCF options with NeuMF's own defaults, chosen on validation NDCG@10 over seeds 0-2
    (docs/implicit.md).

    For the implicit losses: GMF's output weights fixed at ones, so the λ on the embedding
    rows is not undone by scaling h up, and λ on the tower's and output layer's weights, which
    do the same for the MLP part (``gmf_head="ones"``, ``dense_l2=3e-3``), with BPR-MF's
    optimisation (λ 5e-3, 2 negatives, lr 2e-3, weights averaged from epoch 30): 0.2674
    against 0.2526 for the previous defaults, better on each seed. mse keeps the earlier ones.
    """

    average_from: int | None = 2
    l2: float = Field(1e-3, ge=0, description=NCFConfig.model_fields["l2"].description)

    LOSS_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        loss: {**_MF_STYLE, "dense_l2": 3e-3} for loss in ("bce", "bpr")
    }


@register
class NeuMF(_NCF):
    """GMF and MLP fused in one output layer (NCF section 3.4)."""

    name = "neumf"
    Config = NeuMFConfig
