"""Dataset load times: first parse vs cached reload, for MovieLens and a synthetic 20M-row file.

Usage::

    NEURALREC_DATA_HOME=../shared/datasets python benchmarks/bench_data_load.py [--rows 20000000]

Every measurement runs in a fresh subprocess with its own (temporary) cache directory, so a
"parse" really parses and a "reload" really reads the cache. Times cover the
``load_dataset`` call only (not the interpreter start or imports); peak memory is the child's
peak resident set size (``VmHWM`` from ``/proc/self/status`` on Linux; ``ru_maxrss`` elsewhere),
whole process with imports (torch) included, reported beside the resident size just before the
load. Cached arrays are memory-mapped, so each run also times one pass over every column
("1st pass", after the load) and the peak includes those pages. The synthetic file is
generated in a temporary directory, never in the repository. Prints a table and writes
``benchmarks/results/data_load.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "data_load.json"


def memory_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB.

    Linux: VmRSS and VmHWM from /proc/self/status. VmHWM belongs to the current program image,
    whereas ru_maxrss also counts the parent's memory copied at fork time, before exec.
    Elsewhere: ru_maxrss for both.
    """
    try:
        fields = dict(
            line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines()
        )
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, peak


def child(target: str, cache: bool, repeats: int) -> None:
    """Runs in the subprocess: load ``target`` and print one JSON line of measurements."""
    from neuralrec.data import load_dataset

    before, _ = memory_mib()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ds = load_dataset(target, cache=cache, download=False)
        times.append(time.perf_counter() - start)
    # one pass over every column, so lazily mapped cache pages are not left out of the figures
    start = time.perf_counter()
    data = ds.interactions
    for arr in (data.users, data.items, data.ratings, data.timestamps):
        if arr is not None:
            arr.max()
    touch = time.perf_counter() - start
    _, peak = memory_mib()
    times.sort()
    print(
        json.dumps(
            {
                "seconds": times[len(times) // 2],
                "first_pass_seconds": touch,
                "rows": len(ds.interactions),
                "users": ds.interactions.n_users,
                "items": ds.interactions.n_items,
                "cache": ds.info.get("cache", "off"),
                "rss_before_mib": round(before),
                "peak_rss_mib": round(peak),
            }
        )
    )


def measure(target: str, cache_dir: Path, *, cache: bool = True, repeats: int = 1) -> dict:
    env = dict(os.environ, NEURALREC_CACHE_DIR=str(cache_dir))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, "--child", target, "--repeats", str(repeats)]
    if not cache:
        cmd.append("--no-cache")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child failed for {target}:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_synthetic(path: Path, rows: int, seed: int = 0) -> None:
    """A MovieLens-shaped ratings.csv with ``rows`` distinct (user, item) pairs, user-major."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    n_users, n_items = max(rows // 100, 10), max(rows // 400, 10)
    keys = np.sort(rng.integers(0, n_users * n_items, int(rows * 1.02) + 10, dtype=np.int64))
    # np.unique (numpy 2.4, hash-based) is ~70x slower than sorting on 20M distinct int64 here
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    keys = keys[np.sort(rng.permutation(len(keys))[:rows])]
    table = pa.table(
        {
            "userId": keys // n_items + 1,
            "movieId": keys % n_items + 1,
            "rating": rng.integers(1, 11, rows) / 2,
            "timestamp": rng.integers(789_652_009, 1_700_000_000, rows),
        }
    )
    del keys
    pcsv.write_csv(table, path, pcsv.WriteOptions(quoting_style="none"))


def run_case(label: str, target: str, work: Path, repeats: int) -> list[dict]:
    cache_dir = work / f"cache-{label}"
    parse = measure(target, cache_dir, cache=False, repeats=repeats)
    first = measure(target, cache_dir)  # parse + write the cache entry
    reload = measure(target, cache_dir, repeats=repeats)
    assert reload["cache"] == "hit", reload
    return [
        {"case": label, "step": "parse (no cache)", **parse},
        {"case": label, "step": "parse + write cache", **first},
        {"case": label, "step": "cached reload", **reload},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=20_000_000, help="synthetic file size")
    args = parser.parse_args()
    if args.child:
        child(args.child, not args.no_cache, args.repeats)
        return
    home = os.environ.get("NEURALREC_DATA_HOME")
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="neuralrec-bench-") as tmp:
        work = Path(tmp)
        if home and (Path(home) / "ml-100k").is_dir():
            results += run_case("ml-100k", "ml-100k", work, repeats=5)
        if home and (Path(home) / "ml-1m-triples").is_dir():
            target = str(Path(home) / "ml-1m-triples" / "ratings.csv")
            results += run_case("ml-1m-triples", target, work, repeats=3)
        synthetic = work / "synthetic" / "ratings.csv"
        synthetic.parent.mkdir()
        start = time.perf_counter()
        make_synthetic(synthetic, args.rows)
        gen = time.perf_counter() - start
        size_mib = synthetic.stat().st_size / 2**20
        print(f"generated {args.rows:,} rows ({size_mib:.0f} MiB) in {gen:.1f} s", file=sys.stderr)
        label = f"synthetic-{args.rows // 1_000_000}M" if args.rows >= 10**6 else "synthetic"
        results += run_case(label, str(synthetic), work, repeats=1)
    print(
        f"{'case':<16} {'step':<22} {'rows':>11} {'load s':>8} {'1st pass s':>10} "
        f"{'rss before':>11} {'peak rss':>9}"
    )
    for r in results:
        print(
            f"{r['case']:<16} {r['step']:<22} {r['rows']:>11,} {r['seconds']:>8.3f} "
            f"{r['first_pass_seconds']:>10.3f} {r['rss_before_mib']:>7} MiB "
            f"{r['peak_rss_mib']:>5} MiB"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": (f"NEURALREC_DATA_HOME={home} " if home else "")
        + f"python benchmarks/bench_data_load.py --rows {args.rows}",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "memory_measure": "peak RSS (VmHWM) of the child process, imports included",
        "note": "shared machine: timings are noisy",
    }
    RESULTS.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
