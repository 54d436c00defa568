"""Time full-ranking evaluation (P/R/NDCG/HR @10 and @20) with a random-embedding model.

Usage:
    PYTHONPATH=src python benchmarks/bench_eval.py                 # ml1m + ml20m sized cases
    PYTHONPATH=src python benchmarks/bench_eval.py --cases ml1m --repeat 5
    PYTHONPATH=src python benchmarks/bench_eval.py --sweep         # batch size / threads sweep

The model scores users by dot products of random user and item embeddings (d=64). Data are
generated in memory: distinct (user, item) pairs with Zipf-like item popularity, 10% of them
held out as test. Each case runs in a fresh process so its peak RSS is its own. Targets (issue
3): ml1m (6040 x 3706, ~1M interactions) under 2 s; ml20m (138493 x 26744, ~20M) under 120 s
with peak memory under 4 GiB. Generated data are cached under --cache (default
/tmp/neuralrec-bench) and loaded by the timed process. Writes benchmarks/results/eval.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

CASES = {
    "ml1m": {"n_users": 6040, "n_items": 3706, "n_inter": 1_000_209},
    "ml20m": {"n_users": 138_493, "n_items": 26_744, "n_inter": 20_000_263},
}
METRICS = ("precision", "recall", "ndcg", "hit")
KS = (10, 20)


def make_data(n_users: int, n_items: int, n_inter: int, seed: int = 0) -> dict[str, np.ndarray]:
    """CSR arrays of about ``n_inter`` distinct pairs, 10% of them in test."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    cdf = np.cumsum(p / p.sum())
    keys = np.zeros(0, dtype=np.int64)
    while len(keys) < n_inter:  # popular items collide: draw until enough distinct pairs
        draw = int((n_inter - len(keys)) * 1.3) + 1000
        new = rng.integers(0, n_users, draw, dtype=np.int64) * n_items
        new += np.minimum(np.searchsorted(cdf, rng.random(draw)), n_items - 1)
        keys = np.union1d(keys, new)
    keys = keys[rng.random(len(keys)) < n_inter / len(keys)]  # thin to about n_inter
    is_test = rng.random(len(keys)) < 0.1
    out = {}
    for name, k in (("train", keys[~is_test]), ("test", keys[is_test])):
        out[f"{name}_indptr"] = np.searchsorted(k // n_items, np.arange(n_users + 1))
        out[f"{name}_indices"] = (k % n_items).astype(np.int32)
    return out


def cached_data(name: str, cache: Path) -> Path:
    """Generate a case once (in a child process, so the parent stays small) and keep it."""
    path = cache / f"bench_eval_{name}.npz"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with mp.get_context("spawn").Pool(1) as pool:
            pool.apply(_generate, (name, str(path)))
    return path


def _generate(name: str, path: str) -> None:
    spec = CASES[name]
    np.savez(path, **make_data(spec["n_users"], spec["n_items"], spec["n_inter"]))


def load_data(path: Path, n_users: int, n_items: int):
    import scipy.sparse as sp

    z = np.load(path)
    mats = []
    for name in ("train", "test"):
        idx = z[f"{name}_indices"]
        data = np.ones(len(idx), dtype=np.float32)
        mats.append(sp.csr_matrix((data, idx, z[f"{name}_indptr"]), (n_users, n_items)))
    return mats


class RandomEmbeddings:
    """score(u, i) = p_u . q_i with random Gaussian embeddings."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64, seed: int = 0) -> None:
        import torch

        gen = torch.Generator().manual_seed(seed)
        self.P = torch.randn(n_users, dim, generator=gen)
        self.Q = torch.randn(n_items, dim, generator=gen)

    def score_users(self, users: np.ndarray):
        import torch

        return self.P[torch.from_numpy(np.asarray(users, dtype=np.int64))] @ self.Q.T


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_case(
    name: str, data: str, repeat: int, batch_size: int | None, threads: int | None
) -> dict:
    """Load one case, evaluate it ``repeat`` times; runs in its own process, so the peak
    RSS reported is that of a process holding the data, the model and the evaluation."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import torch

    from neuralrec.evaluation.ranking import full_ranking

    if threads:
        torch.set_num_threads(threads)
    spec = CASES[name]
    t0 = time.perf_counter()
    train, test = load_data(Path(data), spec["n_users"], spec["n_items"])
    model = RandomEmbeddings(spec["n_users"], spec["n_items"])
    load_s = time.perf_counter() - t0
    rss_data = _rss_mb()
    times, cpu, res = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        res = full_ranking(
            model.score_users, train, test, ks=KS, metrics=METRICS, batch_size=batch_size
        )
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)  # all threads; less sensitive to other load
    return {
        "case": name,
        **spec,
        "n_train": int(train.nnz),
        "n_test": int(test.nnz),
        "n_eval_users": res.n_users,
        "batch_size": res.notes["batch_size"],
        "threads": torch.get_num_threads(),
        "load_s": round(load_s, 2),
        "eval_s": [round(t, 3) for t in times],
        "eval_s_best": round(min(times), 3),
        "eval_cpu_s": [round(t, 3) for t in cpu],
        "peak_rss_mb_after_data": round(rss_data, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "metrics": {k: round(v, 5) for k, v in res.summary().items()},
    }


def in_subprocess(*args) -> dict:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(run_case, args)


def machine() -> dict:
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "load_average_at_start": load,
        "torch_threads_default": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="ml1m,ml20m")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--sweep", action="store_true", help="try batch sizes and thread counts")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "eval.json"))
    ap.add_argument("--cache", default="/tmp/neuralrec-bench", help="where generated data is kept")
    args = ap.parse_args()
    out = {"machine": machine(), "ks": KS, "metrics": METRICS, "runs": []}
    cache = Path(args.cache)
    if args.sweep:
        data = cached_data("ml1m", cache)
        for bs in (512, 2048, 8192):
            for th in (1, 2):
                out["runs"].append(in_subprocess("ml1m", str(data), args.repeat, bs, th))
                print(_line(out["runs"][-1]), flush=True)
    for name in args.cases.split(","):
        data = cached_data(name, cache)
        repeat = args.repeat if name == "ml1m" else 1
        out["runs"].append(in_subprocess(name, str(data), repeat, args.batch_size, args.threads))
        print(_line(out["runs"][-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


def _line(r: dict) -> str:
    m = r["metrics"]
    return (
        f"{r['case']:6s} {r['n_users']:>7d} x {r['n_items']:<6d} train {r['n_train']:>9d} "
        f"test {r['n_test']:>8d} | batch {r['batch_size']:>5d} threads {r['threads']} | "
        f"eval {r['eval_s_best']:7.2f} s (runs {r['eval_s']}, cpu {r['eval_cpu_s']}) | "
        f"peak RSS {r['peak_rss_mb']:5.0f} MB "
        f"| ndcg@10 {m['ndcg@10']:.4f} recall@20 {m['recall@20']:.4f}"
    )


if __name__ == "__main__":
    main()
