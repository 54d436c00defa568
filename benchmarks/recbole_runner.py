"""Run one RecBole 1.2.1 model on a split written by bench_ncf.py (RecBole atomic files).

Runs in RecBole's own virtual environment, never neuralrec's:

    /work/venv-recbole/bin/python benchmarks/recbole_runner.py NeuMF DATA_DIR NAME --seed 0 \
        --set '{"train_neg_sample_args": {"sample_num": 1}}' --out result.json

``DATA_DIR/NAME/NAME.{train,valid,test}.inter`` hold our exact split; RecBole reads them through
its ``benchmark_filename`` option, so it trains, validates and tests on the same rows as
neuralrec. The settings are those of the anchor runs (shared/anchors/recbole/configs/
topn_full.yaml): Adam lr 1e-3, batch 2048, early stopping on NDCG@10 with patience 10, full
ranking excluding training (and, for test, validation) items, one torch thread. Mirrors
``recbole.quick_start.run_recbole`` without ray (which breaks on numpy 2) and records the
per-epoch training time.

With ``--own-split DIR`` (DATA_DIR and NAME are then ignored) RecBole splits its bundled
ml-100k itself, per user random 80/10/10 with ``--seed`` (the anchor runs of
shared/ANCHORS.md: seed 2020), writes that split to ``DIR/{train,valid,test}.tsv`` (raw user
and item ids) so that neuralrec can be run on RecBole's own rows, and runs the model on it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

SETTINGS = {
    "use_gpu": False,
    "reproducibility": True,
    "show_progress": False,
    "state": "WARNING",
    "load_col": {"inter": ["user_id", "item_id"]},
    "val_interval": None,
    "user_inter_num_interval": None,
    "item_inter_num_interval": None,
    "benchmark_filename": ["train", "valid", "test"],
    "epochs": 300,
    "stopping_step": 10,
    "train_batch_size": 2048,
    "learning_rate": 0.001,
    "learner": "adam",
    "train_neg_sample_args": {
        "distribution": "uniform",
        "sample_num": 1,
        "alpha": 1.0,
        "dynamic": False,
        "candidate_num": 0,
    },
    "eval_step": 1,
    "eval_args": {"group_by": "user", "order": "RO", "mode": "full"},
    "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    "valid_metric_bigger": True,
    "eval_batch_size": 4096,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data_dir")
    ap.add_argument("dataset")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--set", default="{}", help="JSON object of RecBole settings to override")
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--timing-only", action="store_true", help="train the set epochs, no validation or test"
    )
    ap.add_argument("--own-split", help="RecBole splits ml-100k itself; the split goes here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    settings = {**SETTINGS, **json.loads(args.set)}
    if args.timing_only:
        settings["eval_step"] = settings["epochs"] + 1  # never validates
    settings.update(
        seed=args.seed,
        data_path=args.data_dir,
        checkpoint_dir=tempfile.mkdtemp(prefix="recbole-ckpt-"),
    )
    dataset_name = args.dataset
    if args.own_split:
        del settings["benchmark_filename"], settings["data_path"]
        settings["eval_args"] = {**settings["eval_args"], "split": {"RS": [0.8, 0.1, 0.1]}}
        dataset_name = "ml-100k"  # RecBole's bundled copy, identical to u.data
    config = Config(model=args.model, dataset=dataset_name, config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    if args.own_split:
        _write_split(args.own_split, {"train": train, "valid": valid, "test": test})
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    epoch_times: list[float] = []
    epoch_cpu: list[float] = []
    original = trainer._train_epoch

    def timed(*a, **k):
        start, cpu = time.perf_counter(), time.process_time()
        out = original(*a, **k)
        epoch_times.append(time.perf_counter() - start)
        epoch_cpu.append(time.process_time() - cpu)
        return out

    trainer._train_epoch = timed
    start = time.perf_counter()
    trainer.fit(train, valid, saved=not args.timing_only, show_progress=False)
    fit_seconds = time.perf_counter() - start
    result = {}
    if not args.timing_only:
        result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    out = {
        "model": args.model,
        "seed": args.seed,
        "test": {k: float(v) for k, v in result.items()},
        "epochs_run": len(epoch_times),
        # RecBole counts epochs without improvement in cur_step (1-based best epoch)
        "best_epoch": len(epoch_times) - trainer.cur_step,
        "sec_per_epoch": sum(epoch_times) / len(epoch_times) if epoch_times else None,
        "cpu_sec_per_epoch": sum(epoch_cpu) / len(epoch_cpu) if epoch_cpu else None,
        "fit_seconds": fit_seconds,
        "settings": {k: v for k, v in settings.items() if k not in ("data_path", "checkpoint_dir")},
        "n_train": len(train._dataset.inter_feat),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print(
        "RESULT", json.dumps({k: out[k] for k in ("model", "test", "epochs_run", "sec_per_epoch")})
    )


def _write_split(folder: str, parts: dict) -> None:
    """Each part's (user, item) rows as raw ids, tab-separated."""
    os.makedirs(folder, exist_ok=True)
    for name, loader in parts.items():
        d = loader._dataset
        users = d.id2token("user_id", d.inter_feat["user_id"].numpy())
        items = d.id2token("item_id", d.inter_feat["item_id"].numpy())
        with open(os.path.join(folder, f"{name}.tsv"), "w") as fh:
            fh.writelines(f"{u}\t{i}\n" for u, i in zip(users, items, strict=True))


if __name__ == "__main__":
    main()
