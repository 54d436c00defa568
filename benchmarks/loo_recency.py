"""How much of the NCF leave-one-out protocol is about time (issue 5's LOO target).

On MovieLens 100K split ``leave-one-out`` (each user's latest rating is the test item), each
test item is ranked against 100 sampled unseen items (HR@10, NDCG@10) by popularity counted
over the training + validation ratings made in the ``window`` days before that user's test
rating; "all" counts every earlier rating. Only ratings before the user's own test time are
counted, and no test rating is. None of the library's models sees timestamps, so the gap
between a short window and "all" is a signal they cannot use.

    PYTHONPATH=src python benchmarks/loo_recency.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from _common import print_table, write_results
from neuralrec.data import load_dataset
from neuralrec.data.splits import Split, split
from neuralrec.evaluation import evaluate
from neuralrec.models import Recommender, create

WINDOWS = {"1 day": 1, "7 days": 7, "30 days": 30, "90 days": 90, "all": None}


def windowed_popularity(parts: Split, days: float | None) -> Recommender:
    """A popularity model whose scores for user u count ratings in the window before u's
    test time (the model object is the library's, so evaluation is exactly the benchmark's)."""
    known = parts.train_full
    order = np.argsort(known.timestamps, kind="stable")
    times, items = known.timestamps[order], known.items[order]
    test_time = np.zeros(known.n_users, dtype=np.int64)
    test_time[parts.test.users] = parts.test.timestamps
    model = create("popularity").fit(known)

    def score_users(users: np.ndarray) -> torch.Tensor:
        out = np.zeros((len(users), known.n_items), dtype=np.float32)
        for row, u in enumerate(users):
            hi = np.searchsorted(times, test_time[u], side="left")
            lo = 0 if days is None else np.searchsorted(times, test_time[u] - days * 86400)
            out[row] = np.bincount(items[lo:hi], minlength=known.n_items)
        return torch.from_numpy(out)

    model.score_users = score_users
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    data = load_dataset("ml-100k").interactions
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        parts = split(data, "leave-one-out", seed=seed, valid_fraction=0.1)
        for label, days in WINDOWS.items():
            model = windowed_popularity(parts, days)
            res = evaluate(model, parts.merged(), protocol="sampled", n_negatives=100, seed=seed)
            summary = res.summary()
            rows.append(
                {
                    "seed": seed,
                    "window": label,
                    "hit@10": summary["sampled-100/hit@10"],
                    "ndcg@10": summary["sampled-100/ndcg@10"],
                }
            )
    mean = [
        {
            "window": label,
            "hit@10": float(np.mean([r["hit@10"] for r in rows if r["window"] == label])),
            "ndcg@10": float(np.mean([r["ndcg@10"] for r in rows if r["window"] == label])),
        }
        for label in WINDOWS
    ]
    print_table(mean, f"ML-100K leave-one-out, popularity before the test time, seeds {args.seeds}")
    write_results("loo_recency", {"recency": {"runs": rows, "mean": mean}})


if __name__ == "__main__":
    main()
