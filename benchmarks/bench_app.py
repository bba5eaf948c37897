"""How fast the app opens and answers, on the demo model (`make demo` first).

Start-up: wall seconds from launching `rdrec-hf app` to the first HTTP 200 on 127.0.0.1 (imports, model and
dataset loading, Gradio), median of ``--starts`` launches. Latency: one "Recommend" with explanations and
rationales (k=10) through the running server's API (`gradio_client`), median over ``--users`` seeded users;
the in-process page call beside it. Writes ``benchmarks/results/app.json``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_app.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "app.json"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/demo/model")
    parser.add_argument("--dataset", default="runs/demo/rationales")
    parser.add_argument("--starts", type=int, default=3, help="app launches to time")
    parser.add_argument("--users", type=int, default=10, help="recommendations to time")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(model: str, dataset: str) -> tuple[subprocess.Popen, int, float]:
    port = free_port()
    command = [str(Path(sys.executable).with_name("rdrec-hf")), "app", "--model_name_or_path", model, "--dataset", dataset,
               "--port", str(port)]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the app exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                return process, port, time.perf_counter() - started
        except OSError:
            time.sleep(0.2)


def main(args: argparse.Namespace) -> dict:
    from gradio_client import Client
    from tqdm.auto import tqdm

    from rdrec_hf.serving.app import RecommenderPage
    from rdrec_hf.data import load_rec_dataset
    from rdrec_hf.checkpoints import load_trained_student

    startups = []
    for _ in tqdm(range(args.starts), desc="app launches"):
        process, port, seconds = launch(args.model, args.dataset)
        startups.append(seconds)
        process.terminate()
        process.wait()
    users = random.Random(args.seed).sample(load_rec_dataset(args.dataset)["users"]["user_id"], args.users)
    process, port, _ = launch(args.model, args.dataset)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        served = []
        for user in tqdm(users, desc="recommend through the server"):
            started = time.perf_counter()
            status = client.predict(user, "", args.k, True, True, api_name="/on_recommend")[0]
            served.append(time.perf_counter() - started)
            assert status.startswith(f"Top {args.k} for user {user}"), status
    finally:
        process.terminate()
        process.wait()
    page = RecommenderPage(*load_trained_student(args.model), load_rec_dataset(args.dataset), args.model)
    in_process = []
    for user in users:
        started = time.perf_counter()
        page.recommend(user, "", args.k, explain=True, hold_out=True)
        in_process.append(time.perf_counter() - started)
    result = {
        "model": args.model,
        "dataset": args.dataset,
        "k": args.k,
        "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "startup_s": startups,
        "startup_median_s": statistics.median(startups),
        "recommend_with_explanations_served_s": served,
        "recommend_with_explanations_served_median_s": statistics.median(served),
        "recommend_with_explanations_in_process_median_s": statistics.median(in_process),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"start-up median {result['startup_median_s']:.1f} s over {args.starts} launches; one recommendation "
          f"with explanations (k={args.k}): {result['recommend_with_explanations_served_median_s']:.2f} s through the "
          f"server, {result['recommend_with_explanations_in_process_median_s']:.2f} s in process (medians of "
          f"{args.users} users)")  # fmt: skip
    return result


if __name__ == "__main__":
    main(make_parser().parse_args())
