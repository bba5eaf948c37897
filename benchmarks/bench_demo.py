"""`make demo` from scratch, timed: its wall minutes and what its report measured, for the README's demo table.

Removes runs/demo (unless --keep-teacher, which keeps the distilled rationales as a second `make demo` would),
runs `make demo`, and writes benchmarks/results/demo.json: the wall minutes of the whole command, the student's and
the baselines' ranking metrics on every test user, and the student's text metrics, read from runs/demo/metrics.json.

    .venv/bin/python benchmarks/bench_demo.py     # on an otherwise idle machine: the time is the bar's
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

DEMO_DIR = Path("runs/demo")  # run from the repository root, as `make demo`
RESULTS_FILE = Path(__file__).parent / "results" / "demo.json"
RANKING = ("sequential", "topn")
TEXT = ("explanation", "rationale")


def summary(metrics: dict) -> dict:
    """The report's figures: every system's HR@10 / NDCG@10 on the ranking tasks, the student's text metrics."""
    ranking = {
        task: {"users": metrics[task]["num_examples"],
               **{system: {name: values[name] for name in ("hr@1", "hr@10", "ndcg@10")}
                  for system, values in metrics[task].items() if isinstance(values, dict) and "ndcg@10" in values}}
        for task in RANKING
    }
    text = {task: {"examples": metrics[task]["num_examples"],
                   **{name: metrics[task]["model"][name]
                      for name in ("bleu-4", "rouge-l", "distinct_share", "looping_share")}}
            for task in TEXT if "model" in metrics.get(task, {})}
    return {"ranking": ranking, "text": text}


def main(options: argparse.Namespace) -> None:
    if not options.keep_teacher:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(["make", "demo"], check=True, env=os.environ)
    minutes = (time.perf_counter() - started) / 60
    metrics = json.loads((DEMO_DIR / "metrics.json").read_text(encoding="utf-8"))
    training = json.loads((DEMO_DIR / "model" / "train_results.json").read_text(encoding="utf-8"))
    result = {
        "measured": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "machine": f"{os.cpu_count()} CPU cores, torch threads {os.environ.get('OMP_NUM_THREADS', 'one per core')}, "
                   f"{options.load}",
        "teacher_cached": options.keep_teacher,
        "wall_minutes": minutes,
        "train_minutes": (training["train_runtime"] + training.get("item_start_runtime", 0.0)) / 60,
        **summary(metrics),
    }
    RESULTS_FILE.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-teacher", action="store_true", help="keep runs/demo's distilled rationales")
    parser.add_argument("--load", default="nothing else running", help="what else ran on the machine (recorded)")
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_args())
