"""Loss functions as pure functions of scores (spotlight's layout: models produce scores,
losses turn them into one number).

- :func:`pointwise_bce`: binary cross-entropy with positives labelled 1 and sampled negatives
  0, on logits (He et al., "Neural Collaborative Filtering", WWW 2017, eq. 7);
- :func:`bpr`: Bayesian personalised ranking, −log σ(x̂_ui − x̂_uj) (Rendle et al., UAI 2009);
- :func:`mse`: squared error for explicit ratings.

Softplus gives −log σ(x) = softplus(−x) without overflow for large |x|.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

IMPLICIT_LOSSES = ("bce", "bpr")
LOSSES = ("mse", *IMPLICIT_LOSSES)


class GradientsSet(NamedTuple):
    """What a loss function returns when it has written every parameter's ``.grad`` itself
    (a hand-derived backward pass, no autograd graph): the batch's loss value. For small
    models whose step is a handful of row updates the graph costs more than the arithmetic."""

    loss: torch.Tensor


def pointwise_bce(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over every positive and negative logit.

    ``pos`` holds one logit per positive (shape (B,) or (B, 1)), ``neg`` the logits of the
    sampled negatives (any shape); the mean runs over all of them together, as
    ``BCEWithLogitsLoss`` on the concatenated batch does.
    """
    total = F.softplus(-pos).sum() + F.softplus(neg).sum()
    return total / (pos.numel() + neg.numel())


def bpr(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Mean −log σ(pos − neg) over (positive, negative) pairs.

    ``pos`` (B,) or (B, 1) broadcasts against ``neg`` (B,) or (B, k): with k negatives per
    positive every pair counts once.
    """
    if pos.dim() == 1 and neg.dim() == 2:
        pos = pos.unsqueeze(1)
    return F.softplus(neg - pos).mean()


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return (pred - target).square().mean()


def loss_and_grad(
    name: str, logits: torch.Tensor, target: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss called ``name`` and its gradient with respect to ``logits``, derived by hand
    for models that write their own gradients (:class:`GradientsSet`).

    For "bce" and "bpr", ``logits`` (B, 1 + k) holds each positive in column 0 and its k
    negatives after it, as :func:`implicit_loss` takes them; for "mse", ``logits`` (B, 1) are
    predictions of ``target`` (B,).
    """
    if name == "bce":
        n = logits.numel()
        loss = (F.softplus(-logits[:, 0]).sum() + F.softplus(logits[:, 1:]).sum()) / n
        grad = torch.sigmoid(logits)
        grad[:, 0] -= 1.0
        return loss, grad.div_(n)
    if name == "bpr":
        diff = logits[:, 1:] - logits[:, :1]
        loss = F.softplus(diff).mean()
        per_pair = torch.sigmoid(diff).div_(diff.numel())
        grad = torch.empty_like(logits)
        grad[:, 1:] = per_pair
        grad[:, 0] = -per_pair.sum(1)
        return loss, grad
    if name == "mse":
        if target is None:
            raise ValueError("mse needs the target ratings")
        err = logits[:, 0] - target
        return err.square().mean(), err.mul_(2.0 / len(err)).unsqueeze(1)
    raise ValueError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}")


def implicit_loss(name: str, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """The implicit loss called ``name`` ("bce" or "bpr") on positive and negative scores."""
    if name == "bce":
        return pointwise_bce(pos, neg)
    if name == "bpr":
        return bpr(pos, neg)
    raise ValueError(f"unknown implicit loss {name!r}; use one of {', '.join(IMPLICIT_LOSSES)}")
