"""Tie handling: where equal scores leave the order of a ranked list open, decide it explicitly.

Two policies, used by every ranking protocol:

- ``"pessimistic"`` (default): among items with equal scores, relevant items come after the
  non-relevant ones. A model is never rewarded for ties; a constant-score model gets 0.
- ``"random"``: equal scores are ordered uniformly at random (seeded), which gives an unbiased
  sample of the value under random tie-breaking.

``torch.topk`` breaks ties in an implementation-defined way (in practice often by item index,
which on popularity-sorted catalogues would turn a constant model into a popularity model), so
its order among equal scores is never used for the hit-based metrics.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from neuralrec.errors import ConfigError

Ties = Literal["pessimistic", "random"]
TIES = ("pessimistic", "random")


def check_ties(ties: str) -> str:
    if ties not in TIES:
        raise ConfigError(f"unknown tie policy {ties!r}; use {' or '.join(TIES)}")
    return ties


def fix_tied_hits(
    vals: np.ndarray,
    hits: np.ndarray,
    lengths: np.ndarray,
    n_tied: np.ndarray,
    n_rel_tied: np.ndarray,
    ties: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """The hit pattern of top lists once ties are resolved by ``ties``.

    ``vals`` (rows x K) are each list's scores in descending order, ``hits`` whether each
    position holds a relevant item, ``lengths`` how many positions are real (the rest is
    padding: items that are not candidates). The last real score ``t`` may be shared by
    candidates outside the list: ``n_tied`` is the number of candidates scoring ``t`` in the
    whole catalogue and ``n_rel_tied`` how many of them are relevant. Inside the list, groups
    of equal scores are reordered by the policy; the slots of the boundary group receive as
    many relevant items as the policy gives them (pessimistic: max(0, slots - non-relevant
    tied); random: a hypergeometric draw).
    """
    rows, width = vals.shape
    pos = np.arange(width)
    in_list = pos[None, :] < lengths[:, None]
    t = vals[np.arange(rows), np.maximum(lengths, 1) - 1]
    boundary = in_list & (vals == t[:, None])
    slots = boundary.sum(axis=1)
    n_tied = np.maximum(n_tied, slots)  # never fewer tied candidates than tied slots
    if ties == "pessimistic":
        b_hits = np.maximum(0, slots - (n_tied - n_rel_tied))
    else:
        b_hits = rng.hypergeometric(n_rel_tied, n_tied - n_rel_tied, slots)
    slot_no = np.cumsum(boundary, axis=1) - 1
    new_hits = np.where(boundary, slot_no < b_hits[:, None], hits & in_list)
    # groups of equal scores; padding goes to one last group that is never reordered into the list
    group = np.zeros((rows, width), dtype=np.int64)
    if width > 1:
        group[:, 1:] = np.cumsum(vals[:, 1:] != vals[:, :-1], axis=1)
    group[~in_list] = width + 1
    secondary = new_hits.astype(np.float64) if ties == "pessimistic" else rng.random((rows, width))
    order = np.lexsort((secondary, group), axis=1)
    return np.take_along_axis(new_hits, order, axis=1)


def tied_rank(
    greater: np.ndarray,
    n_tied: np.ndarray,
    n_rel_tied: np.ndarray,
    ties: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """1-based rank of the best relevant item, given ``greater`` candidates scoring strictly
    higher and ``n_tied`` candidates (``n_rel_tied`` of them relevant, at least one) sharing its
    score. Pessimistic: all tied non-relevant items first. Random: the first relevant position
    in a random order of the tied group.
    """
    greater = np.asarray(greater, np.int64)
    n_tied = np.asarray(n_tied, np.int64)
    n_rel_tied = np.maximum(np.asarray(n_rel_tied, np.int64), 1)
    n_other = np.maximum(n_tied - n_rel_tied, 0)
    if ties == "pessimistic":
        return greater + n_other + 1
    before = np.zeros(len(greater), dtype=np.int64)
    for j in np.flatnonzero(n_other > 0):
        # the first relevant slot among n_tied slots of which n_rel_tied are relevant
        before[j] = rng.choice(int(n_tied[j]), int(n_rel_tied[j]), replace=False).min()
    return greater + before + 1
