"""Epoch time of ``neumf`` on MovieLens 1M on CUDA, beside the same run on CPU (issue 9).

    NEURALREC_DATA_HOME=../shared/datasets python benchmarks/bench_gpu.py [--epochs 3]

Trains on ``ml-1m-triples`` split ``random:0.1`` (seed 42) at RecBole's NeuMF settings (1
negative, 1024 positives + 1024 negatives a batch, embeddings 64, MLP [128, 64]) for a few epochs, once per
device, and reports the median seconds per epoch (the first epoch, which includes CUDA warm-up,
is dropped when there are three or more). Without a GPU it says so, times the CPU only, and
still writes the JSON. Figures go to benchmarks/results/gpu.json, marked with the GPU model.
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

#: RecBole's NeuMF settings (as in bench_ncf.py's speed piece), no early stopping
NEUMF = {k: v for k, v in RECBOLE_NEUMF.items() if k not in ("epochs", "patience")}


def epoch_seconds(train, device: str, epochs: int, amp: bool = False) -> dict:
    model = nr.create("neumf", device=device, epochs=epochs, amp=amp, **NEUMF)
    start = time.perf_counter()
    model.fit(train)
    fit = time.perf_counter() - start
    per = [h["seconds"] for h in model.history_]
    steady = per[1:] if len(per) >= 3 else per
    return {
        "device": device + (" (bf16 autocast)" if amp else ""),
        "name": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "epoch_s_median": float(np.median(steady)),
        "epoch_s_all": per,
        "fit_s": fit,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--skip-cpu", action="store_true", help="time the GPU only")
    args = ap.parse_args()
    ds = nr.load_dataset("ml-1m-triples")
    train = nr.split(ds.interactions, "random:0.1", seed=42).train
    rows = []
    if torch.cuda.is_available():
        rows.append(epoch_seconds(train, "cuda", args.epochs))
        rows.append(epoch_seconds(train, "cuda", args.epochs, amp=True))
    else:
        print("no CUDA device here: timing the CPU only")
    if not args.skip_cpu:
        rows.append(epoch_seconds(train, "cpu", args.epochs))
    print_table([{k: v for k, v in r.items() if k != "epoch_s_all"} for r in rows])
    write_results(
        "gpu",
        {
            "neumf_ml1m": {
                "settings": {**NEUMF, "layers": list(NEUMF["layers"])},
                "train_rows": len(train),
                "runs": rows,
                "command": " ".join(["python benchmarks/bench_gpu.py", *sys.argv[1:]]),
            }
        },
    )


if __name__ == "__main__":
    main()
