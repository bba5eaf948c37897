"""Collaborative item ids at catalog scale: wall time and peak memory of `cooccurrence_graph` +
`collaborative_codes` (Hua et al. 2023; N clusters per level, clusters over k items split again).

Cases: the P5 beauty and sports training histories (each user's last two items dropped) and a seeded synthetic
catalog (Zipf item popularity, 1 / rank; each user draws ``--items-per-user`` items, duplicates counted once).
Each case runs in its own spawned process (``isolation.run_isolated``), so its peak resident memory (inputs,
graph and clustering together) is its own. Writes benchmarks/results/collaborative_ids.json:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/bench_collaborative_ids.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_collaborative_ids.py --cases synthetic --synthetic-users 100000

A code's depth is its length: the cluster labels from the root down plus the rank inside the leaf.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from isolation import peak_rss_mib, run_isolated

from rdrec_hf.data.item_graph import collaborative_codes, cooccurrence_graph
from rdrec_hf.paths import p5_dataset_dir

RESULTS_DIR = Path(__file__).parent / "results"
CASES = ("beauty", "sports", "synthetic")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--num-clusters", type=int, default=20, help="N: clusters per level")
    parser.add_argument("--max-cluster-size", type=int, default=500, help="k: a larger cluster is split again")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clustering and of the synthetic users")
    parser.add_argument("--synthetic-items", type=int, default=200_000)
    parser.add_argument("--synthetic-users", type=int, default=400_000)
    parser.add_argument("--items-per-user", type=int, default=8, help="synthetic draws per user")
    return parser


def p5_training_histories(dataset: str) -> tuple[list[list[int]], int]:
    """0-based training items of every user of a P5 split (``user item1 item2 ...``, 1-based) and the catalog size."""
    sequences = [
        [int(item) - 1 for item in line.split()[1:]]
        for line in (p5_dataset_dir(dataset) / "sequential.txt").read_text().splitlines()
    ]
    return [items[:-2] for items in sequences], max(map(max, sequences)) + 1


def synthetic_histories(num_items: int, num_users: int, per_user: int, seed: int) -> list[list[int]]:
    """``num_users`` histories of ``per_user`` seeded draws from Zipf (1 / rank) item popularity, each item once."""
    popularity = 1.0 / np.arange(1, num_items + 1)
    draws = np.random.default_rng(seed).choice(num_items, size=(num_users, per_user), p=popularity / popularity.sum())
    return [sorted(set(row)) for row in draws.tolist()]


def measure(case: str, args: argparse.Namespace) -> dict:
    """One case, in its own process: the graph and the codes, timed; their statistics."""
    if case == "synthetic":
        num_items = args.synthetic_items
        histories = synthetic_histories(num_items, args.synthetic_users, args.items_per_user, args.seed)
    else:
        histories, num_items = p5_training_histories(case)
    inputs_mib = peak_rss_mib()
    started = time.perf_counter()
    graph = cooccurrence_graph(histories, num_items)
    graph_seconds = time.perf_counter() - started
    codes = collaborative_codes(graph, args.num_clusters, args.max_cluster_size, args.seed)
    seconds = time.perf_counter() - started
    assert len({tuple(code) for code in codes}) == num_items, "collaborative codes must be unique"
    leaves = Counter(tuple(code[:-1]) for code in codes)
    return {
        "items": num_items,
        "users": len(histories),
        "interactions": sum(map(len, histories)),
        "edges": graph.nnz // 2,
        "isolated_items": int((graph.getnnz(axis=1) == 0).sum()),
        "graph_seconds": round(graph_seconds, 2),
        "seconds": round(seconds, 2),
        "depth_histogram": {depth: count for depth, count in sorted(Counter(map(len, codes)).items())},
        "leaves": len(leaves),
        "largest_leaf": max(leaves.values()),
        "inputs_peak_mib": round(inputs_mib, 1),
    }


def main(args: argparse.Namespace) -> dict:
    load_before = os.getloadavg()[0]
    results = {}
    for case in args.cases:
        results[case] = run_isolated(measure, case, args)
        results[case]["peak_mib"] = round(results[case].pop("peak_rss_mib"), 1)
        print(f"{case}: {json.dumps(results[case])}", flush=True)
    summary = {
        "created": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "command": " ".join(
            [f"{name}={os.environ[name]}" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
             if name in os.environ] + [".venv/bin/python", *sys.argv]
        ),  # fmt: skip
        "options": vars(args),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average "
                   f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other processes share the cores)",
        "seconds": "cooccurrence_graph + collaborative_codes; peak_mib: the case's process (inputs included, "
                   "inputs_peak_mib before the graph)",
        "results": results,
    }  # fmt: skip
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "collaborative_ids.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main(make_parser().parse_args())
