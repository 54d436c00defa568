"""Validation search behind the implicit-feedback defaults (docs/implicit.md).

Each trial fits one model on the training part of MovieLens 100K, split ``user-random:0.1``
with ``valid_fraction=0.1`` (80/10/10; ``--split`` for another) and seed 0, and records the best validation NDCG@10
(early stopping on it). The test part is never scored here.

    PYTHONPATH=src python benchmarks/search_implicit.py neumf '{"lr": [1e-3, 3e-3]}' \
        --base '{"negatives": 4}' --out benchmarks/results/search_implicit.jsonl

Grids are JSON objects of lists (their product is searched); ``--base`` fixes other values.
Closed-form models (ease, item-knn) are scored directly on the validation part.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from neuralrec.data import load_dataset
from neuralrec.data.splits import split
from neuralrec.evaluation import evaluate
from neuralrec.models import create


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("grid", help="JSON object of lists")
    ap.add_argument("--base", default="{}", help="JSON object of fixed hyperparameters")
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--split",
        default="user-random:0.1",
        help="e.g. leave-one-out (the NCF protocol: validation is each user's second-latest)",
    )
    ap.add_argument("--out", default="benchmarks/results/search_implicit.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(args.dataset).interactions
    parts = split(data, args.split, seed=args.seed, valid_fraction=0.1)
    valid_split = type(parts)(parts.train, parts.valid, None, spec=parts.spec, seed=parts.seed)
    grid = json.loads(args.grid)
    base = json.loads(args.base)
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        params = {**base, **dict(zip(keys, values, strict=True))}
        if "layers" in params:
            params["layers"] = tuple(params["layers"])
        start = time.perf_counter()
        model = create(args.model, **params)
        model.fit(parts.train, parts.valid)
        hist = getattr(model, "history_", [])
        if hist and "ndcg@10" in hist[0]:
            best = max(hist, key=lambda h: h["ndcg@10"])
            score, epoch = best["ndcg@10"], best["epoch"]
        else:  # closed form: score the validation part, seen items = training part
            score = evaluate(model, valid_split, metrics=["ndcg"]).value("ndcg", 10, "full")
            epoch = None
        row = {
            "model": args.model,
            "dataset": args.dataset,
            "seed": args.seed,
            **({} if args.split == "user-random:0.1" else {"split": args.split}),
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
            "valid_ndcg@10": round(float(score), 5),
            "best_epoch": epoch,
            "epochs_run": len(hist),
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(json.dumps(row), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
