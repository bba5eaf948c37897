"""Throughput and latency of `rdrec-hf serve` (LitServe) with dynamic batching on and off, side by side.

Starts the server in its own process on 127.0.0.1 twice (``--max_batch_size`` N, then 1), sends the same
bounded load at each concurrency (``--requests`` POST /predict made from real test users: ``user_id`` and the
history before the test item, ``k`` items), from that many client threads, and measures requests/s, p50/p95/p99
latency (client-side, per request) and errors (any status but 200). The served top-k of the first ``--check``
requests is compared with the in-process `EndpointHandler`'s in every run: the same items in the same order;
scores may differ by float rounding of a padded batch (``--score_tolerance``), so orders that differ are counted
and the largest score difference is reported. Writes ``benchmarks/results/serving.json``.

The issue's model is the beauty catalog recipe's student (recipes/beauty/train/config_item_ids_catalog.yaml,
12,101 items), trained off this machine: pass its folder with ``--model_name_or_path`` (default: the newest
``runs/beauty/item-ids/*/independent/run-*`` when one exists) and its dataset with ``--dataset``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_serving.py --model_name_or_path runs/beauty/item-ids/catalog/independent/run-0 --dataset beauty
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "serving.json"
CATALOG_RUNS = "runs/beauty/item-ids/*/independent/run-*"


def default_model() -> str | None:
    runs = sorted(Path().glob(CATALOG_RUNS), key=lambda path: path.stat().st_mtime)
    return str(runs[-1]) if runs else None


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name_or_path", default=default_model(),
                        help=f"the student served (default: the newest {CATALOG_RUNS}, if any)")
    parser.add_argument("--dataset", default="beauty", help="the users the requests come from (name or folder)")
    parser.add_argument("--requests", type=int, default=512, help="requests per concurrency level and mode")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64], help="client threads")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--max_batch_size", type=int, default=32, help="the batched server's --max_batch_size")
    parser.add_argument("--batch_timeout", type=float, default=0.01, help="the batched server's --batch_timeout")
    parser.add_argument("--device", default=None, help="--device of the server and of the handler's check")
    parser.add_argument("--check", type=int, default=200, help="requests compared with the in-process handler")
    parser.add_argument("--score_tolerance", type=float, default=1e-4, help="scores closer than this are equal")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled users")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser


def load_requests(dataset: str, model_name_or_path: str, count: int, k: int, seed: int) -> list[dict]:
    """``count`` requests of seeded test users (repeated when the dataset has fewer): the user's id and items
    before its test item, oldest first; the dataset's numbering checked against the model's."""
    from rdrec_hf.data import check_numbering
    from rdrec_hf.data.loading import DataArguments, load_training_data
    from rdrec_hf.models import ITEM_INDEX_FILE, ItemIndex

    data = load_training_data(DataArguments(dataset=dataset))
    check_numbering(ItemIndex.load(Path(model_name_or_path) / ITEM_INDEX_FILE), data, model_name_or_path, dataset)
    users = [row for row in data["users"] if len(row["items"]) >= 2]
    rng = random.Random(seed)
    chosen = rng.sample(users, min(count, len(users)))
    chosen = [chosen[i % len(chosen)] for i in range(count)]
    return [{"inputs": {"user_id": row["user_id"], "history": row["items"][:-1], "k": k}} for row in chosen]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def send_load(url: str, requests: list[dict], concurrency: int, desc: str) -> tuple[dict, list]:
    """Every request from ``concurrency`` client threads: the figures and the answers, in request order."""
    from tqdm.auto import tqdm

    from rdrec_hf.serving.server import post_json

    bar = tqdm(total=len(requests), desc=desc, unit="req", leave=False)

    def one(request):
        started = time.perf_counter()
        status, answer = post_json(url + "/predict", request, timeout=120)
        bar.update(1)
        return status, answer, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, requests[:concurrency]))  # warm-up: connections, first forwards
        bar.reset()
        started = time.perf_counter()
        results = list(pool.map(one, requests))
        seconds = time.perf_counter() - started
    bar.close()
    latencies = [latency * 1000 for _, _, latency in results]
    figures = {
        "req_per_s": round(len(requests) / seconds, 2),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "errors": sum(status != 200 for status, _, _ in results),
    }
    return figures, [answer if status == 200 else None for status, answer, _ in results]


def compare(served: list[list], expected: list[dict], tolerance: float) -> dict:
    """How many requests got the handler's items in the handler's order in every run; of the others, how many
    hold the same items with scores within ``tolerance`` of the handler's (an order changed by float rounding)."""
    equal = order_within_tolerance = 0
    largest = 0.0
    for i, wanted in enumerate(expected):
        wanted_scores = {r["item_id"]: r["score"] for r in wanted["recommendations"]}
        same = same_items = True
        difference = 0.0
        for run in served:
            answer = run[i]
            items = [r["item_id"] for r in answer["recommendations"]] if answer else []
            same &= items == list(wanted_scores)
            same_items &= answer is not None and set(items) == set(wanted_scores)
            if same_items:
                difference = max([difference] + [abs(r["score"] - wanted_scores[r["item_id"]])
                                                 for r in answer["recommendations"]])  # fmt: skip
        largest = max(largest, difference) if same_items else largest
        equal += same
        order_within_tolerance += not same and same_items and difference <= tolerance
    return {"checked": len(expected), "equal": equal, "order_differs_within_tolerance": order_within_tolerance,
            "score_tolerance": tolerance, "max_abs_score_difference": largest}  # fmt: skip


def main(args: argparse.Namespace) -> dict:
    from tqdm.auto import tqdm

    from rdrec_hf.serving.handler import EndpointHandler
    from rdrec_hf.serving.server import serving

    if args.model_name_or_path is None:
        raise SystemExit(f"no student under {CATALOG_RUNS}: pass --model_name_or_path (the beauty catalog recipe's "
                         "student, recipes/beauty/train/config_item_ids_catalog.yaml)")  # fmt: skip
    load_before = os.getloadavg()
    requests = load_requests(args.dataset, args.model_name_or_path, args.requests, args.k, args.seed)
    modes = {"batched": args.max_batch_size, "unbatched": 1}
    device = ["--device", args.device] if args.device else []
    results: dict[str, dict] = {str(c): {} for c in args.concurrency}
    served: list[list] = []
    for mode, batch_size in modes.items():
        options = [*device, "--max_batch_size", str(batch_size), "--batch_timeout", str(args.batch_timeout)]
        with serving(args.model_name_or_path, *options) as url:
            for concurrency in args.concurrency:
                figures, answers = send_load(url, requests, concurrency, f"{mode}, {concurrency} clients")
                results[str(concurrency)][mode] = figures
                served.append(answers[: args.check])
                print(f"{mode:>9}, {concurrency:>3} clients: {figures}", flush=True)
    handler = EndpointHandler(args.model_name_or_path)
    expected = [handler(request) for request in tqdm(requests[: args.check], desc="in-process handler")]
    identical = compare(served, expected, args.score_tolerance)
    load_after = os.getloadavg()
    report = {
        "model": args.model_name_or_path,
        "dataset": args.dataset,
        "requests": args.requests,
        "k": args.k,
        "max_batch_size": args.max_batch_size,
        "batch_timeout_s": args.batch_timeout,
        "concurrency": results,
        "identical_to_handler": identical,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average "
                   f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (client threads share the machine)",
        "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'clients':>8} {'mode':>10} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for concurrency, by_mode in results.items():
        for mode, f in by_mode.items():
            print(f"{concurrency:>8} {mode:>10} {f['req_per_s']:>8} {f['p50_ms']:>8} {f['p95_ms']:>8} "
                  f"{f['p99_ms']:>8} {f['errors']:>7}")  # fmt: skip
    print(f"same top-{args.k} as the in-process handler in every run: {identical['equal']} of {identical['checked']} "
          f"(largest score difference {identical['max_abs_score_difference']:.2e}); {report['machine']}")
    print(f"written to {args.output}")
    return report


if __name__ == "__main__":
    main(make_parser().parse_args())
