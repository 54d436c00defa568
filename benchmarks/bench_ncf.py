"""Implicit-feedback benchmarks (issue 5): full ranking, the NCF protocol, speed, RecBole beside.

Pieces (``--only full,recbole,speed,loo,loo1m``; default: all):

- ``full``: MovieLens 100K, every rating an interaction, ``user-random:0.1`` with
  ``valid_fraction=0.1`` (80/10/10 as RecBole), seeds 0-2. Each model early-stops on validation
  NDCG@10; test metrics rank all items outside train + validation (``split.train_full``).
- ``recbole``: RecBole 1.2.1 on the very same splits (exported as atomic files, read through its
  ``benchmark_filename`` option), run in its own venv (``--recbole-python``).
- ``ownsplit`` (only when asked for): RecBole's own seed-2020 split of ML-100K, the one behind
  the anchor figures of shared/ANCHORS.md: RecBole splits and runs its models, then ours run on
  the very same rows.
- ``speed``: seconds per training epoch of ``neumf`` at RecBole's NeuMF settings (1 negative,
  2048 scored pairs per batch, embeddings 64, MLP [128, 64], dropout 0.1, Adam 1e-3) and
  RecBole's NeuMF, back to back on the same split, with their test metrics.
- ``loo`` / ``loo1m``: the NCF protocol, leave-one-out (100K: latest rating by time; 1M triples:
  one random rating per user, seeded; the one before it is validation), each test item ranked
  against 100 sampled unseen items; GMF, MLP, NeuMF with and without pretraining, popularity,
  and (where there are timestamps) GMF and NeuMF with ``recency_boost``.
  Each model is scored as early stopping left it (RecBole's way) and, in the rows ending
  ", refit", refitted on train + validation for the chosen number of epochs (the NCF paper's
  way: tune on held-out data, then train on every interaction but the test one).
- ``foldin`` (only when asked for): on the ``full`` piece's split, every test user is scored
  twice, by the row training learned for them and as a visitor known only by their training
  items (``score_history``: no retraining); milliseconds per visitor beside.

Results are merged into ``--out`` (benchmarks/results/ncf.json) piece by piece, so pieces can
be run separately. Timings on a shared 2-core machine are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralrec.data import load_dataset
from neuralrec.data.interactions import Interactions
from neuralrec.data.splits import Split, split
from neuralrec.evaluation import evaluate
from neuralrec.evaluation.ranking import full_ranking
from neuralrec.models import create

HERE = Path(__file__).resolve().parent
FULL_METRICS = ["recall", "ndcg", "hit", "precision", "mrr"]
#: display name -> (registry name, hyperparameters); everything else is the model's default
FULL_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "popularity": ("popularity", {}),
    "item-knn": ("item-knn", {}),
    "ease": ("ease", {}),
    "biased-mf (bpr)": ("biased-mf", {"loss": "bpr"}),
    "gmf": ("gmf", {}),
    "mlp": ("mlp", {}),
    "neumf": ("neumf", {}),
    # the NCF paper's way (section 3.4.1): started from this seed's gmf and mlp, which must run
    # before it in the same process (their artifacts are kept in a temporary folder)
    "neumf (pretrained)": ("neumf", {"pretrained_gmf": "{tmp}/gmf", "pretrained_mlp": "{tmp}/mlp"}),
}
#: RecBole's NeuMF defaults in our terms: batch_size counts positives (1024 + 1024 negatives)
RECBOLE_NEUMF = {
    "factors": 64,
    "layers": (128, 128, 64),
    "dropout": 0.1,
    "negatives": 1,
    "batch_size": 1024,
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "l2": 0.0,  # RecBole's NeuMF has no penalty (ours defaults to 5e-3)
    "dense_l2": 0.0,
    "gmf_head": "learned",  # RecBole's output layer is learned over both parts
    "average_from": 2,  # this piece's setting since stop 15 (a running mean costs nothing)
    "epochs": 300,
    "patience": 10,
}
RECBOLE_MODELS = ("NeuMF", "BPR", "EASE", "ItemKNN")
REFERENCE = {  # shared/ANCHORS.md, RecBole 1.2.1 on its own split, seed 2020
    "full": {"ease": 0.330, "bpr": 0.293, "item-knn": 0.284, "neumf": 0.278, "popularity": 0.142},
    "loo100k": {"neumf (4 neg)": [0.656, 0.388], "bpr": [0.659, 0.374]},
    "loo1m_ncf_paper": {"neumf": [0.730, 0.447]},
}


def fit_and_score(
    name: str,
    params: dict[str, Any],
    parts: Split,
    protocol: str,
    seed: int,
    refit_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit on train (validation for early stopping), score the test part once.

    With ``refit_params`` (overrides of ``params``, possibly none) the model is also refitted
    on train + validation for the number of epochs early stopping picked, and scored on the
    same test part: the NCF paper's protocol, which tunes on held-out data and then trains on
    every interaction but the test one. The refit's row is ``row["refit"]``.
    """
    model = create(name, **{**params, "seed": seed})
    valid_cpu = _time_validation(model)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(parts.train, parts.valid)
    fit_s = time.perf_counter() - start
    train_cpu = time.process_time() - cpu - valid_cpu[0]
    values = _score(model, parts, protocol, seed)
    hist = getattr(model, "history_", [])
    row = {"metrics": values, "fit_seconds": round(fit_s, 2), "epochs": len(hist)}
    if hist:
        row["sec_per_epoch"] = round(float(np.mean([h["seconds"] for h in hist])), 3)
        # CPU seconds of training per epoch (fit minus validation): steadier than wall time
        # on a shared machine
        row["cpu_sec_per_epoch"] = round(train_cpu / len(hist), 3)
        row["best_epoch"] = hist[-1].get("best_epoch")
    out = {"row": row, "model": model}
    if refit_params is not None:
        fixed = {**params, **refit_params, "seed": seed}
        if hist:  # trained models: the epochs early stopping chose, without validation
            best = int(hist[-1].get("best_epoch") or len(hist))
            fixed.update(epochs=best, early_stopping=False)
        start = time.perf_counter()
        again = create(name, **fixed).fit(parts.train_full)
        row["refit"] = {
            "metrics": _score(again, parts.merged(), protocol, seed),
            "epochs": fixed.get("epochs"),
            "fit_seconds": round(time.perf_counter() - start, 2),
        }
        out["refit_model"] = again
    return out


def _score(model: Any, parts: Split, protocol: str, seed: int) -> dict[str, float]:
    """Test metrics at 10 (full ranking, or the test item against 100 sampled negatives)."""
    if protocol == "full":
        res = evaluate(model, parts, metrics=FULL_METRICS, ks=(10,))
    else:
        res = evaluate(model, parts, protocol="sampled", n_negatives=100, seed=seed, ks=(10,))
    return {k.split("/", 1)[1]: round(v, 5) for k, v in res.summary().items()}


def _time_validation(model: Any) -> list[float]:
    """Instrument the model's per-epoch validation to count its CPU seconds (benchmark only)."""
    spent = [0.0]
    make = getattr(model, "_validator", None)
    if make is None:
        return spent

    def timed_validator(train: Interactions, valid: Interactions) -> Any:
        run = make(train, valid)

        def timed() -> Any:
            start = time.process_time()
            out = run()
            spent[0] += time.process_time() - start
            return out

        return timed

    model._validator = timed_validator
    return spent


def summarise(per_seed: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of every metric and timing."""
    out = {}
    for name, rows in per_seed.items():
        keys = rows[0]["metrics"].keys()
        out[name] = {
            "mean": {k: round(float(np.mean([r["metrics"][k] for r in rows])), 4) for k in keys},
            "std": {k: round(float(np.std([r["metrics"][k] for r in rows])), 4) for k in keys},
            "sec_per_epoch": _mean_of(rows, "sec_per_epoch"),
            "fit_seconds": _mean_of(rows, "fit_seconds"),
            "runs": rows,
        }
    return out


def _mean_of(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(float(np.mean(vals)), 3) if vals else None


def ml100k_split(seed: int) -> Split:
    data = load_dataset("ml-100k").interactions
    return split(data, "user-random:0.1", seed=seed, valid_fraction=0.1)


# ---------------------------------------------------------------------------- pieces
FULL_PROTOCOL = "full ranking, ML-100K user-random:0.1 valid 0.1"


def piece_full(seeds: list[int], models: list[str], save: Any = None) -> dict[str, Any]:
    per_seed: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    pretrained = "neumf (pretrained)" in models
    if pretrained and not {"gmf", "mlp"} <= set(models[: models.index("neumf (pretrained)")]):
        raise SystemExit("--models: 'neumf (pretrained)' needs gmf and mlp listed before it")
    for seed in seeds:
        parts = ml100k_split(seed)
        with tempfile.TemporaryDirectory(prefix="nr-full-") as tmp:
            for label in models:
                name, params = FULL_MODELS[label]
                params = {
                    k: v.format(tmp=tmp) if isinstance(v, str) else v for k, v in params.items()
                }
                out = fit_and_score(name, params, parts, "full", seed)
                if pretrained and label in ("gmf", "mlp"):
                    out["model"].save(f"{tmp}/{label}")
                row = out["row"]
                row["seed"] = seed
                per_seed[label].append(row)
                log(f"full seed {seed} {label}: {row['metrics']} ({row['fit_seconds']} s)")
                if save is not None:  # long runs: keep what is done
                    done = {k: v for k, v in per_seed.items() if v}
                    save({"protocol": FULL_PROTOCOL, "seeds": seeds, "models": summarise(done)})
    return {"protocol": FULL_PROTOCOL, "seeds": seeds, "models": summarise(per_seed)}


FOLDIN_PROTOCOL = (
    "full ranking as the full piece; each test user scored by the row training learned and as "
    "a visitor folded in from their training items (no retraining)"
)


def piece_foldin(seeds: list[int], models: list[str]) -> dict[str, Any]:
    per_seed: dict[str, list[dict[str, Any]]] = {}
    for seed in seeds:
        parts = ml100k_split(seed)
        X = parts.train.tocsr("ones")
        seen, test = parts.train_full.tocsr("ones"), parts.test.tocsr("ones")
        n_users = int((np.diff(test.indptr) > 0).sum())
        for label in models:
            name, params = FULL_MODELS[label]
            model = create(name, **{**params, "seed": seed}).fit(parts.train, parts.valid)

            def folded(block: np.ndarray, model: Any = model, rows: Any = X) -> torch.Tensor:
                return torch.stack([model.score_history(rows[u].indices) for u in block])

            for how, scorer in (("trained rows", model.score_users), ("fold-in", folded)):
                start = time.perf_counter()
                res = full_ranking(scorer, seen, test, ks=(10,), metrics=("ndcg", "recall"))
                ms = 1000 * (time.perf_counter() - start) / n_users
                metrics = {k: round(v, 5) for k, v in res.summary().items()}
                row = {"metrics": {**metrics, "ms_per_user": round(ms, 2)}, "seed": seed}
                per_seed.setdefault(f"{label} ({how})", []).append(row)
                log(f"foldin seed {seed} {label} ({how}): {row['metrics']}")
    return {"protocol": FOLDIN_PROTOCOL, "seeds": seeds, "models": summarise(per_seed)}


def import_log(path: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Runs logged by an interrupted process: {piece: {model: [runs]}} (no per-epoch timings).

    Log lines read ``[hh:mm:ss] full seed 0 neumf: {...metrics...} (123.4 s)``.
    """
    pattern = re.compile(
        r"\] (full|recbole|loo \S+) seed (\d+) (.+?): (\{.*?\})(?: \(([\d.]+) s\))?$"
    )
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for line in Path(path).read_text().splitlines():
        m = pattern.search(line)
        if not m:
            continue
        piece = m.group(1).split()[0]
        metrics = ast.literal_eval(m.group(4))
        run = {"metrics": metrics, "seed": int(m.group(2)), "source": f"log {Path(path).name}"}
        if m.group(5):
            run["fit_seconds"] = float(m.group(5))
        out.setdefault(piece, {}).setdefault(m.group(3), []).append(run)
    return out


RECBOLE_PROTOCOL = "RecBole 1.2.1 on the same splits"


def piece_recbole(
    seeds: list[int], python: str, models: list[str], save: Any = None
) -> dict[str, Any]:
    per_seed: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    # model-major: the cheap models cover every seed before the slow ones start
    for model in models:
        for seed in seeds:
            res = run_recbole(python, model, ml100k_split(seed), seed)
            row = {
                "metrics": {k: round(v, 5) for k, v in res["test"].items()},
                "sec_per_epoch": res["sec_per_epoch"] and round(res["sec_per_epoch"], 3),
                "fit_seconds": round(res["fit_seconds"], 2),
                "epochs": res["epochs_run"],
            }
            per_seed[model].append(row)
            log(f"recbole seed {seed} {model}: {row['metrics']} ({row['fit_seconds']} s)")
            if save is not None:  # long runs: keep what is done
                done = {k: v for k, v in per_seed.items() if v}
                save({"protocol": RECBOLE_PROTOCOL, "seeds": seeds, "models": summarise(done)})
    return {"protocol": RECBOLE_PROTOCOL, "seeds": seeds, "models": summarise(per_seed)}


def piece_speed(seeds: list[int], python: str, epochs: int, rounds: int) -> dict[str, Any]:
    """Timing: ``epochs`` training epochs of each library, alternated ``rounds`` times on the
    first seed's split (no validation, so only training is timed). Quality: ``neumf`` at
    RecBole's settings trained to early stopping on every seed, to set beside the ``recbole``
    piece's NeuMF on the same splits."""
    parts = ml100k_split(seeds[0])
    timing: dict[str, list[dict[str, float]]] = {"neuralrec": [], "recbole": []}
    fixed = {**RECBOLE_NEUMF, "epochs": epochs, "early_stopping": False, "seed": seeds[0]}
    for _ in range(rounds):
        model = create("neumf", **fixed)
        start = time.perf_counter()
        model.fit(parts.train)
        # per epoch, wall and CPU, as recbole_runner times RecBole's _train_epoch; the fit's
        # set-up (loading the compiled loops in a process's first fit) is reported beside
        timing["neuralrec"].append(
            {
                "sec_per_epoch": float(np.mean([h["seconds"] for h in model.history_])),
                "cpu_sec_per_epoch": float(np.mean([h["cpu_seconds"] for h in model.history_])),
                "fit_seconds": time.perf_counter() - start,
            }
        )
        theirs = run_recbole(python, "NeuMF", parts, seeds[0], {"epochs": epochs}, timing=True)
        timing["recbole"].append(
            {k: theirs[k] for k in ("sec_per_epoch", "cpu_sec_per_epoch", "fit_seconds")}
        )
        log(f"speed round: ours {timing['neuralrec'][-1]}, recbole {timing['recbole'][-1]}")
    mean = {
        lib: {k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0]}
        for lib, rows in timing.items()
    }
    quality = []
    for seed in seeds:
        row = fit_and_score("neumf", RECBOLE_NEUMF, ml100k_split(seed), "full", seed)["row"]
        quality.append(row)
        log(f"speed quality seed {seed}: {row['metrics']}")
    ours, theirs = mean["neuralrec"], mean["recbole"]
    return {
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in RECBOLE_NEUMF.items()},
        "threads": 1,
        "timed_epochs": epochs,
        "rounds": timing,
        "mean": mean,
        "speedup_wall": round(theirs["sec_per_epoch"] / ours["sec_per_epoch"], 2),
        "speedup_cpu": round(theirs["cpu_sec_per_epoch"] / ours["cpu_sec_per_epoch"], 2),
        "seeds": seeds,
        "models": summarise({"neumf (RecBole settings)": quality}),
    }


def piece_loo(
    dataset: str,
    seeds: list[int],
    max_epochs: int | None,
    only: list[str] | None = None,
    refit: bool = True,
) -> dict[str, Any]:
    data = load_dataset(dataset).interactions
    per_seed: dict[str, list[dict[str, Any]]] = {}
    cap = {} if max_epochs is None else {"epochs": max_epochs}
    for seed in seeds:
        parts = split(data, "leave-one-out", seed=seed, valid_fraction=0.1)
        with tempfile.TemporaryDirectory() as tmp:
            plan: list[tuple[str, str, dict[str, Any]]] = [
                ("popularity", "popularity", {}),
                ("biased-mf (bpr)", "biased-mf", {"loss": "bpr", **cap}),
                ("gmf", "gmf", cap),
                ("mlp", "mlp", cap),
                ("neumf", "neumf", cap),
                (
                    "neumf (pretrained)",
                    "neumf",
                    {
                        **cap,
                        "pretrained_gmf": f"{tmp}/gmf",
                        "pretrained_mlp": f"{tmp}/mlp",
                    },
                ),
            ]
            if data.timestamps is not None:  # recency needs time (ml-1m-triples has none)
                plan += [
                    ("gmf (recency)", "gmf", {**cap, **LOO_RECENCY}),
                    ("neumf (recency)", "neumf", {**cap, **LOO_RECENCY}),
                ]
            for label, name, params in plan:
                if only and label not in only:
                    continue
                # the refitted NeuMF starts from the refitted GMF and MLP
                again = {k: f"{v}-refit" for k, v in params.items() if k.startswith("pretrained")}
                out = fit_and_score(name, params, parts, "sampled", seed, again if refit else None)
                if label in ("gmf", "mlp"):
                    out["model"].save(f"{tmp}/{label}")
                    if refit:
                        out["refit_model"].save(f"{tmp}/{label}-refit")
                row = out["row"]
                per_seed.setdefault(label, []).append(row)
                log(f"loo {dataset} seed {seed} {label}: {row['metrics']}")
                if refit:
                    per_seed.setdefault(f"{label}, refit", []).append(row.pop("refit"))
                    log(
                        f"loo {dataset} seed {seed} {label}, refit: {per_seed[label + ', refit'][-1]}"
                    )
    return {
        "protocol": "leave-one-out ("
        + ("latest by time" if data.timestamps is not None else "one random rating per user")
        + "), 100 sampled negatives",
        "dataset": dataset,
        "seeds": seeds,
        "max_epochs": max_epochs,
        "refit": "rows ending ', refit': refitted on train + validation for the epochs early "
        "stopping picked (the NCF paper trains on everything but the test item)"
        if refit
        else "none",
        "models": summarise(per_seed),
    }


#: rows "(recency)" of the loo piece: recent positives repeated in training, chosen on the
#: validation item (each user's second-latest) by benchmarks/search_implicit.py
#: --split leave-one-out, never on the test item (docs/implicit.md)
LOO_RECENCY = {"recency_boost": 16.0, "recency_span": 10.0}
OWN_SPLIT_SEED = 2020  # the anchor runs' seed (shared/ANCHORS.md)
#: RecBole settings beyond recbole_runner's (the anchors') for its models on its own split
OWN_SPLIT_RECBOLE = {"EASE": {"reg_weight": 250.0}}
#: a split's parts, in the order read_tsv_split and write_atomic's caller name them
PARTS = ("train", "valid", "test")


def piece_ownsplit(python: str, models: list[str], recbole_models: list[str]) -> dict[str, Any]:
    """RecBole's own seed-2020 split of ML-100K (the one behind ANCHORS.md's figures): RecBole
    splits and runs ``recbole_models``, then our ``models`` (their defaults, model seed 0) fit
    and are scored on the very same rows, so the anchor targets are met or missed on their
    own data rather than on our seeds' splits."""
    theirs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in recbole_models:
            settings = OWN_SPLIT_RECBOLE.get(model, {})
            res = run_recbole(python, model, None, OWN_SPLIT_SEED, settings, own_split=tmp)
            row = {"metrics": {k: round(v, 5) for k, v in res["test"].items()}}
            row.update(fit_seconds=round(res["fit_seconds"], 2), epochs=res["epochs_run"])
            theirs[f"RecBole {model}"] = [row]
            log(f"ownsplit RecBole {model}: {row['metrics']}")
        parts = read_tsv_split(Path(tmp))
    ours: dict[str, list[dict[str, Any]]] = {}
    for label in models:
        name, params = FULL_MODELS[label]
        ours[label] = [fit_and_score(name, params, parts, "full", 0)["row"]]
        log(f"ownsplit {label}: {ours[label][0]['metrics']}")
    return {
        "protocol": f"full ranking, RecBole's own ML-100K RS 80/10/10 split, seed {OWN_SPLIT_SEED}",
        "seeds": [OWN_SPLIT_SEED],
        "recbole_settings": {m: OWN_SPLIT_RECBOLE.get(m, {}) for m in recbole_models},
        "models": summarise({**theirs, **ours}),
    }


def read_tsv_split(folder: Path) -> Split:
    """A split written as raw-id ``train/valid/test.tsv`` over one shared vocabulary."""
    rows = {n: np.loadtxt(folder / f"{n}.tsv", dtype=np.int64, ndmin=2) for n in PARTS}
    users = np.concatenate([rows[n][:, 0] for n in PARTS])
    items = np.concatenate([rows[n][:, 1] for n in PARTS])
    label = np.concatenate([np.full(len(rows[n]), k) for k, n in enumerate(PARTS)])
    data = Interactions.from_arrays(users, items)
    train, valid, test = (data.subset(label == k) for k in range(3))
    return Split(train, test, valid, spec="recbole-own-RS", seed=OWN_SPLIT_SEED)


# ---------------------------------------------------------------------------- RecBole
def run_recbole(
    python: str,
    model: str,
    parts: Split | None,
    seed: int,
    settings: dict[str, Any] | None = None,
    timing: bool = False,
    own_split: str | None = None,
) -> dict[str, Any]:
    """Write the split as RecBole atomic files and run recbole_runner.py in RecBole's venv;
    with ``own_split`` (a folder), RecBole splits ml-100k itself and writes its split there."""
    with tempfile.TemporaryDirectory() as tmp:
        name = "nrsplit"
        if parts is not None:
            folder = Path(tmp) / name
            folder.mkdir()
            for part in PARTS:
                write_atomic(folder / f"{name}.{part}.inter", getattr(parts, part))
        out = Path(tmp) / "result.json"
        cmd = [
            python,
            str(HERE / "recbole_runner.py"),
            model,
            tmp,
            name,
            "--seed",
            str(seed),
            "--out",
            str(out),
            "--set",
            json.dumps(settings or {}),
            *(["--timing-only"] if timing else []),
            *(["--own-split", own_split] if own_split else []),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if proc.returncode != 0:
            raise RuntimeError(f"RecBole {model} failed:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def write_atomic(path: Path, inter: Interactions) -> None:
    """RecBole's .inter format: a typed header, then tab-separated raw ids."""
    users = inter.user_ids.to_ids(inter.users)
    items = inter.item_ids.to_ids(inter.items)
    with open(path, "w") as fh:
        fh.write("user_id:token\titem_id:token\n")
        fh.writelines(f"{u}\t{i}\n" for u, i in zip(users, items, strict=True))


# ---------------------------------------------------------------------------- main
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="full,recbole,speed,loo,loo1m")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--models", default=",".join(FULL_MODELS), help="models of the full piece")
    ap.add_argument("--recbole-models", default=",".join(RECBOLE_MODELS))
    ap.add_argument(
        "--foldin-models",
        default="gmf,neumf,biased-mf (bpr),ease",
        help="models of the foldin piece",
    )
    ap.add_argument(
        "--own-split-models",
        default="ease,biased-mf (bpr),neumf",
        help="our models of the ownsplit piece",
    )
    ap.add_argument(
        "--recbole-python",
        default=os.environ.get("RECBOLE_PYTHON", "/work/venv-recbole/bin/python"),
    )
    ap.add_argument("--loo1m-max-epochs", type=int, default=100)
    ap.add_argument(
        "--loo-models", default="", help="only these models of the loo and loo1m pieces"
    )
    ap.add_argument(
        "--no-loo-refit",
        action="store_true",
        help="loo pieces: skip the refit on train + validation after early stopping",
    )
    ap.add_argument("--speed-epochs", type=int, default=5)
    ap.add_argument("--speed-rounds", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results" / "ncf.json"))
    ap.add_argument(
        "--merge-from",
        default="",
        help="comma-separated result files of per-seed runs (same piece, other seeds) whose "
        "runs are pooled into --out instead of running anything",
    )
    ap.add_argument("--markdown", action="store_true", help="print --out as Markdown tables")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.out).read_text())))
        return
    if args.merge_from:
        merge_runs(args.merge_from.split(","), Path(args.out), args.only.split(","))
        return
    torch.set_num_threads(1)  # as the RecBole anchors: one thread, comparable timings
    seeds = [int(s) for s in args.seeds.split(",")]
    out_path = Path(args.out)
    for piece in args.only.split(","):
        start = time.perf_counter()
        if piece == "full":
            res = piece_full(
                seeds, args.models.split(","), lambda part: write_piece(out_path, "full", part)
            )
        elif piece == "recbole":
            res = piece_recbole(
                seeds,
                args.recbole_python,
                args.recbole_models.split(","),
                lambda part: write_piece(out_path, "recbole", part),
            )
        elif piece == "ownsplit":
            res = piece_ownsplit(
                args.recbole_python,
                args.own_split_models.split(","),
                args.recbole_models.split(","),
            )
        elif piece == "speed":
            res = piece_speed(seeds, args.recbole_python, args.speed_epochs, args.speed_rounds)
        elif piece == "loo":
            res = piece_loo(
                "ml-100k",
                seeds,
                None,
                args.loo_models and args.loo_models.split(","),
                not args.no_loo_refit,
            )
        elif piece == "foldin":
            res = piece_foldin(seeds, args.foldin_models.split(","))
        elif piece == "loo1m":
            res = piece_loo(
                "ml-1m-triples",
                seeds[:1],
                args.loo1m_max_epochs,
                args.loo_models and args.loo_models.split(","),
                not args.no_loo_refit,
            )
        else:
            raise SystemExit(f"unknown piece {piece!r}")
        res["seconds"] = round(time.perf_counter() - start, 1)
        write_piece(out_path, piece, res)
        print_table(piece, res)


def write_piece(out_path: Path, piece: str, res: dict[str, Any]) -> None:
    """Merge one piece's (possibly partial) result into the results file."""
    res["command"] = " ".join(["python", *sys.argv])
    res["when"] = time.strftime("%Y-%m-%d %H:%M:%S")
    # re-read right before writing: pieces may run in parallel processes
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    results["reference"] = REFERENCE
    old = results.get(piece, {})
    if "models" in res and old.get("seeds") == res.get("seeds"):
        # a run of some models adds to (or replaces) those models only
        res["models"] = {**old.get("models", {}), **res["models"]}
        earlier = old.get("commands", [old["command"]] if "command" in old else [])
        res["commands"] = list(dict.fromkeys([*earlier, res["command"]]))
    results[piece] = res
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1))


def merge_runs(files: list[str], out_path: Path, pieces: list[str]) -> None:
    """Pool the per-seed runs of ``pieces`` from several result files into ``out_path``."""
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    for piece in pieces:
        if piece == "speed":  # one run, copied as it is
            results[piece] = json.loads(Path(files[0]).read_text())[piece]
            continue
        parts = [json.loads(Path(f).read_text())[piece] for f in files if f.endswith(".json")]
        runs: dict[str, list[dict[str, Any]]] = {}
        for part in parts:
            for name, m in part["models"].items():
                runs.setdefault(name, []).extend(m["runs"])
        for f in files:
            if not f.endswith(".json"):  # the log of an interrupted run
                for name, logged in import_log(f).get(piece, {}).items():
                    runs.setdefault(name, []).extend(logged)
                parts.append({"seeds": sorted({r["seed"] for v in runs.values() for r in v})})
        merged = {**results.get(piece, parts[0]), "models": {}}
        old_models = results.get(piece, {}).get("models", {})
        merged["models"] = {**old_models, **summarise(runs)}
        merged["seeds"] = sorted({s for p in parts for s in p["seeds"]})
        merged["commands"] = [c for p in parts for c in p.get("commands", [p.get("command")])]
        results[piece] = merged
        print_table(piece, merged)
    out_path.write_text(json.dumps(results, indent=1))


def markdown(results: dict[str, Any]) -> str:
    """Mean ± std tables of every piece with models, for docs and reports."""
    lines = []
    for piece in ("full", "recbole", "ownsplit", "foldin", "speed", "loo", "loo1m"):
        res = results.get(piece)
        if not res or "models" not in res:
            continue
        models = res["models"]
        keys = list(next(iter(models.values()))["mean"])
        lines += [f"### {piece}: {res.get('protocol', '')} (seeds {res.get('seeds')})", ""]
        lines.append("| model | " + " | ".join(keys) + " | s/epoch (CPU) |")
        lines.append("|---|" + "---|" * (len(keys) + 1))
        for name, m in models.items():
            cells = [f"{m['mean'][k]:.4f} ± {m['std'][k]:.3f}" for k in keys]
            cpu = _mean_of(m["runs"], "cpu_sec_per_epoch")
            wall = m.get("sec_per_epoch")
            timing = "-" if wall is None else f"{wall} ({cpu})"
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {timing} |")
        lines.append("")
    return "\n".join(lines)


def print_table(piece: str, res: dict[str, Any]) -> None:
    if piece == "speed":
        m = res["mean"]
        print(
            f"\nspeed: neumf at RecBole's settings, {res['timed_epochs']} epochs x "
            f"{len(res['rounds']['recbole'])} rounds, 1 thread"
        )
        for lib in ("neuralrec", "recbole"):
            print(
                f"  {lib:10s} {m[lib]['sec_per_epoch']:.3f} s/epoch wall, "
                f"{m[lib]['cpu_sec_per_epoch']:.3f} s/epoch CPU; fits of "
                + ", ".join(f"{r['fit_seconds']:.1f}" for r in res["rounds"][lib])
                + " s"
            )
        print(f"  speed-up x{res['speedup_wall']} wall, x{res['speedup_cpu']} CPU")
    models = res["models"]
    keys = list(next(iter(models.values()))["mean"])
    print(f"\n{piece}: {res.get('protocol', '')} (seeds {res.get('seeds')})")
    print(f"{'model':22s}" + "".join(f"{k:>14s}" for k in keys) + f"{'s/epoch':>10s}")
    for name, m in models.items():
        cells = "".join(f"{m['mean'][k]:>8.4f}±{m['std'][k]:.3f}" for k in keys)
        print(f"{name:22s}{cells}{m['sec_per_epoch'] or '-':>10}")


if __name__ == "__main__":
    main()
