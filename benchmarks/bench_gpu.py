"""Epoch times on CUDA beside the same runs on the CPU, on MovieLens 1M (issue 9).

    NEURALREC_DATA_HOME=../shared/datasets python benchmarks/bench_gpu.py [--epochs 5]
        [--only neumf --only biased-mf --only autorec-i] [--skip-cpu] [--threads N]

Trains on ``ml-1m-triples`` split ``random:0.1`` (seed 42) for a few epochs, once per device,
and reports the median seconds per epoch (the first epoch, which includes CUDA warm-up and
compilation, is dropped when there are three or more) and the validation-free test RMSE or
NDCG@10 of the short run, so the devices can be seen to learn alike:

- ``neumf`` at RecBole's NeuMF settings (1 negative, 1024 positives + 1024 negatives a batch,
  embeddings 64, MLP [128, 64]), in float32 and under bfloat16 autocast on CUDA;
- ``biased-mf`` with 64 factors, otherwise its defaults;
- ``autorec-i`` with its defaults.

Without a GPU it says so and times the CPU only. Figures go to benchmarks/results/gpu.json,
marked with the GPU model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import neuralrec as nr
from _common import print_table, write_results
from bench_ncf import RECBOLE_NEUMF
from neuralrec.evaluation import evaluate

#: RecBole's NeuMF settings (as in bench_ncf.py's speed piece), no early stopping
NEUMF = {k: v for k, v in RECBOLE_NEUMF.items() if k not in ("epochs", "patience")}
MODELS = {
    "neumf": NEUMF,
    "biased-mf": {"factors": 64},
    "autorec-i": {},
}


def run(name: str, parts, device: str, epochs: int, amp: bool = False) -> dict:
    params = {**MODELS[name], "device": device, "epochs": epochs}
    if amp:
        params["amp"] = True
    model = nr.create(name, **params)
    start = time.perf_counter()
    model.fit(parts.train)
    fit = time.perf_counter() - start
    per = [h["seconds"] for h in model.history_]
    steady = per[1:] if len(per) >= 3 else per
    if name == "neumf":
        metric, value = "ndcg@10", evaluate(model, parts).value("ndcg", 10)
    else:
        metric, value = "rmse", evaluate(model, parts, protocol="rating").value("rmse")
    return {
        "model": name,
        "device": device + (" (bf16 autocast)" if amp else ""),
        "name": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "epochs": epochs,
        "epoch_s_median": float(np.median(steady)),
        "epoch_s_all": per,
        "fit_s": fit,
        "metric": metric,
        "value": float(value),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--only", action="append", choices=sorted(MODELS), help="repeatable")
    ap.add_argument("--skip-cpu", action="store_true", help="time the GPU only")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = nr.load_dataset("ml-1m-triples")
    parts = nr.split(ds.interactions, "random:0.1", seed=42)
    cuda = torch.cuda.is_available()
    if not cuda:
        print("no CUDA device here: timing the CPU only")
    rows = []
    for name in args.only or list(MODELS):
        if cuda:
            rows.append(run(name, parts, "cuda", args.epochs))
            if name == "neumf":
                rows.append(run(name, parts, "cuda", args.epochs, amp=True))
        if not args.skip_cpu:
            rows.append(run(name, parts, "cpu", args.epochs))
    print_table([{k: v for k, v in r.items() if k != "epoch_s_all"} for r in rows])
    write_results(
        "gpu",
        {
            "ml1m": {
                "settings": {
                    k: {**v, **({"layers": list(v["layers"])} if "layers" in v else {})}
                    for k, v in MODELS.items()
                },
                "train_rows": len(parts.train),
                "runs": rows,
                "command": " ".join(["python benchmarks/bench_gpu.py", *sys.argv[1:]]),
            }
        },
    )


if __name__ == "__main__":
    main()
