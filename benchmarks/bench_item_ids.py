"""Item-id schemes on P5 beauty (or sports), leak-free: the student under one CPU budget per scheme and seed.

Each (scheme, seed) trains recipes/<dataset>/train/config_item_ids.yaml with `--indexing <scheme>` (30
single-thread CPU minutes; item tokens start from the training SVD where the scheme has one) and evaluates
with recipes/<dataset>/evaluation/config_item_ids.yaml (a seeded sample of 5,000 test users; popularity and
the leak rule on the same users), through the programs of `rdrec-hf train --seeds` / `rdrec-hf evaluate
--seeds`. SASRec under the same budget on the same users comes from `benchmarks/bench_quality.py --dataset
<dataset> --wall-budget-s 1800 --test-users 5000 --output benchmarks/results/sasrec_item_ids.json` (sports:
`sasrec_item_ids_sports.json`). Runs go to runs/<dataset>/item-ids/[<variant>/]<scheme>; an evaluated folder
is read back, so the command resumes. Writes benchmarks/results/item_ids[_sports][_<variant>].{json,md}; the
schemes an earlier invocation wrote there and this one does not run stay in the table (with their own seeds):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_item_ids.py --schemes independent --seeds 42 43
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from seeded_runs import metric_cell, num_examples, train_and_evaluate, training_cpu_minutes, training_minutes

from rdrec_hf.evaluation import aggregate_seeds
from rdrec_hf.models import ItemIndexing

RESULTS_DIR = Path(__file__).parent / "results"
RECIPES = Path("recipes")  # run from the repository root, like the runs/ paths
METRICS = ("hr@5", "ndcg@5", "hr@10", "ndcg@10")
SASREC_RUN = "{dataset}/random/cpu/seed0"  # bench_quality.py's key: dataset / indexing / device / seed
BAR_FACTOR = 5  # the bar: the best leak-free scheme at 5x popularity's test NDCG@10, every seed


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--schemes", nargs="+", default=["random", "independent", "collaborative", "collaborative+independent"],
        choices=[scheme.value for scheme in ItemIndexing if scheme is not ItemIndexing.SEQUENTIAL],
        help="item-id schemes, in table order",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43], help="training seeds of every scheme")
    parser.add_argument("--dataset", choices=["beauty", "sports"], default="beauty",
                        help="P5 split: recipes/<dataset>/{train,evaluation}/config_item_ids.yaml")
    parser.add_argument("--variant", help="name of a training variant: runs under runs/<dataset>/item-ids/<variant>/, "
                        "results in item_ids_<variant>.{json,md}")
    parser.add_argument("--train-config", type=Path, help="the training recipe (default: "
                        "recipes/<dataset>/train/config_item_ids.yaml, stopped by the CPU budget)")
    parser.add_argument("--cpu-budget-minutes", type=float, default=30.0,
                        help="the benchmark's rule: each run stops after this many CPU minutes of its process "
                        "(`--benchmark_cpu_minutes`), the item start included; 0: the recipe's own steps alone")
    parser.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                        help="training options of the variant, last on the line (e.g. --ranking_softmax catalog)")
    parser.add_argument("--sasrec", type=Path, help="bench_quality.py results holding SASRec under the same budget "
                        "and users (default: results/sasrec_item_ids.json, for sports sasrec_item_ids_sports.json)")
    return parser


def dataset_suffix(dataset: str) -> str:
    """Beauty's files keep their names; another dataset's carry it (``item_ids_sports.json``, ...)."""
    return "" if dataset == "beauty" else f"_{dataset}"


def run_folder(scheme: str, seed: int, variant: str | None = None, dataset: str = "beauty") -> Path:
    """One (scheme, seed) per folder, so seeds run as separate resumable processes."""
    root = Path("runs") / dataset / "item-ids" / (variant or "")
    return root / scheme.replace("+", "-") / f"run-{seed}"


def sasrec_under_budget(path: Path, num_users: int, dataset: str) -> dict | None:
    """SASRec's sequential metrics from bench_quality's JSON when it ran on the same number of sampled users."""
    if not path.is_file():
        return None
    run = json.loads(path.read_text(encoding="utf-8"))["runs"].get(SASREC_RUN.format(dataset=dataset), {})
    return run if run.get("test_users") == num_users else None


def earlier_schemes(path: Path, schemes: list[str]) -> dict:
    """The results file's entries of the schemes other than ``schemes``: ``{scheme: (result, minutes, seeds,
    CPU minutes)}``."""
    if not path.is_file():
        return {}
    summary = json.loads(path.read_text(encoding="utf-8"))
    seeds_of = summary.get("seeds_of", {})
    cpu = summary.get("training_cpu_minutes", {})
    return {scheme: (result, summary["training_minutes"][scheme], seeds_of.get(scheme, summary["seeds"]), cpu.get(scheme))
            for scheme, result in summary["results"].items() if scheme not in schemes}


def main(args: argparse.Namespace) -> dict:
    results, minutes, cpu_minutes = {}, {}, {}
    recipes = RECIPES / args.dataset
    for scheme in args.schemes:
        # The SVD start needs an item token; the other schemes keep the model's own initialisation.
        init = [] if ItemIndexing(scheme).has_item_token else ["--item_embedding_init", "default"]
        budget = budget_options(args)
        runs = []
        for seed in args.seeds:
            folder = run_folder(scheme, seed, args.variant, args.dataset)
            runs.append(train_and_evaluate(
                str(args.train_config or recipes / "train" / "config_item_ids.yaml"),
                str(recipes / "evaluation" / "config_item_ids.yaml"),
                folder, [seed], ["--indexing", scheme], train_overrides=[*init, *budget, *args.train_args],
            )["project"])  # fmt: skip
            minutes.setdefault(scheme, []).extend(training_minutes(folder, [seed]))
            cpu_minutes.setdefault(scheme, []).extend(training_cpu_minutes(folder, [seed]))
        results[scheme] = aggregate_seeds(runs)
    seeds_of = dict.fromkeys(results, args.seeds)
    for scheme, (result, scheme_minutes, seeds, scheme_cpu) in earlier_schemes(results_path(args), args.schemes).items():
        results[scheme], minutes[scheme], seeds_of[scheme] = result, scheme_minutes, seeds
        if scheme_cpu is not None:
            cpu_minutes[scheme] = scheme_cpu
    order = [scheme.value for scheme in ItemIndexing]
    results = {scheme: results[scheme] for scheme in sorted(results, key=order.index)}
    return report(args, results, minutes, seeds_of, cpu_minutes)


def budget_options(args: argparse.Namespace) -> list[str]:
    """The CPU budget as training options; config_item_ids.yaml then trains until the budget ends it."""
    if args.cpu_budget_minutes <= 0:
        return []
    steps = [] if args.train_config else ["--max_steps", "100000"]
    return ["--benchmark_cpu_minutes", f"{args.cpu_budget_minutes:g}", *steps]


def results_path(args: argparse.Namespace) -> Path:
    variant = f"_{args.variant}" if args.variant else ""
    return RESULTS_DIR / f"item_ids{dataset_suffix(args.dataset)}{variant}.json"


def report(args: argparse.Namespace, results: dict, minutes: dict, seeds_of: dict, cpu_minutes: dict) -> dict:
    users = next(num_examples(result, "sequential") for result in results.values())
    sasrec_path = args.sasrec or RESULTS_DIR / f"sasrec_item_ids{dataset_suffix(args.dataset)}.json"
    sasrec = sasrec_under_budget(sasrec_path, users, args.dataset)
    popularity = next(iter(results.values()))["sequential"]["popularity"]["ndcg@10"]
    popularity = popularity["mean"] if isinstance(popularity, dict) else popularity
    bar = BAR_FACTOR * popularity
    lines = [
        f"Item-id schemes, {args.dataset}, leak-free ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC); sequential "
        f"recommendation on a seeded sample of {users:,} test users (full ranking, history excluded); student "
        "rows: mean ± sample std over their seeds (the last column).",
        "",
        "| system | " + " | ".join(metric.upper() for metric in METRICS) + " | per-seed NDCG@10 |",
        "|---|" + "---:|" * (len(METRICS) + 1),
    ]
    verdicts = {}
    for scheme, result in results.items():
        per_seed = result["sequential"]["model"]["ndcg@10"].get("values", [])
        verdicts[scheme] = bool(per_seed) and min(per_seed) >= bar
        cells = " | ".join(metric_cell(result, "sequential", metric) for metric in METRICS)
        seeds = ", ".join(f"{v:.4f} (seed {seed})" for seed, v in zip(seeds_of[scheme], per_seed))
        lines.append(f"| student, {scheme} | {cells} | {seeds} |")
    first = next(iter(results.values()))
    for system, name in (("popularity", "popularity"), ("leak_rule", "leak rule")):
        cells = " | ".join(metric_cell(first, "sequential", metric, system) for metric in METRICS)
        lines.append(f"| {name} | {cells} | |")
    if sasrec is not None:
        metrics = sasrec["metrics"]["sasrec"]["sequential"]
        lines.append("| SASRec (same budget and users) | " + " | ".join(f"{metrics[m]:.4f}" for m in METRICS) + " | |")
    lines += ["", f"- Bar: NDCG@10 >= {BAR_FACTOR} x popularity = {bar:.4f} for every seed."]
    budget = f"a budget of {args.cpu_budget_minutes:g} CPU minutes" if args.cpu_budget_minutes > 0 else "no budget"
    lines += [f"- {scheme}: training wall minutes per seed ({budget}) " + ", ".join(f"{m:.1f}" for m in minutes[scheme])
              for scheme in results]
    if args.variant:
        lines.insert(1, f"Variant {args.variant!r}: training options {' '.join(args.train_args)}.")
    summary = {
        "dataset": args.dataset, "variant": args.variant, "train_config": str(args.train_config or ""),
        "train_args": [*budget_options(args), *args.train_args], "seeds": sorted({s for seeds in seeds_of.values() for s in seeds}),
        "seeds_of": seeds_of, "training_minutes": minutes, "training_cpu_minutes": cpu_minutes, "results": results, "bar_ndcg@10": bar,
        "bar_met": verdicts, "sasrec": None if sasrec is None else {
            "sequential": sasrec["metrics"]["sasrec"]["sequential"], "training": sasrec["sasrec"],
            "command": sasrec["command"]},
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = results_path(args)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return summary


if __name__ == "__main__":
    main(make_parser().parse_args())
