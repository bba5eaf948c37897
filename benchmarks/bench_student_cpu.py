"""The student under a fixed CPU budget on P5 beauty / sports, both item indexings, several seeds.

For each (dataset, indexing): recipes/<dataset>/train/config_cpu.yaml (the budget: `mini` preset, 600 steps of
batch 16, sequential + top-N) trained once per seed, then recipes/<dataset>/evaluation/config_cpu.yaml (a
seeded sample of 2,000 test users, popularity and the leak rule on the same users), through the programs of
`rdrec-hf train --seeds` / `rdrec-hf evaluate --seeds` (`seeded_runs.train_and_evaluate`). Runs go to
runs/<dataset>/cpu (random indexing) and runs/<dataset>/cpu-sequential; an evaluated folder is read back, so
the command resumes. Writes benchmarks/results/student_cpu.{json,md}:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_student_cpu.py                 # all four, seeds 42 43 44
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_student_cpu.py --runs beauty:random --seeds 42
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from seeded_runs import metric_cell, num_examples, train_and_evaluate, training_minutes

RESULTS_DIR = Path(__file__).parent / "results"
RECIPES = Path("recipes")  # run from the repository root, like the runs/ paths
METRICS = ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10")
TASKS = {"sequential": "sequential (full ranking, history excluded)", "topn": "top-N (1 + 99 stored negatives)"}
SYSTEMS = {"model": "RDRec student, CPU budget", "popularity": "popularity", "leak_rule": "leak rule"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", nargs="+", default=["beauty:random", "beauty:sequential", "sports:random", "sports:sequential"],
        help="dataset:indexing pairs, in table order",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="training seeds of every run")
    return parser.parse_args()


def run_folder(dataset: str, indexing: str) -> Path:
    return Path("runs") / dataset / ("cpu" if indexing == "random" else f"cpu-{indexing}")


def main() -> None:
    options = parse_args()
    results, minutes = {}, {}
    for run in options.runs:
        dataset, indexing = run.split(":")
        folder = run_folder(dataset, indexing)
        results[run] = train_and_evaluate(
            str(RECIPES / dataset / "train" / "config_cpu.yaml"), str(RECIPES / dataset / "evaluation" / "config_cpu.yaml"),
            folder, options.seeds, ["--indexing", indexing],
        )["project"]
        minutes[run] = training_minutes(folder, options.seeds)

    lines = [
        f"Student under a CPU budget ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC); model rows: mean ± sample std "
        f"over seeds {', '.join(map(str, options.seeds))}; baselines on the same sampled users.",
        "",
        "| dataset | indexing | task | system | " + " | ".join(metric.upper() for metric in METRICS) + " |",
        "|---|---|---|---|" + "---:|" * len(METRICS),
    ]
    for run, result in results.items():
        dataset, indexing = run.split(":")
        for task, task_name in TASKS.items():
            for system, system_name in SYSTEMS.items():
                cells = " | ".join(metric_cell(result, task, metric, system) for metric in METRICS)
                lines.append(f"| {dataset} | {indexing} | {task_name} | {system_name} | {cells} |")
    lines.append("")
    for run, result in results.items():
        users = num_examples(result, "sequential")
        lines.append(
            f"- {run}: {users:,} test users; training minutes per seed "
            + ", ".join(f"{value:.1f}" for value in minutes[run])
        )
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "student_cpu.json").write_text(
        json.dumps({"seeds": options.seeds, "training_minutes": minutes, "results": results}, indent=2) + "\n"
    )
    (RESULTS_DIR / "student_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
