"""Batch recommendation over processes: `rdrec-hf recommend --users all` in one process, then under
`accelerate launch --num_processes N` (CPU processes, the multi_cpu config), one torch thread each.

Each run writes every user's top-k to a JSON-lines file; the files must be identical (the same lines in the
same order). ``users_per_s`` is the ranking rate the command reports (the users over the wall seconds from the
first ranked batch to the merged file); ``wall_s`` and ``end_to_end_users_per_s`` include each process's start
(imports, the dataset, the model). Writes ``benchmarks/results/batch_recommend.json``:
``{"users": n, "processes": {"1": {"users_per_s", "wall_s", "end_to_end_users_per_s"}, "2": {...}}, "identical": true}``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_batch_recommend.py --model_name_or_path <a beauty student> \\
        --dataset beauty
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "batch_recommend.json"
MULTI_CPU_CONFIG = "recipes/accelerate_configs/multi_cpu.yaml"
RANKED = re.compile(r"new in ([0-9.]+) s")  # the command's summary line (`RecommendationSummary`)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name_or_path", required=True, help="a trained student folder")
    parser.add_argument("--dataset", default="beauty", help="the users ranked (a name or a project dataset folder)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts, 1 first")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="runs per process count, 1 and N alternating; medians")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser


def recommend_command(args: argparse.Namespace, processes: int, output: Path) -> list[str]:
    options = ["recommend", "--model_name_or_path", args.model_name_or_path, "--dataset", args.dataset, "--users", "all",
               "--k", str(args.k), "--batch_size", str(args.batch_size), "--device", "cpu", "--output", str(output)]
    if processes == 1:
        return [sys.executable, "-m", "rdrec_hf.cli", *options]
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    return [accelerate, "launch", "--config_file", MULTI_CPU_CONFIG, "--num_processes", str(processes),
            "-m", "rdrec_hf.cli", *options]


def main(args: argparse.Namespace) -> dict:
    if args.processes[0] != 1:
        raise SystemExit("--processes must start with 1: the other runs are compared with the one-process file")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    timings, files, identical = {n: [] for n in args.processes}, {}, True
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for processes in args.processes:  # alternating, so a change in the machine's load hits both
                output = Path(folder) / f"recommendations_{processes}_{repeat}.jsonl"
                command = recommend_command(args, processes, output)
                print(f"{processes} process(es), run {repeat + 1}: {shlex.join(command)}", flush=True)
                started = time.perf_counter()
                done = subprocess.run(command, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - started
                if done.returncode != 0:
                    raise SystemExit(f"{processes} process(es) failed:\n{done.stderr[-3000:]}")
                ranked = RANKED.search(done.stdout)
                if ranked is None:
                    raise SystemExit(f"{processes} process(es): no summary line in the output:\n{done.stdout[-2000:]}")
                timings[processes].append((float(ranked.group(1)), wall))
                files.setdefault(processes, output)
                identical = identical and filecmp.cmp(files[args.processes[0]], output, shallow=False)
                print(f"  ranked in {timings[processes][-1][0]:.1f} s; {wall:.1f} s with the start", flush=True)
        users = sum(1 for _ in files[1].open(encoding="utf-8"))
    runs = {}
    for processes, pairs in timings.items():
        seconds, wall = statistics.median(s for s, _ in pairs), statistics.median(w for _, w in pairs)
        runs[str(processes)] = {"users_per_s": round(users / seconds, 1), "ranking_s": round(seconds, 1),
                                "wall_s": round(wall, 1), "end_to_end_users_per_s": round(users / wall, 1),
                                "ranking_s_runs": [round(s, 1) for s, _ in pairs]}
    summary = {
        "model": args.model_name_or_path, "dataset": args.dataset, "users": users, "k": args.k,
        "batch_size": args.batch_size, "repeats": args.repeats, "processes": runs, "identical": identical,
        "load_average_end": round(os.getloadavg()[0], 2), "threads_per_process": 1,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"{Path(sys.executable).name} {shlex.join(sys.argv)}",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    speedups = ", ".join(f"{n}: {run['users_per_s'] / runs['1']['users_per_s']:.2f}x" for n, run in runs.items())
    print(f"users/s against one process: {speedups}; files identical: {identical}")
    return summary


if __name__ == "__main__":
    main(make_parser().parse_args())
