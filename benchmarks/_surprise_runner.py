"""Fit Surprise algorithms on given train/test rows (runs inside a Surprise venv).

usage: python _surprise_runner.py TRAIN.csv TEST.csv LOW HIGH ALGO[,ALGO...] [reps]
Rows: user,item,rating. Prints one JSON object: per algorithm RMSE, MAE and the best fit time
over ``reps`` fits of a fresh instance (as the anchors measured).
"""

import json
import sys
import time

import numpy as np
from surprise import SVD, BaselineOnly, Dataset, KNNBaseline, Reader, SVDpp, accuracy

ALGOS = {
    "BaselineOnly": lambda: BaselineOnly(verbose=False),
    "SVD": lambda: SVD(random_state=0),
    "SVD-100x20": lambda: SVD(n_factors=100, n_epochs=20, random_state=0),
    "SVD-tuned": lambda: SVD(n_factors=200, n_epochs=50, lr_all=0.01, reg_all=0.1, random_state=0),
    "SVD++": lambda: SVDpp(random_state=0, cache_ratings=True),
    "KNNBaseline": lambda: KNNBaseline(
        sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False
    ),
}


def rows(path):
    out = []
    with open(path) as fh:
        next(fh)
        for line in fh:
            u, i, r = line.rstrip("\n").split(",")
            out.append((u, i, float(r), None))
    return out


def main():
    train_path, test_path, low, high, names = sys.argv[1:6]
    reps = int(sys.argv[6]) if len(sys.argv) > 6 else 2
    data = Dataset(Reader(rating_scale=(float(low), float(high))))
    trainset = data.construct_trainset(rows(train_path))
    testset = data.construct_testset(rows(test_path))
    result = {}
    for name in names.split(","):
        fits = []
        for _ in range(reps):
            algo = ALGOS[name]()
            t0 = time.perf_counter()
            algo.fit(trainset)
            fits.append(time.perf_counter() - t0)
        preds = algo.test(testset)
        result[name] = {
            "rmse": accuracy.rmse(preds, verbose=False),
            "mae": accuracy.mae(preds, verbose=False),
            "fit_s": min(fits),
            "fit_s_all": fits,
            "auc_scores": None,
        }
        est = np.array([p.est for p in preds])
        truth = np.array([p.r_ui for p in preds])
        result[name]["est"] = est.tolist() if len(est) <= 25000 else None
        result[name]["truth_check"] = float(truth.sum())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
