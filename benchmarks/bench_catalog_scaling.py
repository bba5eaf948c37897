"""What does not scale to catalogs of 100,000 to 1,000,000 items: training steps with the catalog softmax against the
sampled softmax, exact top-10 recommendation, checkpoint size and load time.

For each catalog size a seeded synthetic P5 folder is written once (``sequential.txt`` + ``datamaps.json``; every
item bought at least once, spread over the users, plus ``--zipf-per-user`` draws of Zipf popularity, 1 / rank).
Each point (catalog, softmax) runs in fresh processes (``isolation.run_isolated``), so peak memory is its own:

1. training: ``build_trainer`` (load + prepare the folder, add the item tokens, build the d_model-64 student) on the
   sequential task, ``--warmup`` + ``--steps`` optimiser steps, the median step of the timed ones; the checkpoint is
   saved (its size in MiB). The seconds of ``scheme.add_tokens`` (one new token per item) are timed apart.
2. recommendation, in another fresh process: ``from_pretrained`` + the tokenizer (``load_s``, split into model and
   tokenizer), then exact top-10 (history excluded, `rank_next_items`) of seeded users in batches of 1 and 64,
   milliseconds per user (median batch after one warm-up) and the process's peak memory.

    .venv/bin/python benchmarks/bench_catalog_scaling.py --catalogs 12101 100000
    .venv/bin/python benchmarks/bench_catalog_scaling.py --catalogs 1000000   # merged into the same JSON
    .venv/bin/python benchmarks/bench_catalog_scaling.py --topk-only --catalogs 100000 1000000

``--sasrec-epoch`` measures the SASRec start's first epoch (its validation ranking included) per catalog, with the
full softmax where its memory estimate fits in half the machine's memory and with ``--negatives`` sampled negatives:
``sasrec_points`` of the JSON.

``--topk-only`` measures the exact top-10 alone on a random student and catalog built in memory (no data, no
tokenizer), chunked (``--chunk-size``) against the whole catalog's scores at once, each in a fresh process:
``topk_points`` of the JSON (milliseconds per user and peak memory of the process).

Writes benchmarks/results/catalog_scaling.json (points of other catalogs already there are kept) and its plot,
catalog_scaling.png (``--plot-only`` redraws it from the JSON). Random weights:
times and memory do not depend on them.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from bench_training import StepTimer
from isolation import run_isolated
from tqdm import tqdm

RESULTS_FILE = Path(__file__).parent / "results" / "catalog_scaling.json"
STUDENT = "d_model=64,d_ff=256,num_heads=2,d_kv=32,dropout_rate=0.0"
SOFTMAXES = ("catalog", "sampled")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogs", type=int, nargs="+", default=[12_101, 100_000, 1_000_000], help="catalog sizes")
    parser.add_argument("--softmaxes", nargs="+", default=list(SOFTMAXES), choices=SOFTMAXES)
    parser.add_argument("--users", type=int, default=40_000, help="synthetic users per catalog")
    parser.add_argument("--zipf-per-user", type=int, default=5, help="Zipf-popularity draws per user")
    parser.add_argument("--model-preset", default="mini")
    parser.add_argument("--config-overrides", default=STUDENT)
    parser.add_argument("--batch-size", type=int, default=32, help="training examples per step")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--negatives", type=int, default=1024, help="sampled_softmax_negatives")
    parser.add_argument("--sparse-embedding-gradients", action="store_true",
                        help="the sampled points with `sparse_embedding_gradients` (row-sparse gradients, lazy AdamW)")
    parser.add_argument("--recommend-batches", type=int, nargs="+", default=[1, 64], help="users per top-10 call")
    parser.add_argument("--recommend-repeats", type=int, default=3, help="timed calls per batch size")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady timings on shared cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default="/tmp/rdrec_catalog_scaling", help="synthetic folders and checkpoints")
    parser.add_argument("--topk-only", action="store_true", help="only the chunked vs whole-catalog top-10 points")
    parser.add_argument("--chunk-size", type=int, default=65536, help="items per chunk of the exact top-10")
    parser.add_argument("--plot-only", action="store_true", help="only redraw the plot from the results file")
    parser.add_argument("--sasrec-epoch", action="store_true",
                        help="only the SASRec start's first epoch (training and its validation ranking) per catalog, "
                        "with the full softmax where its memory estimate fits and with --negatives sampled negatives")
    parser.add_argument("--output", default=str(RESULTS_FILE))
    return parser


def write_synthetic_p5(folder: Path, num_items: int, num_users: int, zipf_per_user: int, seed: int) -> Path:
    """A P5 folder of ``num_users`` users over ``num_items`` items (each bought at least once), seeded."""
    if (folder / "sequential.txt").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    owners = rng.integers(0, num_users, size=num_items)  # every item's one guaranteed buyer
    popularity = 1.0 / np.arange(1, num_items + 1)
    draws = rng.choice(num_items, size=(num_users, zipf_per_user), p=popularity / popularity.sum())
    histories: list[list[int]] = [list(row) for row in draws]
    for item, owner in enumerate(owners):
        histories[owner].append(item)
    filler = rng.integers(0, num_items, size=(num_users, 4))
    with open(folder / "sequential.txt", "w", encoding="utf-8") as handle:
        for user, history in enumerate(histories):
            items = list(dict.fromkeys(int(item) + 1 for item in history))
            items += [int(item) + 1 for item in filler[user] if int(item) + 1 not in items][: max(0, 4 - len(items))]
            order = rng.permutation(len(items))
            handle.write(f"{user + 1} " + " ".join(str(items[i]) for i in order) + "\n")
    datamaps = {"id2user": {str(user): f"U{user}" for user in range(1, num_users + 1)},
                "id2item": {str(item): f"I{item:07d}" for item in range(1, num_items + 1)}}
    (folder / "datamaps.json").write_text(json.dumps(datamaps), encoding="utf-8")
    return folder


def sparse_rows(softmax: str, options: argparse.Namespace) -> bool:
    """Whether a point trains with `sparse_embedding_gradients` (the sampled softmax's option)."""
    return softmax == "sampled" and options.sparse_embedding_gradients


def point_key(point: dict) -> tuple:
    """What tells two training points apart (a rerun replaces the point of the same key)."""
    return point["catalog"], point["softmax"], point.get("sparse_embedding_gradients", False)


def train_point(folder: str, softmax: str, options: argparse.Namespace, output_dir: str) -> dict:
    """Prepare + build + a few training steps of one (catalog, softmax) point; saves the checkpoint."""
    from rdrec_hf.data import load_tokenizer
    from rdrec_hf.data.loading import load_training_data
    from rdrec_hf.data.schema import item_id_scheme
    from rdrec_hf.paths import t5_tokenizer_dir
    from rdrec_hf.training import DataArguments, ModelArguments, RDRecTrainingArguments, build_trainer

    torch.set_num_threads(options.threads)
    logging.basicConfig(level=logging.WARNING)
    data_args = DataArguments(dataset=folder)
    started = time.perf_counter()
    data = load_training_data(data_args)
    prepare_s = time.perf_counter() - started
    tokenizer = load_tokenizer(t5_tokenizer_dir())
    started = time.perf_counter()
    item_id_scheme(data).add_tokens(tokenizer, data["items"]["item_id"])
    add_tokens_s = time.perf_counter() - started
    num_items = data["items"].num_rows
    del data, tokenizer
    training_args = RDRecTrainingArguments(
        output_dir=output_dir, max_steps=options.warmup + options.steps, per_device_train_batch_size=options.batch_size,
        learning_rate=1e-3, logging_steps=10_000, save_strategy="no", do_eval=False, rank_eval=False, use_cpu=True,
        report_to="none", seed=options.seed, task_mixture="0:1:0:0", ranking_softmax=softmax,
        sampled_softmax_negatives=min(options.negatives, num_items), disable_tqdm=True,
        sparse_embedding_gradients=sparse_rows(softmax, options),
    )
    model_args = ModelArguments(model_preset=options.model_preset, config_overrides=options.config_overrides)
    started = time.perf_counter()
    trainer = build_trainer(model_args, data_args, training_args)
    build_s = time.perf_counter() - started
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    started = time.perf_counter()
    trainer.save_model(output_dir)
    save_s = time.perf_counter() - started
    files = [path for path in Path(output_dir).iterdir() if path.is_file()]
    return {
        "num_items": num_items,
        "step_s": statistics.median(timer.seconds[options.warmup:]),
        "prepare_s": prepare_s,
        "add_tokens_s": add_tokens_s,
        "build_trainer_s": build_s,
        "save_s": save_s,
        "checkpoint_mib": sum(path.stat().st_size for path in files) / 2**20,
        "checkpoint_files_mib": {path.name: round(path.stat().st_size / 2**20, 2) for path in files
                                 if path.stat().st_size > 2**20},
    }


def recommend_point(checkpoint: str, options: argparse.Namespace) -> dict:
    """Load a checkpoint in this fresh process, then exact top-10 of seeded users in batches."""
    from rdrec_hf.data import load_tokenizer
    from rdrec_hf.models import RDRecForConditionalGeneration
    from rdrec_hf.models.recommending import rank_next_items

    torch.set_num_threads(options.threads)
    started = time.perf_counter()
    model = RDRecForConditionalGeneration.from_pretrained(checkpoint).eval()
    model_load_s = time.perf_counter() - started
    started = time.perf_counter()
    tokenizer = load_tokenizer(checkpoint)
    tokenizer_load_s = time.perf_counter() - started
    catalog = model.item_index.item_ids
    rng = random.Random(options.seed)
    per_user = {}
    for batch_size in options.recommend_batches:
        seconds = []
        for _ in range(options.recommend_repeats + 1):  # the first is a warm-up
            histories = [rng.sample(catalog, 8) for _ in range(batch_size)]
            started = time.perf_counter()
            output = rank_next_items(model, tokenizer, histories, [None] * batch_size, k=10)
            seconds.append(time.perf_counter() - started)
            assert all(len(items) == 10 for items in output.item_ids)
        per_user[str(batch_size)] = 1000 * statistics.median(seconds[1:]) / batch_size
    return {"model_load_s": model_load_s, "tokenizer_load_s": tokenizer_load_s,
            "load_s": model_load_s + tokenizer_load_s, "recommend_ms_per_user": per_user}


def topk_point(num_items: int, batch_size: int, chunk_size: int | None, options: argparse.Namespace) -> dict:
    """Exact top-10 of ``batch_size`` random prompts (history of 8 excluded) over a random one-token catalog."""
    from rdrec_hf.models import ItemIndex, RDRecConfig, RDRecForConditionalGeneration
    from rdrec_hf.models.tasks import Task

    torch.set_num_threads(options.threads)
    text_vocab = 32_100
    overrides = dict(item.split("=") for item in options.config_overrides.split(","))
    overrides = {key: float(value) if "." in value else int(value) for key, value in overrides.items()}
    torch.manual_seed(options.seed)
    model = RDRecForConditionalGeneration(
        RDRecConfig.from_preset(options.model_preset, vocab_size=text_vocab + num_items, **overrides)).eval()
    started = time.perf_counter()
    item_ids = [str(item) for item in range(1, num_items + 1)]
    catalog = ItemIndex(item_ids, [[text_vocab + item] for item in range(num_items)], text_vocab + num_items,
                        eos_token_id=1, scheme="independent")
    index_s = time.perf_counter() - started
    generator = torch.Generator().manual_seed(options.seed)
    rng = random.Random(options.seed)
    seconds = []
    with torch.no_grad():
        for _ in range(options.recommend_repeats + 1):
            batch = {"input_ids": torch.randint(5, 3000, (batch_size, 40), generator=generator),
                     "task_id": int(Task.SEQUENTIAL)}
            exclude = [rng.sample(item_ids, 8) for _ in range(batch_size)]
            started = time.perf_counter()
            output = model.generate(**batch, item_index=catalog, exclude_items=exclude, num_return_sequences=10,
                                    decoding="exact", chunk_size=chunk_size)
            seconds.append(time.perf_counter() - started)
            assert all(len(items) == 10 for items in output.item_ids)
    return {"catalog": num_items, "batch": batch_size, "chunk_size": chunk_size, "item_index_s": index_s,
            "ms_per_user": 1000 * statistics.median(seconds[1:]) / batch_size}


def topk_main(args: argparse.Namespace, output: Path) -> dict:
    """The chunked vs whole-catalog top-10 points, merged into ``topk_points`` of the results file."""
    result = json.loads(output.read_text(encoding="utf-8")) if output.is_file() else {"points": []}
    points = []
    cases = [(catalog, batch, chunk) for catalog in args.catalogs for batch in args.recommend_batches
             for chunk in (args.chunk_size, None)]
    for catalog, batch, chunk in tqdm(cases, desc="top-10 points", unit="point"):
        point = run_isolated(topk_point, catalog, batch, chunk, args)
        tqdm.write(json.dumps(point))
        points.append(point)
    measured = {(point["catalog"], point["batch"], point["chunk_size"]) for point in points}
    kept = [point for point in result.get("topk_points", [])
            if (point["catalog"], point["batch"], point["chunk_size"]) not in measured]
    result["topk_points"] = sorted(kept + points, key=lambda p: (p["catalog"], p["batch"], p["chunk_size"] or 0))
    result["topk_command"] = ("benchmarks/bench_catalog_scaling.py --topk-only --catalogs "
                              + " ".join(map(str, args.catalogs)) + f" --chunk-size {args.chunk_size} --threads "
                              f"{args.threads} --recommend-batches " + " ".join(map(str, args.recommend_batches)))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{'catalog':>9} {'batch':>6} {'chunk':>7} {'ms/user':>8} {'peak MiB':>9}")
    for point in result["topk_points"]:
        print(f"{point['catalog']:>9} {point['batch']:>6} {str(point['chunk_size']):>7} {point['ms_per_user']:>8.2f} "
              f"{point['peak_rss_mib']:>9.0f}")
    return result


def sasrec_epoch_point(folder: str, negatives: int | None, options: argparse.Namespace) -> dict:
    """One epoch of the SASRec start (width 64, its recipe's training config) on a synthetic folder, in this fresh
    process: the epoch's seconds with its validation ranking of every user, and (by ``run_isolated``) peak RSS."""
    from rdrec_hf.data.loading import DataArguments, load_training_data
    from rdrec_hf.models.item_ids import as_list
    from rdrec_hf.models.sasrec import SASRecConfig, SASRecTrainingConfig, fit_sasrec

    torch.set_num_threads(options.threads)
    data = load_training_data(DataArguments(dataset=folder))
    position = {item: index + 1 for index, item in enumerate(as_list(data["items"]["item_id"]))}
    sequences = [[position[item] for item in items] for items in as_list(data["users"]["items"])]
    _, info = fit_sasrec(sequences, SASRecConfig(num_items=len(position), hidden_size=64, init_seed=options.seed),
                         SASRecTrainingConfig(max_epochs=1, patience=1, seed=options.seed, num_negatives=negatives))
    return {"epoch_s": info["train_seconds"]}


def sasrec_main(args: argparse.Namespace, output: Path) -> dict:
    """``sasrec_points`` of the results file: the SASRec start's epoch per catalog, full and sampled softmax."""
    from rdrec_hf.data import training_history
    from rdrec_hf.training.memory import available_memory_bytes, sasrec_start_bytes

    result = json.loads(output.read_text(encoding="utf-8")) if output.is_file() else {"points": []}
    points = []
    for catalog in tqdm(args.catalogs, desc="SASRec epochs", unit="catalog"):
        folder = write_synthetic_p5(work_folder(args, catalog), catalog, args.users, args.zipf_per_user, args.seed)
        lengths = [len(training_history(line.split()[1:]))  # a line: the user, then the items
                   for line in (folder / "sequential.txt").read_text().splitlines()]
        full = sasrec_start_bytes(catalog, 64, lengths, None)
        for negatives in (None, args.negatives):
            if negatives is None and sum(full.values()) > available_memory_bytes(torch.device("cpu")) / 2:
                tqdm.write(f"{catalog}: the full softmax's estimate {sum(full.values()) / 2**30:.1f} GiB: not run")
                continue
            point = {"catalog": catalog, "negatives": negatives,
                     **run_isolated(sasrec_epoch_point, str(folder), negatives, args)}
            tqdm.write(json.dumps(point))
            points.append(point)
    measured = {(point["catalog"], point["negatives"]) for point in points}
    kept = [point for point in result.get("sasrec_points", []) if (point["catalog"], point["negatives"]) not in measured]
    result["sasrec_points"] = sorted(kept + points, key=lambda point: (point["catalog"], point["negatives"] or 0))
    result["sasrec_command"] = ("benchmarks/bench_catalog_scaling.py --sasrec-epoch --catalogs "
                                + " ".join(map(str, args.catalogs)) + f" --negatives {args.negatives} --threads "
                                f"{args.threads} --users {args.users}")
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def work_folder(args: argparse.Namespace, catalog: int) -> Path:
    """The synthetic P5 folder of ``catalog`` items under ``--work-dir`` (written once, reused by every mode)."""
    return Path(args.work_dir) / f"p5_{catalog}_u{args.users}_z{args.zipf_per_user}_s{args.seed}"


def series_label(point: dict) -> str:
    return point["softmax"] + (", sparse rows" if point.get("sparse_embedding_gradients") else "")


def plot_points(points: list[dict], path: Path) -> None:
    """Training step and fresh-process load time against the catalog size, one line per softmax (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label in dict.fromkeys(series_label(point) for point in points):
        series = sorted((point for point in points if series_label(point) == label), key=lambda point: point["catalog"])
        catalogs = [point["catalog"] for point in series]
        axes[0].plot(catalogs, [point["step_s"] for point in series], marker="o", label=label)
        axes[1].plot(catalogs, [point["load_s"] for point in series], marker="o", label=label)
    titles = ("training step (s, batch 32, one thread)", "fresh process: load model + tokenizer (s)\n"
              "(catalog, sampled: a tokenizer token per item)")
    for axis, title in zip(axes, titles):
        axis.set(xscale="log", yscale="log", xlabel="catalog (items)", title=title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(args: argparse.Namespace) -> dict:
    work = Path(args.work_dir)
    output = Path(args.output)
    if args.topk_only:
        return topk_main(args, output)
    if args.sasrec_epoch:
        return sasrec_main(args, output)
    if args.plot_only:
        result = json.loads(output.read_text(encoding="utf-8"))
        plot_points(result["points"], output.with_suffix(".png"))
        return result
    previous = json.loads(output.read_text(encoding="utf-8"))["points"] if output.is_file() else []
    points = []
    cases = [(catalog, softmax) for catalog in args.catalogs for softmax in args.softmaxes]
    for catalog, softmax in tqdm(cases, desc="catalog points", unit="point"):
        folder = write_synthetic_p5(work_folder(args, catalog), catalog, args.users, args.zipf_per_user, args.seed)
        checkpoint = work / f"student_{catalog}_{softmax}{'_sparse' if sparse_rows(softmax, args) else ''}"
        trained = run_isolated(train_point, str(folder), softmax, args, str(checkpoint))
        recommended = run_isolated(recommend_point, str(checkpoint), args)
        point = {"catalog": catalog, "softmax": softmax, "sparse_embedding_gradients": sparse_rows(softmax, args),
                 "step_s": trained.pop("step_s"),
                 "peak_rss_mib": trained.pop("peak_rss_mib"),
                 "recommend_ms_per_user": recommended.pop("recommend_ms_per_user"),
                 "recommend_peak_rss_mib": recommended.pop("peak_rss_mib"), "load_s": recommended.pop("load_s"),
                 **trained, **recommended}
        tqdm.write(json.dumps(point))
        points.append(point)
    measured = {point_key(point) for point in points}
    kept = [point for point in previous if point_key(point) not in measured]
    result = json.loads(output.read_text(encoding="utf-8")) if output.is_file() else {}
    command = "benchmarks/bench_catalog_scaling.py " + " ".join(
        f"--{key.replace('_', '-')}" + ("" if value is True else
                                        f" {' '.join(map(str, value)) if isinstance(value, list) else value}")
        for key, value in vars(args).items()
        if key not in ("output", "work_dir", "topk_only", "plot_only", "sasrec_epoch", "chunk_size") and value is not False)
    result |= {
        "command": command,
        # The points of one file may come from several runs (one catalog at a time): every run's command, in order.
        "commands": [*[old for old in result.get("commands", []) if old != command], command],
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {"student": f"{args.model_preset} + {args.config_overrides}", "task": "sequential",
                     "batch_size": args.batch_size, "negatives": args.negatives, "users": args.users},
        "points": sorted(kept + points, key=point_key),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    plot_points(result["points"], output.with_suffix(".png"))
    print(f"{'catalog':>9} {'softmax':>8} {'step s':>7} {'RSS MiB':>8} {'ms/user (1, 64)':>16} {'rec MiB':>8} {'load s':>7}")
    for point in result["points"]:
        ms = point["recommend_ms_per_user"]
        print(f"{point['catalog']:>9} {point['softmax']:>8} {point['step_s']:>7.3f} {point['peak_rss_mib']:>8.0f} "
              f"{', '.join(f'{value:.1f}' for value in ms.values()):>16} {point['recommend_peak_rss_mib']:>8.0f} "
              f"{point['load_s']:>7.2f}")
    return result


if __name__ == "__main__":
    main(make_parser().parse_args())
