"""The summary of ``benchmarks/gpu_check.sh``: the student's steps/s, epoch seconds and test NDCG@10 beside SASRec's
on the same GPU and users, from the files the check's commands wrote; printed and written to ``gpu_check.json``
(copied to ``benchmarks/results/gpu_check.json`` by hand after a real run, never after ``--smoke``).

    python benchmarks/gpu_check_summary.py --runs runs/gpu_check --results "$OUT" --seconds 512
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from datetime import date
from pathlib import Path

DATASETS = ("beauty", "sports")
METRICS = ("ndcg@10", "hr@10")
SPEED_RUNS = {"speed_d64": "eager", "speed_d64_compiled": "torch.compile, CUDA graphs"}  # gpu_check.sh's speed runs


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True, help="the check's training folders")
    parser.add_argument("--results", type=Path, required=True, help="the check's logs and SASRec results")
    parser.add_argument("--seconds", type=float, required=True, help="wall seconds of the whole check")
    parser.add_argument("--smoke", action="store_true", help="the CPU smoke run (figures are not results)")
    return parser


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def training(folder: Path) -> dict | None:
    """Steps/s, epochs, epoch seconds and the validation curve of one training run."""
    results, state = read_json(folder / "train_results.json"), read_json(folder / "trainer_state.json")
    if results is None or state is None:
        return None
    epochs = results.get("epoch") or state.get("epoch") or 0
    validation = [round(entry["eval_sequential_ndcg@10"], 4) for entry in state["log_history"]
                  if "eval_sequential_ndcg@10" in entry]
    # the trainer's rate between periodic logs: steady, after start-up and compilation
    rates = [entry["steps_per_second"] for entry in state["log_history"] if "steps_per_second" in entry]
    steady = statistics.median(rates) if rates else None
    steps_per_epoch = state["global_step"] / epochs if epochs else None
    return {
        "steps": state["global_step"], "steps_per_s": round(state["global_step"] / results["train_runtime"], 1),
        "steady_steps_per_s": round(steady, 1) if steady else None,
        "epochs": round(epochs, 2), "epoch_s": round(results["train_runtime"] / epochs, 2) if epochs else None,
        "steady_epoch_s": round(steps_per_epoch / steady, 2) if steady and steps_per_epoch else None,
        "train_minutes": round(results["train_runtime"] / 60, 2), "validation_ndcg@10": validation,
        "best_validation_ndcg@10": state.get("best_metric"),
    }


def test_metrics(folder: Path) -> dict | None:
    """The student's and the baselines' sequential test metrics (this project's protocol)."""
    metrics = read_json(folder / "eval" / "metrics.json")
    if metrics is None:
        return None
    sequential = metrics.get("sequential", metrics)
    return {system: {metric: round(values[metric], 4) for metric in METRICS}
            for system, values in sequential.items() if isinstance(values, dict) and "ndcg@10" in values}


def sasrec(path: Path) -> dict | None:
    results = read_json(path)
    if results is None or not results.get("runs"):
        return None
    (run,) = results["runs"].values()
    epochs = run["sasrec"]["epochs"]
    return {
        **{metric: round(run["metrics"]["sasrec"]["sequential"][metric], 4) for metric in METRICS},
        "epochs": epochs, "best_epoch": run["sasrec"]["best_epoch"], "stop_reason": run["sasrec"]["stop_reason"],
        "train_minutes": round(run["sasrec"]["train_seconds"] / 60, 2),
        "epoch_s": round(run["sasrec"]["train_seconds"] / epochs, 2), "test_users": run["test_users"],
        "device": run["device"],
    }


def main(args: argparse.Namespace) -> dict:
    summary = {
        "smoke": args.smoke, "date": date.today().isoformat(), "machine": platform.node(),
        "check_seconds": args.seconds, "command": "benchmarks/gpu_check.sh" + (" --smoke" if args.smoke else ""),
        "protocol": "this project's: full ranking of the catalog, history excluded, seeded 5,000 test users",
        **{name: training(args.runs / name) for name in SPEED_RUNS},
        "datasets": {},
    }
    try:
        import torch

        if torch.cuda.is_available():
            summary["machine"] = f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    except ImportError:
        pass
    lines = [f"GPU check ({summary['machine']}, {args.seconds:.0f} s{', smoke' if args.smoke else ''})", ""]
    for name in SPEED_RUNS:
        if speed := summary[name]:
            lines.append(f"d_model 64 recipe, {SPEED_RUNS[name]}: {speed['steady_steps_per_s']} steps/s steady "
                         f"({speed['steady_epoch_s']} s an epoch), {speed['steps_per_s']} steps/s and "
                         f"{speed['epoch_s']} s an epoch with start-up")
    lines += ["", "| dataset | system | NDCG@10 | HR@10 | epochs (best) | s an epoch | train min |", "|---|---|---:|---:|---:|---:|---:|"]
    for dataset in DATASETS:
        student, tested = training(args.runs / f"student_{dataset}"), test_metrics(args.runs / f"student_{dataset}")
        baseline = sasrec(args.results / f"sasrec_{dataset}.json")
        summary["datasets"][dataset] = {"student": {**(student or {}), "test": tested}, "sasrec": baseline}
        if student and tested:
            model = tested.get("model", {})
            lines.append(f"| {dataset} | student (small, bf16) | {model.get('ndcg@10')} | {model.get('hr@10')} | "
                         f"{student['epochs']} | {student['epoch_s']} | {student['train_minutes']} |")
            for system in sorted(set(tested) - {"model"}):
                lines.append(f"| {dataset} | {system} | {tested[system]['ndcg@10']} | {tested[system]['hr@10']} | | | |")
        if baseline:
            lines.append(f"| {dataset} | SASRec | {baseline['ndcg@10']} | {baseline['hr@10']} | "
                         f"{baseline['epochs']} ({baseline['best_epoch']}) | {baseline['epoch_s']} | {baseline['train_minutes']} |")
    print("\n".join(lines))
    (args.results / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    missing = [name for name in SPEED_RUNS if not summary[name]] + [
        f"{dataset} {part}" for dataset, runs in summary["datasets"].items()
        for part, present in (("student", runs["student"].get("test")), ("sasrec", runs["sasrec"])) if not present]
    if missing:
        print(f"missing: {', '.join(missing)}")
        raise SystemExit(1)
    return summary


if __name__ == "__main__":
    main(make_parser().parse_args())
