"""The rationale stage on real reviews: the student with and without the rationale and explanation tasks.

Four task mixtures (explanation:sequential:rationale:top-N, read as the paper's per-batch shares), each trained
with the same budget (recipes/all_beauty/train/config_ablation.yaml: steps, batch, learning rate) once per seed
and evaluated on every All_Beauty test user under this project's protocol and the paper's
(recipes/all_beauty/evaluation/config_ablation.yaml), through the same programs as `rdrec-hf train --seeds`
and `rdrec-hf evaluate --seeds` (`seeded_runs.train_and_evaluate`). A mixture whose evaluation is already on
disk is read back, so an interrupted run resumes. Writes benchmarks/results/ablation.{json,md}:

    .venv/bin/rdrec-hf prepare --source ../shared/data/amazon-2018/All_Beauty_5.json.gz --indexing random \
        --seed 0 --output runs/all_beauty/paper/data
    .venv/bin/rdrec-hf distill --config recipes/all_beauty/distill/config_ablation.yaml
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ablation.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import torch

from rdrec_hf.evaluation.protocols import PROTOCOL_TITLES, EvalProtocol
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
def columns(protocol: str) -> list[tuple[str, str]]:
    """(task, metric) pairs of a protocol's table: its ROUGE-L is rouge-score's (project) or the reference's."""
    rouge = "nmt-rouge-l" if protocol == "paper" else "rouge-l"
    return [("sequential", "hr@10"), ("sequential", "ndcg@10"), ("topn", "hr@10"), ("topn", "ndcg@10"),
            ("explanation", "bleu-4"), ("explanation", rouge), ("rationale", "bleu-4"), ("rationale", rouge)]


def rationale_effect(results: dict[str, dict], task: str, metric: str = "ndcg@10") -> str:
    """Whether removing the rationale task moves ``task``'s metric by more than the two mixtures' seed spread."""
    (with_it, with_std), (without, without_std) = (
        _mean_std(results[name][task]["model"][metric]) for name in ("all four tasks (RDRec)", "without rationale")
    )
    difference, spread = with_it - without, max(with_std, without_std)
    verdict = "beyond" if abs(difference) > spread else "within"
    return (f"{task} {metric}: all four tasks {with_it:.4f}, without rationale {without:.4f}: "
            f"difference {difference:+.4f}, {verdict} the larger seed std ({spread:.4f})")


def _mean_std(value) -> tuple[float, float]:
    """Mean and sample std of an aggregated metric; a single run's value with no spread."""
    return (value["mean"], value["std"] or 0.0) if isinstance(value, dict) else (value, 0.0)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of every mixture")
    parser.add_argument("--train-config", default=str(RECIPES / "train" / "config_ablation.yaml"))
    parser.add_argument("--eval-config", default=str(RECIPES / "evaluation" / "config_ablation.yaml"))
    parser.add_argument("--output-root", default="runs/all_beauty/paper", help="one sub-folder per mixture")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--variants", nargs="+", choices=[folder for folder, _ in VARIANTS.values()],
                        default=[folder for folder, _ in VARIANTS.values()],
                        help="mixtures to run and report, by folder name (several processes may each run some; a "
                        "last run over all of them reads their results back)")
    return parser.parse_args()


def markdown(results: dict[str, dict], options: argparse.Namespace, protocol: str) -> list[str]:
    """One protocol's table (the two protocols never share one)."""
    table = columns(protocol)
    header = "| variant | mixture | " + " | ".join(f"{task} {metric}" for task, metric in table) + " |"
    lines = [header, "|---|---|" + "---:|" * len(table)]
    for name, (_, mixture) in VARIANTS.items():
        if name not in results:
            continue
        lines.append(f"| {name} | `{mixture}` | " + " | ".join(metric_cell(results[name], *column) for column in table) + " |")
    first = next(iter(results.values()))
    for system in ("popularity", "leak_rule"):
        cells = [metric_cell(first, task, metric, system) if task in ("sequential", "topn") else "" for task, metric in table]
        lines.append(f"| {system.replace('_', ' ')} | | " + " | ".join(cells) + " |")
    counts = ", ".join(f"{task} {num_examples(first, task)}" for task in ("sequential", "topn", "explanation", "rationale"))
    lines += ["", f"Mean ± sample std over seeds {', '.join(map(str, options.seeds))}; test examples: {counts}.", ""]
    if {"all four tasks (RDRec)", "without rationale"} <= set(results):
        lines += [f"- {rationale_effect(results, task)}" for task in ("sequential", "topn")]
    return lines


def main() -> None:
    options = parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
    root = Path(options.output_root)
    by_variant = {
        name: train_and_evaluate(
            options.train_config, options.eval_config, root / folder, options.seeds,
            train_overrides=["--task_mixture", mixture],
        )
        for name, (folder, mixture) in VARIANTS.items() if folder in options.variants
    }
    protocols = list(next(iter(by_variant.values())))
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    lines = [f"Rationale ablation on All_Beauty ({stamp}); budget {options.train_config}"]
    for protocol in protocols:
        results = {name: found[protocol] for name, found in by_variant.items()}
        lines += ["", f"### {PROTOCOL_TITLES[EvalProtocol(protocol)].capitalize()}", "", *markdown(results, options, protocol)]
    (RESULTS_DIR / "ablation.json").write_text(
        json.dumps({"seeds": options.seeds, "protocols": protocols,
                    "variants": {name: {"mixture": VARIANTS[name][1], "results": result}
                                 for name, result in by_variant.items()}}, indent=2) + "\n"
    )
    (RESULTS_DIR / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
