"""Time and peak memory of collaborative item ids: the sparse co-occurrence graph of the training
interactions plus the hierarchical spectral clustering (`rdrec_hf.data.item_graph`), per catalog.

Each case runs in its own spawned process (`isolation.run_isolated`), so its peak resident memory is its own.
Cases: P5 beauty and sports (training parts: each user's last two items dropped) and a seeded synthetic
catalog (power-law item popularity). Writes benchmarks/results/collaborative_ids.json:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_collaborative_ids.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_collaborative_ids.py --cases beauty --synthetic-items 200000
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
from isolation import run_isolated

RESULTS_DIR = Path(__file__).parent / "results"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=["beauty", "sports", "synthetic"],
                        choices=["beauty", "sports", "synthetic"])  # fmt: skip
    parser.add_argument("--num-clusters", type=int, default=20)
    parser.add_argument("--max-cluster-size", type=int, default=500)
    parser.add_argument("--synthetic-items", type=int, default=200_000)
    parser.add_argument("--synthetic-users", type=int, default=400_000)
    parser.add_argument("--items-per-user", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def p5_histories(dataset: str) -> tuple[list[list[int]], int]:
    """Training parts of the P5 sequences (0-based source item numbers) and the catalog size."""
    from rdrec_hf.paths import p5_dataset_dir

    histories, num_items = [], 0
    for line in (p5_dataset_dir(dataset) / "sequential.txt").read_text().splitlines():
        items = [int(item) - 1 for item in line.split()[1:]]
        num_items = max(num_items, *items) + 1 if items else num_items
        histories.append(items[:-2])
    return histories, num_items


def synthetic_histories(num_items: int, num_users: int, per_user: int, seed: int) -> list[list[int]]:
    """Seeded users with `per_user` distinct items each, drawn with Zipf-like (1 / rank) item popularity."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, num_items + 1)
    draws = rng.choice(num_items, size=(num_users, per_user), p=weights / weights.sum())
    return [sorted(set(row)) for row in draws.tolist()]


def measure(case: str, options: dict) -> dict:
    from rdrec_hf.data.item_graph import collaborative_codes, cooccurrence_graph

    if case == "synthetic":
        num_items = options["synthetic_items"]
        histories = synthetic_histories(num_items, options["synthetic_users"], options["items_per_user"],
                                        options["seed"])  # fmt: skip
    else:
        histories, num_items = p5_histories(case)
    started = time.perf_counter()
    graph = cooccurrence_graph(histories, num_items)
    graph_seconds = time.perf_counter() - started
    codes = collaborative_codes(graph, options["num_clusters"], options["max_cluster_size"], options["seed"])
    leaves = Counter(tuple(code[:-1]) for code in codes)
    return {
        "items": num_items,
        "users": len(histories),
        "edges": int(graph.nnz // 2),
        "graph_seconds": graph_seconds,
        "total_seconds": time.perf_counter() - started,
        "depth_histogram": {str(depth): count for depth, count in sorted(Counter(map(len, codes)).items())},
        "largest_leaf": max(leaves.values()),
        "unique_codes": len({tuple(code) for code in codes}) == len(codes),
    }


def main(args: argparse.Namespace) -> dict:
    options = vars(args)
    results = {}
    for case in args.cases:
        results[case] = run_isolated(measure, case, options)
        print(case, json.dumps(results[case]))
    RESULTS_DIR.mkdir(exist_ok=True)
    payload = {"options": options, "results": results}
    (RESULTS_DIR / "collaborative_ids.json").write_text(json.dumps(payload, indent=2) + "\n")
    return payload


if __name__ == "__main__":
    main(make_parser().parse_args())
