"""The rationale stage on real reviews: the student with and without the rationale and explanation tasks.

Four task mixtures (explanation:sequential:rationale:top-N), each trained with the same budget
(recipes/all_beauty/train/config_ablation.yaml: steps, batch, learning rate) once per seed and evaluated on
every All_Beauty test user (recipes/all_beauty/evaluation/config_ablation.yaml), through the same programs as
`rdrec-hf train --seeds` and `rdrec-hf evaluate --seeds` (`seeded_runs.train_and_evaluate`). A mixture whose
evaluation is already on disk is read back, so an interrupted run resumes. Writes benchmarks/results/ablation.{json,md}:

    .venv/bin/rdrec-hf distill --config recipes/all_beauty/distill/config_demo.yaml --limit 1024 \
        --output_dir runs/all_beauty/ablation/distill --save_path runs/all_beauty/ablation/rationales
    .venv/bin/python benchmarks/bench_ablation.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import torch

from seeded_runs import metric_cell, num_examples, train_and_evaluate

RESULTS_DIR = Path(__file__).parent / "results"
RECIPES = Path("recipes") / "all_beauty"  # run from the repository root, like the runs/ paths
# name -> (output folder, task mixture explanation:sequential:rationale:top-N)
VARIANTS = {
    "all four tasks (RDRec)": ("all_tasks", "1:1:1:1"),
    "without rationale": ("no_rationale", "1:1:0:1"),
    "without explanation": ("no_explanation", "0:1:1:1"),
    "without both (sequential + top-N)": ("ranking_only", "0:1:0:1"),
}
COLUMNS = [  # (task, metric) pairs of the table
    ("sequential", "hr@10"), ("sequential", "ndcg@10"), ("topn", "hr@10"), ("topn", "ndcg@10"),
    ("explanation", "bleu-4"), ("explanation", "rouge-l"), ("rationale", "bleu-4"), ("rationale", "rouge-l"),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of every mixture")
    parser.add_argument("--train-config", default=str(RECIPES / "train" / "config_ablation.yaml"))
    parser.add_argument("--eval-config", default=str(RECIPES / "evaluation" / "config_ablation.yaml"))
    parser.add_argument("--output-root", default="runs/all_beauty/ablation", help="one sub-folder per mixture")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return parser.parse_args()


def markdown(results: dict[str, dict], options: argparse.Namespace) -> list[str]:
    header = "| variant | mixture | " + " | ".join(f"{task} {metric}" for task, metric in COLUMNS) + " |"
    lines = [header, "|---|---|" + "---:|" * len(COLUMNS)]
    for name, (_, mixture) in VARIANTS.items():
        lines.append(f"| {name} | `{mixture}` | " + " | ".join(metric_cell(results[name], *column) for column in COLUMNS) + " |")
    first = results[next(iter(VARIANTS))]
    for system in ("popularity", "leak_rule"):
        cells = [metric_cell(first, task, metric, system) if task in ("sequential", "topn") else "" for task, metric in COLUMNS]
        lines.append(f"| {system.replace('_', ' ')} | | " + " | ".join(cells) + " |")
    counts = ", ".join(f"{task} {num_examples(first, task)}" for task in ("sequential", "topn", "explanation", "rationale"))
    lines += ["", f"Mean ± sample std over seeds {', '.join(map(str, options.seeds))}; test examples: {counts}."]
    return lines


def main() -> None:
    options = parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
    root = Path(options.output_root)
    results = {
        name: train_and_evaluate(
            options.train_config, options.eval_config, root / folder, options.seeds, ["--task_mixture", mixture]
        )
        for name, (folder, mixture) in VARIANTS.items()
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    lines = [f"Rationale ablation on All_Beauty ({stamp}); budget {options.train_config}", "", *markdown(results, options)]
    (RESULTS_DIR / "ablation.json").write_text(
        json.dumps({"seeds": options.seeds, "variants": {name: {"mixture": VARIANTS[name][1], "results": result}
                                                         for name, result in results.items()}}, indent=2) + "\n"
    )
    (RESULTS_DIR / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
