"""MF + DNN hybrid benchmarks (issue 6): the lectures' table, cold items, cold users, neighbours.

    NEURALREC_DATA_HOME=../shared/datasets python benchmarks/bench_hybrid.py \\
        [--only table,cold-item,cold-user,neighbours] [--threads 1]

table:      ml-latest-small (2016), split random:0.2 seed 42 (train = the anchors' 80,003 rows),
            every model with its defaults, fitted on the training part only. RMSE and AUC
            (label: test rating >= 4) on the default test set (test rows whose item is unseen in
            training dropped) and on all 20,001 test rows (those items get each model's
            fallback, as in the anchors). Two ranking views, relevant = test rating >= 4:
            "full" ranks every item the user has not rated in training; "test-items" ranks each
            user's own test items (the lectures' view; normal and strict normalisation).
cold-item:  10% of the rated movies (seeded) held out entirely; models trained on the ratings
            of the others; the held-out movies' ratings scored from metadata (mf-dnn) against
            the item-free baseline μ + a_u.
cold-user:  10% of the users (seeded) held out entirely; each is served from their first 5
            ratings (by time) without retraining; full ranking of every other movie against
            their later ratings (relevant >= 4). Also MovieLens 100K users with no history at
            all: overall popularity against popularity in their gender/age segment.
neighbours: the ten nearest items of "Toy Story (1995)" on MovieLens 100K (fit on all ratings;
            candidates with at least 20 ratings), for several models' item spaces, with two
            measures over every movie, not one title: the genre Jaccard of each movie with
            50+ ratings and its ten neighbours (mean), and over the family/animation movies
            among them, the share of their ten neighbours that are family/animation. Toy
            Story's count is also given for seeds 1 and 2, and for a fit on u1's training
            part alone (80% of the ratings, seed 0: what the quickstart sees).

Prints tables and writes benchmarks/results/hybrid.json (sections merge across runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import neuralrec as nr
from _common import print_table, write_results
from neuralrec.evaluation import evaluate, full_ranking
from neuralrec.evaluation.metrics import rmse, roc_auc

TABLE_MODELS = ("random", "popularity", "bias", "biased-mf", "mf-history", "mf-dnn", "mf-dnn-clf")


def _fit(name: str, train, ds, **params):
    model = nr.create(name, **params)
    start = time.perf_counter()
    model.fit(train, dataset=ds)
    return model, time.perf_counter() - start


def table() -> dict:
    ds = nr.load_dataset("ml-latest-small")
    known = nr.split(ds.interactions, "random:0.2", seed=42)
    every = nr.split(ds.interactions, "random:0.2", seed=42, keep_cold=True)
    rows = []
    for name in TABLE_MODELS:
        model, secs = _fit(name, known.train, ds)
        rating = ("rmse", "auc") if model.predicts_ratings else ("auc",)
        res = evaluate(
            model,
            known,
            protocol=("rating", "full", "test-items"),
            ks=(10,),
            relevance_threshold=4.0,
            metrics=(*rating, "precision", "ndcg", "precision_strict", "ndcg_strict"),
        ).summary()
        all_rows = evaluate(model, every, protocol="rating", metrics=rating).summary()
        rows.append(
            {
                "model": name,
                "rmse": res.get("rating/rmse", float("nan")),
                "auc": res["rating/auc"],
                "rmse_all_rows": all_rows.get("rating/rmse", float("nan")),
                "auc_all_rows": all_rows["rating/auc"],
                "full_ndcg@10": res["full/ndcg@10"],
                "full_p@10": res["full/precision@10"],
                "items_ndcg@10": res["test-items/ndcg@10"],
                "items_p@10": res["test-items/precision@10"],
                "items_ndcg_strict@10": res["test-items/ndcg_strict@10"],
                "items_p_strict@10": res["test-items/precision_strict@10"],
                "fit_s": secs,
            }
        )
        print_table(rows[-1:])
    print_table(rows, "ml-latest-small, random:0.2 seed 42")
    return {
        "split": "ml-latest-small random:0.2 seed 42",
        "train_rows": len(known.train),
        "test_rows": len(known.test),
        "test_rows_all": len(every.test),
        "dropped_cold": known.dropped_cold,
        "relevant": "test rating >= 4.0 (AUC positives, full and test-items relevance)",
        "rows": rows,
    }


def cold_item(fraction: float = 0.1, seed: int = 0) -> dict:
    ds = nr.load_dataset("ml-latest-small")
    inter = ds.interactions
    rated = np.flatnonzero(inter.item_counts() > 0)
    held = np.random.default_rng(seed).permutation(rated)[: round(fraction * len(rated))]
    is_held = np.isin(inter.items, held)
    train, test = inter.subset(~is_held), inter.subset(is_held)
    users = inter.user_ids.to_ids(test.users)
    items = inter.item_ids.to_ids(test.items)
    labels = test.ratings >= 4.0
    rows = []
    for name in ("bias", "biased-mf", "mf-dnn", "mf-dnn-clf"):
        model, secs = _fit(name, train, ds)
        pred = model.predict(users, items)
        rows.append(
            {
                "model": name,
                "scored_from": "metadata" if name.startswith("mf-dnn") else "μ + a_u (fallback)",
                "rmse": rmse(test.ratings, pred) if model.predicts_ratings else float("nan"),
                "auc": roc_auc(labels, pred),
                "fit_s": secs,
            }
        )
        print_table(rows[-1:])
    print_table(rows, f"cold items: {len(held)} movies held out, {len(test)} ratings")
    return {
        "held_out_items": len(held),
        "test_ratings": len(test),
        "seed": seed,
        "rows": rows,
    }


def _history_split(inter, held_users: np.ndarray, n_history: int):
    """Per held-out user: the first ``n_history`` ratings by time, and the rest."""
    hist, rest = [], []
    for k, u in enumerate(held_users):
        rows = np.flatnonzero(inter.users == u)
        rows = rows[np.lexsort((rows, inter.timestamps[rows]))]
        hist.append((k, rows[:n_history]))
        rest.append((k, rows[n_history:]))
    return hist, rest


def _csr(parts, inter, n_users: int, values: bool) -> sp.csr_matrix:
    r = np.concatenate([np.full(len(rows), k) for k, rows in parts])
    c = np.concatenate([inter.items[rows] for _, rows in parts])
    v = np.concatenate([inter.ratings[rows] if values else np.ones(len(rows)) for _, rows in parts])
    return sp.csr_matrix((v, (r, c)), shape=(n_users, inter.n_items))


def cold_user(fraction: float = 0.1, seed: int = 0, n_history: int = 5) -> dict:
    ds = nr.load_dataset("ml-latest-small")
    inter = ds.interactions
    users = np.flatnonzero(inter.user_counts() > n_history)
    held = np.sort(np.random.default_rng(seed).permutation(users)[: round(fraction * len(users))])
    train = inter.subset(~np.isin(inter.users, held))
    hist, rest = _history_split(inter, held, n_history)
    seen = _csr(hist, inter, len(held), values=False)
    later = _csr(rest, inter, len(held), values=True)
    rest_rows = np.concatenate([rows for _, rows in rest])
    rest_user = np.concatenate([np.full(len(rows), k) for k, rows in rest])
    names = ("biased-mf", "mf-history", "mf-dnn", "ease", "item-knn")
    fitted = {name: _fit(name, train, ds)[0] for name in names}
    scorers = {
        "popularity": lambda m, h, r: m.popular_scores(),
        "biased-mf (ridge fold-in)": lambda m, h, r: m.score_history(h, r),
        "mf-history (pooled history)": lambda m, h, r: m.score_history(h, r),
        "mf-dnn (pooled history, items only)": lambda m, h, r: m.score_profile(h),
        "mf-dnn (pooled history + ratings)": lambda m, h, r: m.score_profile(h, r),
        # the items as one more row of X (every rating an interaction, as in training)
        "ease (history as a row of X)": lambda m, h, r: m.score_history(h),
        "item-knn (history as a row of X)": lambda m, h, r: m.score_history(h),
    }
    owners = {
        "popularity": "biased-mf",
        "biased-mf (ridge fold-in)": "biased-mf",
        "mf-history (pooled history)": "mf-history",
        "ease (history as a row of X)": "ease",
        "item-knn (history as a row of X)": "item-knn",
    }
    rows = []
    for label, fn in scorers.items():
        model = fitted[owners.get(label, "mf-dnn")]
        profile = [(inter.items[h], inter.ratings[h]) for _, h in hist]
        scores = torch.stack([fn(model, h, r).float() for h, r in profile])
        res = full_ranking(
            lambda block, s=scores: s[torch.from_numpy(block)],
            seen,
            later,
            ks=(10,),
            relevance_threshold=4.0,
            metrics=("ndcg", "precision", "recall"),
            item_popularity=train.item_counts(),
        ).values
        pred = scores[torch.from_numpy(rest_user), torch.from_numpy(inter.items[rest_rows])]
        rows.append(
            {
                "scorer": label,
                "ndcg@10": res["ndcg@10"],
                "p@10": res["precision@10"],
                "recall@10": res["recall@10"],
                "rmse_later": rmse(inter.ratings[rest_rows], pred.numpy())
                if "popularity" not in label and model.predicts_ratings
                else float("nan"),
            }
        )
        print_table(rows[-1:])
    print_table(rows, f"cold users: {len(held)} users, first {n_history} ratings each")
    return {
        "held_out_users": len(held),
        "history": n_history,
        "relevant": "later rating >= 4.0; candidates: every item but the 5 history items",
        "rows": rows,
        "no_history_ml100k": _segments(fraction, seed),
    }


def _segments(fraction: float, seed: int) -> list[dict]:
    """MovieLens 100K users with no history: overall vs gender/age-segment popularity."""
    ds = nr.load_dataset("ml-100k")
    inter = ds.interactions
    held = np.sort(
        np.random.default_rng(seed).permutation(inter.n_users)[: round(fraction * inter.n_users)]
    )
    train = inter.subset(~np.isin(inter.users, held))
    rows_of = [(k, np.flatnonzero(inter.users == u)) for k, u in enumerate(held)]
    later = _csr(rows_of, inter, len(held), values=True)
    empty = sp.csr_matrix((len(held), inter.n_items))
    pop = nr.create("popularity").fit(train, dataset=ds)
    dnn = _fit("mf-dnn", train, ds)[0]
    users = ds.users.reindex(inter.user_ids.to_ids(held))
    segment = [{"gender": g, "age": a} for g, a in zip(users["gender"], users["age"], strict=True)]
    scorers = {
        "popularity": lambda k: pop.popular_scores(),
        "popularity in the user's gender/age segment": lambda k: pop.popular_scores(segment[k]),
        "mf-dnn from user fields only": lambda k: dnn.score_profile(
            np.zeros(0, np.int64), None, segment[k] | {"occupation": users["occupation"].iloc[k]}
        ),
    }
    out = []
    for label, fn in scorers.items():
        scores = torch.stack([fn(k).float() for k in range(len(held))])
        res = full_ranking(
            lambda block, s=scores: s[torch.from_numpy(block)],
            empty,
            later,
            ks=(10,),
            relevance_threshold=4.0,
            metrics=("ndcg", "precision"),
        ).values
        out.append({"scorer": label, "ndcg@10": res["ndcg@10"], "p@10": res["precision@10"]})
    print_table(out, f"MovieLens 100K, {len(held)} users with no history")
    return out


#: neighbours are drawn from movies with at least this many ratings (as the quickstart does)
MIN_COUNT = 20
#: the neighbour counts are also given for these seeds (the table's fit is seed 0)
NEIGHBOUR_SEEDS = (0, 1, 2)


def _family(genres) -> bool:
    return bool({"Animation", "Children's"} & set(genres))


#: whose neighbours are listed: BPR with negatives drawn as often as items are positives (the
#: README's list), cdae, the hybrid, biased-mf by the trainer (what the quickstart shows) and
#: with its default estimator for ratings (Gibbs sampling), and BPR with uniform negatives
NEIGHBOUR_MODELS = {
    "biased-mf loss=bpr neg_sampling=popularity": (
        "biased-mf",
        {"loss": "bpr", "neg_sampling": "popularity", "neg_alpha": 1.0},
    ),
    "cdae": ("cdae", {}),
    "mf-dnn": ("mf-dnn", {}),
    "biased-mf estimator=map": ("biased-mf", {"estimator": "map"}),
    "biased-mf estimator=gibbs": ("biased-mf", {}),
    "biased-mf loss=bpr": ("biased-mf", {"loss": "bpr"}),
}
#: the class-level measures use movies with at least this many ratings
FREQUENT = 50


def neighbours(title: str = "Toy Story (1995)", k: int = 10) -> dict:
    ds = nr.load_dataset("ml-100k")
    u1_train = nr.split(ds.interactions, "u1").train
    out = {}
    for label, (name, params) in NEIGHBOUR_MODELS.items():
        model, _ = _fit(name, ds.interactions, ds, **params)
        item = model.find_item(title)
        ids, sims = model.similar_items(item, k, min_count=MIN_COUNT)
        genres = ds.items.loc[ids, "genres"]
        rows = [
            {
                "title": model.item_title(i),
                "genres": "|".join(g),
                "cosine": float(c),
                "family_or_animation": _family(g),
            }
            for i, g, c in zip(ids, genres, sims, strict=True)
        ]
        hits = sum(r["family_or_animation"] for r in rows)
        print_table(rows, f"{label}: {k} neighbours of {title!r} ({hits} family/animation)")
        # one fit is one draw: how many of the ten are family/animation varies with the seed
        per_seed = {0: hits}
        for seed in NEIGHBOUR_SEEDS[1:]:
            other, _ = _fit(name, ds.interactions, ds, seed=seed, **params)
            found, _ = other.similar_items(other.find_item(title), k, min_count=MIN_COUNT)
            per_seed[seed] = sum(_family(g) for g in ds.items.loc[found, "genres"])
        print(f"{label}: family/animation among the {k} by seed: {per_seed}")
        part, _ = _fit(name, u1_train, ds, **params)
        found, _ = part.similar_items(part.find_item(title), k, min_count=MIN_COUNT)
        on_u1 = sum(_family(g) for g in ds.items.loc[found, "genres"])
        print(f"{label}: family/animation among the {k}, fitted on u1's training part: {on_u1}")
        agreement = genre_agreement(model, ds, k)
        print(f"{label}: {agreement}")
        out[label] = {
            "neighbours": rows,
            "family_or_animation": hits,
            "family_or_animation_by_seed": per_seed,
            "family_or_animation_u1_train": on_u1,
            "min_count": MIN_COUNT,
            **agreement,
        }
    return out


def genre_agreement(model, ds, k: int = 10) -> dict:
    """How well a model's neighbours follow genres over every movie with FREQUENT+ ratings.

    ``genre_jaccard``: mean Jaccard index of a movie's genres and each neighbour's;
    ``family_precision``: over the family/animation movies among them, the mean share of their
    neighbours that are family/animation (the Toy Story criterion, for the whole class).
    """
    pop = np.asarray(model.item_popularity_)
    frequent = model.item_ids_.to_ids(np.flatnonzero(pop >= FREQUENT))
    genres = {i: set(ds.items.loc[i, "genres"]) for i in model.item_ids_.ids}
    jaccard, family = [], []
    for item in frequent:
        found, _ = model.similar_items(item, k, min_count=MIN_COUNT)
        mine = genres[item]
        jaccard.append(np.mean([len(mine & genres[j]) / len(mine | genres[j]) for j in found]))
        if _family(mine):
            family.append(np.mean([_family(genres[j]) for j in found]))
    return {
        "genre_jaccard": round(float(np.mean(jaccard)), 4),
        "family_precision": round(float(np.mean(family)), 4),
        "frequent_movies": len(frequent),
        "family_movies": len(family),
    }


SECTIONS = {
    "table": table,
    "cold-item": cold_item,
    "cold-user": cold_user,
    "neighbours": neighbours,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    for section in wanted:
        start = time.perf_counter()
        result = SECTIONS[section]()
        result["seconds"] = time.perf_counter() - start
        result["command"] = " ".join(["python benchmarks/bench_hybrid.py", *sys.argv[1:]])
        path = write_results("hybrid", {section: result})
        print(f"{section}: {result['seconds']:.0f} s -> {path}")


if __name__ == "__main__":
    main()
