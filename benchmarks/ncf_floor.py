"""Where a NeuMF epoch's time goes at RecBole's settings (issue 5's speed target), one thread.

    NEURALREC_DATA_HOME=../shared/datasets PYTHONPATH=src python benchmarks/ncf_floor.py

``products``: the epoch's matrix products alone (the tower's forward and backward at the
fused head's shapes), timed by themselves: the arithmetic floor of an epoch.
``training``: wall seconds per epoch of ``neumf`` after a warm-up fit, and the torch profiler's
seconds per epoch in matrix-product ops (mm, addmm, bmm) against everything else.
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

PRODUCT_OPS = ("aten::mm", "aten::addmm", "aten::bmm")


def products(steps: int, batch: int, rounds: int = 5) -> dict[str, float]:
    """Seconds of one epoch's tower products (1 negative: 2 rows a positive)."""
    d = RECBOLE_NEUMF["factors"]
    h1, h2 = RECBOLE_NEUMF["layers"][1:]
    n = 2 * batch
    r = torch.randn
    ue, ie, w1u, w1i, w2 = r(batch, d), r(n, d), r(h1, d), r(h1, d), r(h2, h1)
    a1, g2, g1, gu = r(n, h1), r(n, h2), r(n, h1), r(batch, h1)

    def step() -> None:
        ue @ w1u.T, ie @ w1i.T, a1 @ w2.T  # forward
        g2.T @ a1, g2 @ w2  # second layer backward
        gu.T @ ue, g1.T @ ie, gu @ w1u, g1 @ w1i  # first layer backward

    macs = batch * d * h1 * 3 + n * d * h1 * 3 + n * h1 * h2 * 3
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
    """Wall seconds per epoch and the profiler's split of CPU time, per epoch."""
    parts = ml100k_split(0)
    params = {**RECBOLE_NEUMF, "early_stopping": False, "seed": 0, "threads": 1}
    nr.create("neumf", **{**params, "epochs": 1}).fit(parts.train)  # warm-up: compiled loops
    model = nr.create("neumf", **{**params, "epochs": epochs})
    with torch.profiler.profile() as prof:
        model.fit(parts.train)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6 / epochs
    prod = sum(e.self_cpu_time_total for e in events if e.key in PRODUCT_OPS) / 1e6 / epochs
    return {
        "sec_per_epoch": round(sum(h["seconds"] for h in model.history_) / epochs, 3),
        "profiled_cpu_s": round(total, 3),
        "products_s": round(prod, 3),
        "other_s": round(total - prod, 3),
    }


def main() -> None:
    torch.set_num_threads(1)
    batch = RECBOLE_NEUMF["batch_size"]
    steps = -(-len(ml100k_split(0).train) // batch)
    res = {"steps": steps, "products": products(steps, batch), "training": training()}
    print_table([{"piece": "products alone", **res["products"]}], "matrix products of one epoch")
    print_table([res["training"]], "neumf training, per epoch (profiled)")
    write_results("ncf_floor", {"floor": res})


if __name__ == "__main__":
    main()
