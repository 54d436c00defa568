"""Where a NeuMF epoch's time goes at RecBole's settings (issue 5's speed target), one thread.

    NEURALREC_DATA_HOME=../shared/datasets PYTHONPATH=src python benchmarks/ncf_floor.py

``products``: the epoch's matrix products alone (the tower's forward and backward at the
fused head's shapes: the first layer on the batch's distinct users and items, their mean counts
taken from a real epoch's batches), timed by themselves: the arithmetic floor of an epoch.
``training``: wall seconds per epoch of ``neumf`` after a warm-up fit, and, in a second fit under
the torch profiler, seconds per epoch in matrix-product ops (mm, addmm, bmm) against the rest
of the (profiled) epoch's wall time: the compiled loops are not torch ops, so the rest is
taken from the wall clock, not from the profiler's op totals.
Writes the ``floor`` section of benchmarks/results/ncf_floor.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import neuralrec as nr
from _common import print_table, write_results
from bench_ncf import RECBOLE_NEUMF, ml100k_split
from neuralrec.models.ncf import NeuMFConfig
from neuralrec.training.implicit import implicit_batches

PRODUCT_OPS = ("aten::mm", "aten::addmm", "aten::bmm")


def distinct_rows(parts) -> tuple[int, int, int]:
    """Steps of an epoch and the mean distinct users and items of its batches."""
    cfg = NeuMFConfig(**RECBOLE_NEUMF)
    users, items = [], []
    for u, pos, neg in implicit_batches(parts.train, cfg).epoch(0, 0):
        users.append(len(torch.unique(u)))
        items.append(len(torch.unique(torch.cat([pos, neg.reshape(-1)]))))
    return len(users), round(sum(users) / len(users)), round(sum(items) / len(items))


def products(steps: int, batch: int, n_users: int, n_items: int, rounds: int = 5) -> dict:
    """Seconds of one epoch's tower products (1 negative: 2 rows a positive); the first layer
    runs on ``n_users`` distinct users and ``n_items`` distinct items a batch."""
    d = RECBOLE_NEUMF["factors"]
    h1, h2 = RECBOLE_NEUMF["layers"][1:]
    n = 2 * batch
    r = torch.randn
    ue, ie, w1u, w1i, w2 = r(n_users, d), r(n_items, d), r(h1, d), r(h1, d), r(h2, h1)
    a1, g2, g1, gu = r(n, h1), r(n, h2), r(n_items, h1), r(n_users, h1)

    def step() -> None:
        ue @ w1u.T, ie @ w1i.T, a1 @ w2.T  # forward
        g2.T @ a1, g2 @ w2  # second layer backward
        gu.T @ ue, g1.T @ ie, gu @ w1u, g1 @ w1i  # first layer backward

    macs = n_users * d * h1 * 3 + n_items * d * h1 * 3 + n * h1 * h2 * 3
    for _ in range(20):
        step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append(time.perf_counter() - start)
    best = min(times)
    return {
        "seconds": round(best, 3),
        "gflop": round(2 * macs * steps / 1e9, 2),
        "gflops": round(2 * macs * steps / 1e9 / best, 1),
    }


def training(epochs: int = 4) -> dict[str, float]:
    """Wall seconds per epoch, and the profiled epoch split into products and the rest."""
    parts = ml100k_split(0)
    params = {**RECBOLE_NEUMF, "early_stopping": False, "seed": 0, "threads": 1}
    plain = nr.create("neumf", **{**params, "epochs": epochs}).fit(parts.train)
    model = nr.create("neumf", **{**params, "epochs": epochs})
    with torch.profiler.profile() as prof:
        model.fit(parts.train)
    events = prof.key_averages()
    profiled = sum(h["seconds"] for h in model.history_) / epochs
    prod = sum(e.self_cpu_time_total for e in events if e.key in PRODUCT_OPS) / 1e6 / epochs
    return {
        "sec_per_epoch": round(sum(h["seconds"] for h in plain.history_) / epochs, 3),
        "profiled_sec_per_epoch": round(profiled, 3),
        "products_s": round(prod, 3),
        "other_s": round(profiled - prod, 3),
    }


def main() -> None:
    torch.set_num_threads(1)
    batch = RECBOLE_NEUMF["batch_size"]
    steps, n_users, n_items = distinct_rows(ml100k_split(0))
    res = {
        "steps": steps,
        "distinct_users_per_batch": n_users,
        "distinct_items_per_batch": n_items,
        "products": products(steps, batch, n_users, n_items),
        "training": training(),
    }
    print_table([{"piece": "products alone", **res["products"]}], "matrix products of one epoch")
    print_table([res["training"]], "neumf training, per epoch (profiled)")
    write_results("ncf_floor", {"floor": res})


if __name__ == "__main__":
    main()
