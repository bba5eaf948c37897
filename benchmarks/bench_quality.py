"""Quality baselines on the P5 Amazon splits: popularity, the leak rule and a full-softmax SASRec.

One (dataset, indexing) per invocation; its results are merged into benchmarks/results/quality_baselines.json
(under ``<dataset>/<indexing>/<device>``) and the markdown of all stored runs is printed and written beside it:

    .venv/bin/python benchmarks/bench_quality.py --dataset beauty --indexing random --wall-budget-s 600
    .venv/bin/python benchmarks/bench_quality.py --dataset beauty --indexing sequential --wall-budget-s 600
    .venv/bin/python benchmarks/bench_quality.py --markdown-only      # re-print the tables from the JSON

Protocol (leave-one-out, as in P5 / POD / RDRec): a user's training part is ``items[:-2]``, the validation
target ``items[-2]``, the test target ``items[-1]``.

- sequential: full ranking over the catalog from ``items[:-1]``, every item of the history excluded;
- top-N: the test target among the dataset's 99 stored test negatives (100 candidates), a tie ranking the
  target last;
- metrics: HR@1/5/10, NDCG@5/10 (``rdrec_hf.evaluation.ranking_metrics``).

SASRec trains on every next-item position of the training parts (inputs ``items[:-3]``, targets
``items[1:-2]``), with early stopping on the validation NDCG@10 (full ranking from ``items[:-2]``), under a
wall-clock budget. Popularity counts the training parts only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rdrec_hf.data import load_p5_dataset, split_target, training_history
from rdrec_hf.evaluation import (
    aggregate_seeds,
    item_popularity,
    leak_rule_ranking,
    popularity_ranking,
    rank_by_score,
    ranking_metrics,
    sample_users,
)
from rdrec_hf.evaluation.report import format_value
from rdrec_hf.models.sasrec import SASRecConfig, SASRecModel, SASRecTrainingConfig, fit_sasrec
from rdrec_hf.paths import p5_dataset_dir

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TOP_K = 10
METRICS = ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10")
TASKS = ("sequential", "topn")
TASK_TITLES = {
    "sequential": "Sequential recommendation: full ranking over the catalog, history excluded",
    "topn": "Top-N recommendation: the test item among its 99 stored negatives",
}
SYSTEM_LABELS = {"popularity": "popularity", "leak_rule": "leak rule (max(history)+1, +2, ...)"}

# Published results on the paper's (sequential) indexing, as quoted in issue 6. POD: Li et al., "Prompt
# Distillation for Efficient LLM-based Recommendation", CIKM 2023 (figures from POD's own logs); RDRec:
# Wang et al., "Rationale Distillation for LLM-based Recommendation", ACL 2024 (means of 10 runs).
PUBLISHED = {
    "beauty": {
        "sequential": {
            "POD": {"hr@5": 0.0537, "ndcg@5": 0.0395, "hr@10": 0.0688, "ndcg@10": 0.0443},
            "RDRec": {"hr@5": 0.0601, "ndcg@5": 0.0461, "hr@10": 0.0743, "ndcg@10": 0.0504},
        },
        "topn": {
            "POD": {"hr@5": 0.1926, "ndcg@5": 0.1391, "hr@10": 0.2670, "ndcg@10": 0.1629},
            "RDRec": {"hr@5": 0.2572, "ndcg@5": 0.1907, "hr@10": 0.3380, "ndcg@10": 0.2160},
        },
    },
    "sports": {
        "sequential": {
            "POD": {"hr@5": 0.0496, "ndcg@5": 0.0396, "hr@10": 0.0576, "ndcg@10": 0.0419},
            "RDRec": {"hr@5": 0.0504, "ndcg@5": 0.0408, "hr@10": 0.0596, "ndcg@10": 0.0433},
        },
    },
}
PUBLISHED_SOURCE = (
    "POD: Li et al., CIKM 2023, figures from POD's own logs; RDRec: Wang et al., ACL 2024, means of 10 runs. "
    "Both on the paper's (sequential) indexing; their top-N negatives are not public, ours are sampled."
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["beauty", "sports"], default="beauty")
    parser.add_argument("--indexing", choices=["sequential", "random"], default="random")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the random indexing and the negatives")
    parser.add_argument("--seed", type=int, default=0, help="seed of SASRec's initialisation, batches and dropout")
    parser.add_argument("--wall-budget-s", type=float, default=600.0, help="SASRec training budget (seconds)")
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10, help="epochs without a better validation NDCG@10")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--num-blocks", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--max-length", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--test-users", type=int, default=None, help="seeded sample of test users (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="torch device of SASRec (cpu, cuda)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "quality_baselines.json")
    parser.add_argument("--markdown-only", action="store_true", help="print the tables of the stored runs only")
    args = parser.parse_args(argv)
    if args.test_users is not None and args.test_users < 1:
        parser.error("--test-users must be positive")
    if args.markdown_only and not args.output.is_file():
        parser.error(f"--markdown-only: no results at {args.output} yet")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda given but CUDA is not available")
    return args


def machine_description(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or platform.machine(),
    )
    return f"{model}, {os.cpu_count()} cores, {threads} torch thread(s) (torch {torch.__version__})"


def baseline_rankings(users, popular_items: list[str], catalog_size: int) -> dict[str, dict[str, list]]:
    """Top-10 lists of the model-free baselines for both tasks: ``{system: {task: [ranking per user]}}``."""
    rankings = {system: {task: [] for task in TASKS} for system in ("popularity", "leak_rule")}
    for user in tqdm(users, desc="baselines", unit="user"):
        history, target = split_target(user["items"], "test")
        candidates = [target, *user["test_negatives"]]
        rankings["leak_rule"]["sequential"].append(leak_rule_ranking(history, catalog_size, TOP_K))
        rankings["leak_rule"]["topn"].append(leak_rule_ranking(history, candidates, TOP_K))
        rankings["popularity"]["sequential"].append(popularity_ranking(popular_items, history, TOP_K))
        rankings["popularity"]["topn"].append(popularity_ranking(popular_items, history, TOP_K, candidates))
    return rankings


def sasrec_rankings(model: SASRecModel, users, index_of: dict[str, int], item_ids: list[str], batch_size: int):
    """SASRec's top-10 lists for both tasks: ``{task: [ranking per user]}``."""
    histories, candidate_lists, targets = [], [], []
    for user in users:
        history, target = split_target(user["items"], "test")
        histories.append([index_of[item] for item in history])
        candidate_lists.append([target, *user["test_negatives"]])
        targets.append(target)
    top = model.top_k(histories, TOP_K, batch_size).tolist()
    candidate_indices = torch.tensor([[index_of[item] for item in row] for row in candidate_lists])
    scores = model.predict(histories, candidate_indices, batch_size).tolist()
    return {
        "sequential": [[item_ids[index - 1] for index in row] for row in top],
        "topn": [
            rank_by_score(candidates, row_scores, target)[:TOP_K]
            for candidates, row_scores, target in zip(candidate_lists, scores, targets)
        ],
    }


def train_baseline_sasrec(args, data, index_of: dict[str, int], device: torch.device):
    """SASRec fitted on the training parts with early stopping on validation (`fit_sasrec`, not cached: each
    run times its own training); returns (model, summary, configs)."""
    model_config = SASRecConfig(
        num_items=len(index_of),
        max_history_length=args.max_length,
        hidden_size=args.hidden_size,
        num_blocks=args.num_blocks,
        num_heads=args.num_heads,
        dropout=args.dropout,
        init_seed=args.seed,
    )
    training_config = SASRecTrainingConfig(
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_epochs=args.max_epochs,
        patience=args.patience,
        wall_budget_s=args.wall_budget_s,
        seed=args.seed,
    )
    sequences = [[index_of[item] for item in items] for items in data["users"]["items"]]
    model, summary = fit_sasrec(sequences, model_config, training_config, device=device)
    summary = {key: value for key, value in summary.items() if key not in ("model", "cached")}
    return model, summary, {"model": model_config.architecture(), "training": asdict(training_config)}


def run(args) -> dict:
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    load_average_start = os.getloadavg()
    data = load_p5_dataset(p5_dataset_dir(args.dataset), indexing=args.indexing, seed=args.data_seed)
    item_ids = list(data["items"]["item_id"])
    index_of = {item: position for position, item in enumerate(item_ids, start=1)}  # SASRec index, 0 pads
    user_ids = list(data["users"]["user_id"])
    kept = set(sample_users(user_ids, args.test_users, args.data_seed))
    test_users = [user for user in data["users"] if user["user_id"] in kept]
    popular_items = item_popularity((training_history(items) for items in data["users"]["items"]), len(item_ids))

    rankings = baseline_rankings(test_users, popular_items, len(item_ids))
    model, summary, configs = train_baseline_sasrec(args, data, index_of, device)
    rankings["sasrec"] = sasrec_rankings(model, test_users, index_of, item_ids, batch_size=512)

    targets = [user["items"][-1] for user in test_users]
    return {
        "dataset": args.dataset,
        "indexing": args.indexing,
        "data_seed": args.data_seed,
        "seed": args.seed,
        "device": device.type,
        "num_users": len(user_ids),
        "num_items": len(item_ids),
        "test_users": len(test_users),
        "test_user_sample": args.test_users is not None and len(test_users) < len(user_ids),
        "metrics": {
            system: {task: ranking_metrics(ranked, targets) for task, ranked in by_task.items()}
            for system, by_task in rankings.items()
        },
        "sasrec": {**summary, **configs},
        "machine": machine_description(device, args.threads),
        "load_average_start_end": [load_average_start[0], os.getloadavg()[0]],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"{Path(sys.executable).name} {shlex.join(sys.argv)}",
        "wall_seconds": time.perf_counter() - started,
    }


def format_metrics(metrics: dict) -> list[str]:
    """Table cells for ``METRICS``: plain numbers, ``mean ± std`` for seed aggregates, ``-`` when absent."""
    return [format_value(metrics.get(name)) for name in METRICS]


def runs_by_setting(runs: dict) -> dict[tuple[str, str, str], list[dict]]:
    """Stored runs grouped by (dataset, indexing, device type), seeds in order; keys are
    ``<dataset>/<indexing>/<device>/seed<n>``."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for key in sorted(runs, key=lambda key: (key.rsplit("/seed", 1)[0], runs[key]["seed"])):
        dataset, indexing, device, _ = key.split("/")
        groups.setdefault((dataset, indexing, device), []).append(runs[key])
    return groups


def sasrec_note(seed_runs: list[dict], device: str) -> str:
    """Seeds, epochs, training time, machine (with the CPU's load: it is shared) and dates of one setting's
    SASRec runs."""
    trained = [run["sasrec"] for run in seed_runs]
    first = seed_runs[0]
    loads = ", ".join(f"{start:.1f}/{end:.1f}" for start, end in (run["load_average_start_end"] for run in seed_runs))
    load_note = f"1-min load average at start/end {loads}; " if device == "cpu" else ""
    sampled = "seeded sample of " if first["test_user_sample"] else "all "
    return (
        f"{len(seed_runs)} seed(s) {', '.join(str(run['seed']) for run in seed_runs)}; "
        f"epochs {', '.join(str(t['epochs']) for t in trained)} (best {', '.join(str(t['best_epoch']) for t in trained)}; "
        f"{', '.join(sorted({t['stop_reason'] for t in trained}))}); "
        f"{statistics.fmean(t['train_seconds'] for t in trained) / 60:.1f} min training per seed; "
        f"{sampled}{first['test_users']:,} test users; {first['machine']}; {load_note}"
        f"{', '.join(sorted({r['date'][:10] for r in seed_runs}))}"
    )


def markdown_report(results: dict) -> str:
    """Per dataset and task: the baselines and SASRec (mean ± std over seeds) of each indexing, then the
    published figures. The model-free baselines do not depend on the seed or the device: shown once."""
    groups = runs_by_setting(results.get("runs", {}))
    header = "| indexing | system | " + " | ".join(name.upper() for name in METRICS) + " | run |"
    lines = []
    for dataset in ("beauty", "sports"):
        published = PUBLISHED.get(dataset, {})
        for task in TASKS:
            settings = [(setting, seed_runs) for setting, seed_runs in groups.items() if setting[0] == dataset]
            if not settings and task not in published:
                continue
            lines += [f"#### {dataset}: {TASK_TITLES[task]}", "", header, "|---|---|" + "---:|" * len(METRICS) + "---|"]
            for indexing in ("random", "sequential"):
                indexing_runs = [(setting[2], seed_runs) for setting, seed_runs in settings if setting[1] == indexing]
                if not indexing_runs:
                    continue
                reference = indexing_runs[0][1][0]
                users = f"all {reference['test_users']:,} test users" if not reference["test_user_sample"] else (
                    f"seeded sample of {reference['test_users']:,} test users")
                for system in ("popularity", "leak_rule"):
                    cells = format_metrics(reference["metrics"][system][task])
                    lines.append(f"| {indexing} | {SYSTEM_LABELS[system]} | " + " | ".join(cells) + f" | {users} |")
                for device, seed_runs in indexing_runs:
                    metrics = aggregate_seeds([run["metrics"]["sasrec"][task] for run in seed_runs])
                    label = f"SASRec ({'GPU' if device == 'cuda' else 'CPU'})"
                    cells = format_metrics(metrics)
                    lines.append(f"| {indexing} | {label} | " + " | ".join(cells) + f" | {sasrec_note(seed_runs, device)} |")
            for system, metrics in published.get(task, {}).items():
                lines.append(f"| sequential | {system} (published) | " + " | ".join(format_metrics(metrics)) + " | cited |")
            lines.append("")
    lines.append(f"Published figures: {PUBLISHED_SOURCE}")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    run_result = None if args.markdown_only else run(args)
    # Read the stored runs only now: other invocations may have added theirs while this one trained.
    results = json.loads(args.output.read_text()) if args.output.is_file() else {"runs": {}}
    if run_result is not None:
        key = f"{args.dataset}/{args.indexing}/{torch.device(args.device).type}/seed{args.seed}"
        results["runs"][key] = run_result
        results["published"] = {"figures": PUBLISHED, "source": PUBLISHED_SOURCE}
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        summary = run_result["sasrec"]
        print(
            f"{key}: SASRec {summary['epochs']} epochs (best {summary['best_epoch']}, {summary['stop_reason']}), "
            f"test NDCG@10 {run_result['metrics']['sasrec']['sequential']['ndcg@10']:.4f}; "
            f"run {run_result['wall_seconds'] / 60:.1f} min; written to {args.output}",
            file=sys.stderr,
        )
    markdown = markdown_report(results)
    args.output.with_suffix(".md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
