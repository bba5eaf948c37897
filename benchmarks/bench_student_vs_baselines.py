"""The student against the simple baselines, per dataset, on the same seeded test users: one results file.

Leak-free (items renumbered by the seeded permutation of `--data-seed`), sequential recommendation by full
ranking over the catalog with the history excluded, on the seeded sample of `--test-users` test users that
`bench_item_ids.py` (through recipes/<dataset>/evaluation/config_item_ids.yaml), `bench_quality.py
--test-users 5000` and `bench_item_starts.py` all evaluate. Transition item-kNN and popularity are computed here
by the library (`rdrec_hf.evaluation.baselines`, training histories only; seconds). The student's and SASRec's
figures are read from their results files (no retraining): the student's from a `bench_item_ids.py` results
file (`--student DATASET=FILE`), SASRec's from a `bench_quality.py` one (`--sasrec DATASET=FILE`). Both are
checked to be on the same users (their popularity row must equal the one computed here, to the last digit)
and within the CPU budget, and the JSON names the file each figure came from. The bar (``bar_met``): every
seed of `--bar-seeds` trained, each at or above item-kNN's NDCG@10.

Writes benchmarks/results/student_vs_baselines.json (entries of datasets not run now are kept):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_student_vs_baselines.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_student_vs_baselines.py --datasets beauty \\
        --student beauty=benchmarks/results/item_ids_<variant>.json
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

from rdrec_hf.data import load_p5_dataset, sample_users, split_target
from rdrec_hf.evaluation import ranking_metrics
from rdrec_hf.evaluation.baselines import Baseline, baseline_rankers
from rdrec_hf.paths import p5_dataset_dir
from report import recipe_results  # which results file is each recipe's: benchmarks/recipe_results.json, as the tables

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DATASETS = ("beauty", "sports")
SASREC_RESULTS = {"beauty": "sasrec_item_ids.json", "sports": "sasrec_item_ids_sports.json"}
SASREC_RUN = "{dataset}/random/cpu/seed0"  # bench_quality.py's key: dataset / indexing / device / seed
METRICS = ("ndcg@10", "hr@10")
TOP_K = 10


def dataset_files(text: str) -> tuple[str, Path]:
    """An argparse type: ``DATASET=FILE``."""
    dataset, _, path = text.partition("=")
    if dataset not in DATASETS or not path:
        raise argparse.ArgumentTypeError(f"expected DATASET=FILE with DATASET one of {list(DATASETS)}, got {text!r}")
    return dataset, Path(path)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--student", type=dataset_files, action="append", default=[], metavar="DATASET=FILE",
                        help="a bench_item_ids.py results file of the student (default: "
                        + ", ".join(f"{d}={recipe['results']}" for d, recipe in recipe_results().items())
                        + ", under results/: benchmarks/recipe_results.json)")
    parser.add_argument("--scheme", default="independent", help="the student's item-id scheme in that file")
    parser.add_argument("--bar-seeds", type=int, nargs="+", default=[42, 43],
                        help="training seeds the bar needs: each at or above item-kNN's NDCG@10 (issue 27)")
    parser.add_argument("--sasrec", type=dataset_files, action="append", default=[], metavar="DATASET=FILE",
                        help="a bench_quality.py results file holding SASRec under the same budget and users "
                        "(default: " + ", ".join(f"{d}={f}" for d, f in SASREC_RESULTS.items()) + ", under results/)")
    parser.add_argument("--test-users", type=int, default=5000, help="seeded sample of test users")
    parser.add_argument("--data-seed", type=int, default=0, help="item renumbering and user sample seed")
    parser.add_argument("--budget-cpu-minutes", type=int, default=30,
                        help="training budget every compared system must have kept to")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "student_vs_baselines.json")
    return parser


def check_same_users(popularity: dict, reference: dict, source: Path) -> None:
    """Popularity's figures of a results file must equal ours: same users, same items, same training part."""
    for metric in METRICS:
        if not math.isclose(popularity[metric], reference[metric], rel_tol=0, abs_tol=1e-12):
            raise SystemExit(f"{source}: popularity {metric} {popularity[metric]} differs from {reference[metric]} "
                             "computed here: not the same test users")


def read_student(path: Path, scheme: str, popularity: dict, users: int, budget: float) -> dict:
    """The student's per-seed figures from a bench_item_ids.py results file, checked."""
    summary = json.loads(path.read_text(encoding="utf-8"))
    if scheme not in summary["results"]:
        raise SystemExit(f"{path}: no scheme {scheme!r} (it has {sorted(summary['results'])}); pass --scheme")
    sequential = summary["results"][scheme]["sequential"]
    if sequential["num_examples"]["mean"] != users:
        raise SystemExit(f"{path}: {sequential['num_examples']['mean']:.0f} test users, not {users}")
    check_same_users({m: sequential["popularity"][m]["mean"] for m in METRICS}, popularity, path)
    # The students' budget is their process's CPU time (`benchmark_cpu_minutes`, formerly max_train_cpu_minutes,
    # which the trainer enforces); their wall minutes, recorded below, exceed it when other jobs share the cores.
    options = summary.get("train_args", [])
    for option in ("--benchmark_cpu_minutes", "--max_train_cpu_minutes"):
        if option in options and float(options[options.index(option) + 1]) > budget:
            raise SystemExit(f"{path}: trained with a CPU budget over {budget:g} minutes ({' '.join(options)})")
    minutes = summary["training_minutes"][scheme]
    cpu_minutes = summary.get("training_cpu_minutes", {}).get(scheme)
    if cpu_minutes and any(spent is not None and spent > budget for spent in cpu_minutes):
        raise SystemExit(f"{path}: a seed trained over the {budget:g}-CPU-minute budget ({cpu_minutes})")
    seeds = summary.get("seeds_of", {}).get(scheme, summary["seeds"])
    return {"seeds": seeds, **{m: sequential["model"][m]["values"] for m in METRICS},
            "training_minutes": minutes, "training_cpu_minutes": cpu_minutes, "source": relative(path)}  # fmt: skip


def read_sasrec(path: Path, dataset: str, popularity: dict, users: int, data_seed: int, budget: float) -> dict:
    """SASRec's figures from a bench_quality.py results file, checked."""
    run = json.loads(path.read_text(encoding="utf-8"))["runs"].get(SASREC_RUN.format(dataset=dataset))
    if run is None or run["test_users"] != users or run["data_seed"] != data_seed:
        raise SystemExit(f"{path}: no SASRec run {SASREC_RUN.format(dataset=dataset)} on {users} users (data seed "
                         f"{data_seed})")
    check_same_users(run["metrics"]["popularity"]["sequential"], popularity, path)
    training = run["sasrec"]
    if training["train_seconds"] > budget * 60:
        raise SystemExit(f"{path}: SASRec trained {training['train_seconds'] / 60:.1f} minutes, over the budget")
    figures = run["metrics"]["sasrec"]["sequential"]
    return {**{m: figures[m] for m in METRICS}, "training_minutes": round(training["train_seconds"] / 60, 1),
            "stop_reason": training["stop_reason"], "source": relative(path)}  # fmt: skip


def relative(path: Path) -> str:
    """A results file named from the checkout's root when it lies inside it."""
    path, root = path.resolve(), RESULTS_DIR.parents[1]
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def compare(dataset: str, args: argparse.Namespace) -> dict:
    data = load_p5_dataset(p5_dataset_dir(dataset), indexing="random", seed=args.data_seed)
    users = data["users"]
    kept = set(sample_users(users["user_id"], args.test_users, args.data_seed))
    tests = [split_target(items, "test") for user, items in zip(users["user_id"], users["items"]) if user in kept]
    histories, targets = [history for history, _ in tests], [target for _, target in tests]
    rankers, _ = baseline_rankers(data, [Baseline.POPULARITY, Baseline.ITEM_KNN])
    baselines = {name: ranking_metrics(ranker(histories, TOP_K), targets) for name, ranker in rankers.items()}
    popularity = baselines[Baseline.POPULARITY.value]
    student_file = dict(args.student).get(dataset, RESULTS_DIR / recipe_results()[dataset]["results"])
    sasrec_file = dict(args.sasrec).get(dataset, RESULTS_DIR / SASREC_RESULTS[dataset])
    student = read_student(student_file, args.scheme, popularity, len(targets), args.budget_cpu_minutes)
    item_knn = baselines[Baseline.ITEM_KNN.value]
    return {
        "users": len(targets),
        "budget_cpu_minutes": args.budget_cpu_minutes,
        "protocol": f"leak-free (items renumbered at random, seed {args.data_seed}); sequential recommendation, full "
        f"ranking over the {data['items'].num_rows:,}-item catalog with the history excluded; a seeded sample "
        f"(seed {args.data_seed}) of {len(targets):,} test users; baselines from the training histories only",
        "student": student,
        "item_knn": {m: item_knn[m] for m in METRICS},
        "sasrec": read_sasrec(sasrec_file, dataset, popularity, len(targets), args.data_seed, args.budget_cpu_minutes),
        "popularity": {m: popularity[m] for m in METRICS},
        "bar_seeds": args.bar_seeds,
        "bar_met": set(args.bar_seeds) <= set(student["seeds"])
        and all(value >= item_knn["ndcg@10"] for value in student["ndcg@10"]),
        "command": f"{Path(sys.executable).name} {shlex.join(sys.argv)}",
    }


def main(args: argparse.Namespace) -> dict:
    if args.test_users < 1:
        raise SystemExit(f"--test-users must be at least 1, got {args.test_users}")
    for dataset, path in [*args.student, *args.sasrec]:
        if not path.is_file():
            raise SystemExit(f"{dataset}={path}: no such results file")
    results = json.loads(args.output.read_text(encoding="utf-8")) if args.output.is_file() else {}
    for dataset in args.datasets:
        results[dataset] = compare(dataset, args)
        entry = results[dataset]
        print(f"{dataset}: student NDCG@10 {', '.join(f'{v:.4f}' for v in entry['student']['ndcg@10'])} "
              f"(seeds {entry['student']['seeds']}); item-kNN {entry['item_knn']['ndcg@10']:.4f}; SASRec "
              f"{entry['sasrec']['ndcg@10']:.4f}; popularity {entry['popularity']['ndcg@10']:.4f}; bar met: "
              f"{entry['bar_met']}")  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({d: results[d] for d in DATASETS if d in results}, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main(make_parser().parse_args())
