"""The rationale question asked of the strong student: does the rationale task help it rank?

The demo's recipe (recipes/all_beauty/train/config_demo.yaml: the four RDRec tasks, the SASRec start and teacher,
the catalog softmax for ranking) is trained with three mixtures under the same budget (its steps, batch and
learning rate), once per seed, through the programs behind `rdrec-hf train --seeds` / `rdrec-hf evaluate --seeds`
(`seeded_runs.train_and_evaluate`), and every All_Beauty test user is ranked under this project's protocol
(recipes/all_beauty/evaluation/config_rationale_effect.yaml). A variant whose evaluation is on disk is read back,
so an interrupted run resumes, and two processes may each run some variants (`--variants`); a last run over all
of them writes benchmarks/results/rationale_effect.json, which `report.py` renders:

    make demo   # runs/demo/rationales: the teacher's rationales
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rationale_effect.py --variants all_tasks no_rationale &
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rationale_effect.py --variants ranking_only
    .venv/bin/python benchmarks/bench_rationale_effect.py   # reads the three back, writes the results
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from rdrec_hf.evaluation.report import paired_difference
from seeded_runs import train_and_evaluate

RESULTS_FILE = Path(__file__).parent / "results" / "rationale_effect.json"
RECIPES = Path("recipes") / "all_beauty"  # run from the repository root, like the runs/ paths
# folder -> task mixture explanation:sequential:rationale:top-N
VARIANTS = {"all_tasks": "1:1:1:1", "no_rationale": "1:1:0:1", "ranking_only": "0:1:0:1"}
REFERENCE = "all_tasks"
METRICS = [(task, metric) for task in ("sequential", "topn") for metric in ("ndcg@10", "hr@10")]
BASELINES = ("popularity", "item_knn", "sasrec")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46], help="training seeds of every variant")
    parser.add_argument("--train-config", default=str(RECIPES / "train" / "config_demo.yaml"))
    parser.add_argument("--eval-config", default=str(RECIPES / "evaluation" / "config_rationale_effect.yaml"))
    parser.add_argument("--output-root", default="runs/all_beauty/rationale_effect", help="one sub-folder per variant")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="variants to run; the results file is written when all three are on disk")
    return parser.parse_args()


def main(options: argparse.Namespace) -> None:
    root = Path(options.output_root)
    found = {
        name: train_and_evaluate(options.train_config, options.eval_config, root / name, options.seeds,
                                 train_overrides=["--task_mixture", VARIANTS[name]])["project"]
        for name in options.variants
    }
    if set(found) != set(VARIANTS):
        print(f"ran {sorted(found)}; run the others, then once more without --variants for the results file")
        return
    first = found[REFERENCE]
    variants = {
        name: {"mixture": VARIANTS[name], "seeds": options.seeds,
               **{f"{task}_{metric}": results[task]["model"][metric]["values"] for task, metric in METRICS}}
        for name, results in found.items()
    }
    result = {
        "protocol": "project",
        "users": first["sequential"]["num_examples"]["mean"],
        "recipe": options.train_config,
        "measured": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "variants": variants,
        "baselines": {name: {f"{task}_{metric}": first[task][name][metric]["mean"] for task, metric in METRICS}
                      for name in BASELINES if name in first["sequential"]},
        "paired_difference": {
            name: {f"{task}_{metric}": paired_difference(variants[name][f"{task}_{metric}"],
                                                         variants[REFERENCE][f"{task}_{metric}"])
                   for task, metric in METRICS}
            for name in VARIANTS if name != REFERENCE
        },
    }
    RESULTS_FILE.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS_FILE}")


if __name__ == "__main__":
    main(parse_args())
