"""What the item-embedding starts know before any training: rankings from the item factors alone, on the users
of the item-id benchmark.

Each system scores every catalog item by one product with the user's last history item and ranks all of them,
the history excluded (this project's leak-free protocol, P5 beauty renumbered by `--data-seed`, the seeded
sample of `--test-users` test users that `bench_item_ids.py` and `bench_quality.py` evaluate):

- `svd start`: the dot product of the `item_embedding_init: svd` factors (`svd_item_embeddings`, `--dim`);
- `transitions start`: the same with the `item_embedding_init: transitions` factors
  (`spectral_item_embeddings` of `transition_graph`), at the library's window and at each of `--windows`;
- `transition item-kNN`: the last item's row of `transition_graph` itself (counts of the training pairs
  at most `TRANSITION_WINDOW` positions apart), ties by popularity: the full-rank graph the start compresses
  (the evaluation's `item_knn` baseline, `rdrec_hf.evaluation.baselines.TransitionItemKNN`);
- `popularity`, as in the evaluation.

Every graph and factor reads the training histories only (each user's last two items dropped). Writes
benchmarks/results/item_starts.{json,md}:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_item_starts.py
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from rdrec_hf.data import load_p5_dataset, sample_users, training_history
from rdrec_hf.data.item_graph import (
    TRANSITION_WINDOW,
    spectral_item_embeddings,
    svd_item_embeddings,
    transition_graph,
)
from rdrec_hf.evaluation import item_popularity, ranking_metrics
from rdrec_hf.evaluation.baselines import TransitionItemKNN
from rdrec_hf.paths import p5_dataset_dir

RESULTS = Path(__file__).parent / "results" / "item_starts.json"
METRICS = ("hr@5", "ndcg@5", "hr@10", "ndcg@10")
TOP_K = 10


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="beauty", help="P5 data folder under the shared data")
    parser.add_argument("--data-seed", type=int, default=0, help="item renumbering and user sample seed")
    parser.add_argument("--test-users", type=int, default=5000, help="seeded sample of test users")
    parser.add_argument("--dim", type=int, default=64, help="factors of the starts (the student's d_model)")
    parser.add_argument("--windows", type=int, nargs="*", default=[1, 2, 5],
                        help="other windows of the transitions start to compare with TRANSITION_WINDOW")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON (a .md table beside it)")
    return parser


def top_items(scores: np.ndarray, history: list[int], k: int = TOP_K) -> list[int]:
    """The ``k`` best-scored item positions outside ``history``, best first."""
    scores = scores.astype(np.float64, copy=True)
    scores[history] = -np.inf
    best = np.argpartition(-scores, k)[:k]
    return best[np.argsort(-scores[best], kind="stable")].tolist()


def main(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    data = load_p5_dataset(p5_dataset_dir(args.dataset), indexing="random", seed=args.data_seed)
    item_ids = list(data["items"]["item_id"])
    position = {item: p for p, item in enumerate(item_ids)}
    sequences = [[position[item] for item in items] for items in data["users"]["items"]]
    training = [training_history(items) for items in sequences]
    kept = set(sample_users(list(data["users"]["user_id"]), args.test_users, args.data_seed))
    test_users = [u for u, user in enumerate(data["users"]["user_id"]) if user in kept]

    graph = transition_graph(training, len(item_ids))
    starts = {
        "svd start": svd_item_embeddings(training, len(item_ids), args.dim, args.data_seed),
        "transitions start": spectral_item_embeddings(graph, args.dim, args.data_seed),
        **{f"transitions start, window {window}": spectral_item_embeddings(
            transition_graph(training, len(item_ids), window), args.dim, args.data_seed)
           for window in args.windows if window != TRANSITION_WINDOW},
    }  # fmt: skip
    popular = item_popularity(([item_ids[p] for p in items] for items in training), len(item_ids))
    popularity = np.zeros(len(item_ids))
    popularity[[position[item] for item in popular]] = np.arange(len(popular), 0, -1)  # best = highest
    scorers = {
        "popularity": lambda last: popularity,
        **{name: (lambda last, factors=factors: factors @ factors[last]) for name, factors in starts.items()},
    }
    targets = [sequences[u][-1] for u in test_users]
    metrics = {}
    for name, score in scorers.items():
        rankings = [top_items(score(sequences[u][-2]), sequences[u][:-1])
                    for u in tqdm(test_users, desc=name, leave=False)]  # fmt: skip
        metrics[name] = ranking_metrics(rankings, targets)
    user_items = list(data["users"]["items"])
    item_knn = TransitionItemKNN([training_history(items) for items in user_items], len(item_ids))
    rankings = item_knn([user_items[u][:-1] for u in test_users], TOP_K)
    metrics["transition item-kNN"] = ranking_metrics([[position[item] for item in r] for r in rankings], targets)
    summary = {
        "dataset": args.dataset, "data_seed": args.data_seed, "test_users": len(test_users), "dim": args.dim,
        "transition_window": TRANSITION_WINDOW, "metrics": metrics,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"{Path(sys.executable).name} {shlex.join(sys.argv)}",
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    lines = [
        f"Item-embedding starts before training, {args.dataset}, leak-free, {len(test_users):,} sampled test users "
        f"(full ranking, history excluded; scores from the last history item; {args.dim} factors, window "
        f"{TRANSITION_WINDOW}; {summary['date']}).",
        "",
        "| system | " + " | ".join(metric.upper() for metric in METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
        *(f"| {name} | " + " | ".join(f"{values[m]:.4f}" for m in METRICS) + " |" for name, values in metrics.items()),
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    args.output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return summary


if __name__ == "__main__":
    main(make_parser().parse_args())
