"""Large data (issue 9): biased-mf on a synthetic 25M-interaction dataset (MovieLens 25M's shape:
162,541 users x 59,047 items), loaded through the Parquet loader and its memory-mapped cache.

    python benchmarks/bench_large.py [--rows 25000000] [--epochs 2] [--factors 64]

Each step runs in a fresh process so peak memory (VmHWM, the whole process) is the step's own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_results

CHILD = r"""
import json, os, sys, time
import numpy as np
t0 = time.perf_counter()
import neuralrec as nr
from neuralrec.evaluation import evaluate
path, epochs, factors, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ds = nr.load_dataset(path, columns="user=user,item=item,rating=rating")
t_load = time.perf_counter() - t0
sp = nr.split(ds.interactions, "random:0.1", seed=0)
t_split = time.perf_counter() - t0 - t_load
m = nr.create("biased-mf", epochs=epochs, factors=factors, batch_size=batch, early_stopping=False)
t1 = time.perf_counter(); m.fit(sp.train); fit = time.perf_counter() - t1
rmse = evaluate(m, sp, protocol="rating").summary()["rating/rmse"]
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"load_s": t_load, "split_s": t_split, "fit_s": fit, "epoch_s": [h["seconds"] for h in m.history_],
                  "test_rmse": rmse, "train_rows": len(sp.train), "peak_rss_gib": hwm / 2**20}))
"""


def make_parquet(
    path: Path, rows: int, n_users: int = 162_541, n_items: int = 59_047, seed: int = 0
) -> None:
    """Synthetic ratings with Zipf-like item popularity and a low-rank signal, written in row groups."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.9
    p /= p.sum()
    U = rng.normal(0, 1, (n_users, 8)).astype(np.float32)
    V = rng.normal(0, 1, (n_items, 8)).astype(np.float32)
    # distinct (user, item) pairs: oversample, drop repeats (sort-based), keep a random subset
    m = int(rows * 1.35)
    key = rng.integers(0, n_users, m, dtype=np.int64) * n_items + rng.choice(n_items, size=m, p=p)
    key.sort()
    key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    if len(key) < rows:
        raise SystemExit(f"only {len(key)} distinct pairs drawn; lower --rows")
    key = key[rng.permutation(len(key))[:rows]]
    writer = None
    for start in range(0, rows, 5_000_000):
        u, i = np.divmod(key[start : start + 5_000_000], n_items)
        noise = rng.normal(0, 0.8, len(u))
        r = np.clip(np.round(3.5 + 0.4 * (U[u] * V[i]).sum(1) + noise), 1, 5).astype(np.float32)
        table = pa.table({"user": u, "item": i, "rating": r})
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=25_000_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8192)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.parquet"
        t0 = time.perf_counter()
        make_parquet(path, args.rows)
        gen_s = time.perf_counter() - t0
        src = str(Path(__file__).resolve().parents[1] / "src")
        env = {**os.environ, "NEURALREC_CACHE_DIR": str(Path(tmp) / "cache"), "PYTHONPATH": src}
        runs = []
        for label in ("first load (parse + cache)", "cached reload"):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    str(path),
                    str(args.epochs),
                    str(args.factors),
                    str(args.batch_size),
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=7200,
            )
            if out.returncode != 0:
                raise SystemExit(out.stderr[-3000:])
            res = json.loads(out.stdout.strip().splitlines()[-1])
            res["run"] = label
            runs.append(res)
    rows = [
        {
            "run": r["run"],
            "rows": args.rows,
            "load_s": r["load_s"],
            "fit_s": r["fit_s"],
            "epoch_s": min(r["epoch_s"]),
            "test_rmse": r["test_rmse"],
            "peak_rss_gib": r["peak_rss_gib"],
        }
        for r in runs
    ]
    print_table(
        rows,
        f"biased-mf, {args.factors} factors, batch {args.batch_size}, synthetic {args.rows:,} ratings",
    )
    print(
        write_results("large", {"large": {"generate_s": gen_s, "args": vars(args), "runs": runs}})
    )


if __name__ == "__main__":
    main()
