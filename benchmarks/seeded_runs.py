"""Train a student once per seed and evaluate the runs, through the programs behind `rdrec-hf train --seeds`
and `rdrec-hf evaluate --seeds`; format the mean ± spread for the tables of BENCHMARKS.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from rdrec_hf.evaluation.protocols import protocol_files
from rdrec_hf.evaluation.report import count_value, format_value
from rdrec_hf.scripts import evaluation as evaluation_script
from rdrec_hf.scripts import train as train_script
from rdrec_hf.paths import seed_run_dir

EVALUATED_SEEDS_FILE = "evaluated_seeds.json"  # beside an evaluation: the seeds it ranked, for a resumed run


def train_and_evaluate(
    train_config: str,
    eval_config: str,
    folder: Path,
    seeds: Sequence[int],
    overrides: Sequence[str] = (),
    train_overrides: Sequence[str] = (),
) -> dict:
    """`train --config train_config --output_dir folder --seeds ...` then `evaluate` of the same runs into
    ``folder/eval``; ``overrides`` (``--option value`` pairs) go to both, ``train_overrides`` to training only.
    Returns the evaluation's mean / std per metric of each protocol the evaluation config runs,
    ``{protocol: results}``. Resumes: an evaluation on disk of the same seeds is read back, and a seed whose run
    finished (its ``train_results.json``) is not trained again, so an interrupted variant keeps its whole seeds."""
    seed_options = ["--seeds", *map(str, seeds)]
    eval_options = [
        "--config", eval_config, *overrides, "--model_name_or_path", str(folder), "--output_dir", str(folder / "eval"),
        *seed_options,
    ]
    eval_arguments = evaluation_script.make_parser().parse_args_and_config(eval_options)
    metrics_files = {protocol.value: folder / "eval" / protocol_files(protocol)[0]
                     for protocol in eval_arguments[-1].protocols}
    seeds_file = folder / "eval" / EVALUATED_SEEDS_FILE
    if seeds_file.is_file() and json.loads(seeds_file.read_text(encoding="utf-8")) == list(seeds):
        return {protocol: json.loads(path.read_text(encoding="utf-8")) for protocol, path in metrics_files.items()}
    untrained = [seed for seed in seeds if not (seed_run_dir(folder, seed) / "train_results.json").is_file()]
    if untrained:
        train_options = ["--config", train_config, *overrides, *train_overrides, "--output_dir", str(folder),
                         "--seeds", *map(str, untrained)]  # fmt: skip
        train_script.main(*train_script.make_parser().parse_args_and_config(train_options))
    results = evaluation_script.main(*eval_arguments)
    seeds_file.write_text(json.dumps(list(seeds)) + "\n")
    return results


def train_results(folder: Path, seeds: Sequence[int]) -> list[dict]:
    """Each seed's train_results.json."""
    return [json.loads((seed_run_dir(folder, seed) / "train_results.json").read_text(encoding="utf-8")) for seed in seeds]


def training_minutes(folder: Path, seeds: Sequence[int]) -> list[float]:
    """Wall minutes of each seed's training, its item start included (``train_runtime`` + ``item_start_runtime``
    of its train_results.json; runs from before the start was recorded have ``train_runtime`` alone)."""
    return [(results["train_runtime"] + results.get("item_start_runtime", 0.0)) / 60
            for results in train_results(folder, seeds)]


def training_cpu_minutes(folder: Path, seeds: Sequence[int]) -> list[float | None]:
    """CPU minutes of each seed's training process, its item start included (``train_cpu_runtime`` of its
    train_results.json; None for runs from before it was recorded). Other jobs on the machine do not inflate
    them, as they do wall minutes."""
    return [None if results.get("train_cpu_runtime") is None else results["train_cpu_runtime"] / 60
            for results in train_results(folder, seeds)]


def metric_cell(results: dict, task: str, metric: str, system: str = "model") -> str:
    """``mean ± std`` of the model over seeds; the mean alone for a baseline (it does not depend on the
    training seed) or a single run; ``n/a`` when the task was skipped."""
    entry = results.get(task, {})
    if "skipped" in entry or system not in entry:
        return "n/a"
    value = entry[system][metric]
    if system != "model" and isinstance(value, dict):  # baselines do not depend on the training seed
        value = value["mean"]
    return format_value(value)


def num_examples(results: dict, task: str) -> int:
    """Test examples of a task (the same for every seed: the users and reviews do not depend on it)."""
    return count_value(results.get(task, {}).get("num_examples", 0))
