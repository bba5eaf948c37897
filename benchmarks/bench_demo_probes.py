"""One change to `make demo`'s recipe, measured as the demo measures itself: train, evaluate every test user, one row.

Trains ``recipes/all_beauty/train/config_demo.yaml`` with ``--train-overrides`` into ``RUN_DIR/model`` on the demo's
distilled dataset (``runs/demo/rationales``, from a ``make demo``) or, with ``--distill-overrides``, on a dataset the
demo's teacher recipe distils with those options into ``RUN_DIR/rationales``; evaluates it with
``recipes/all_beauty/evaluation/config_demo.yaml`` into ``RUN_DIR/eval``; and writes the row (ranking and texts, as
bench_demo.py reads them) into ``benchmarks/results/<results>`` under ``--change``, replacing a row of that name.
Each step is skipped when its output exists, so an interrupted probe resumes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_demo_probes.py --change "1,500 steps" \\
        --train-overrides "--max_steps 1500" --run-dir runs/demo_probes/steps1500
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from bench_demo import summary

RECIPES = Path("recipes/all_beauty")  # run from the repository root, as `make demo`
DEMO_DATASET = Path("runs/demo/rationales")
RESULTS_DIR = Path(__file__).parent / "results"
RDREC = ".venv/bin/rdrec-hf"


def run(arguments: list[str]) -> None:
    print("+", shlex.join(arguments), flush=True)
    subprocess.run(arguments, check=True, env=os.environ)


def probe(options: argparse.Namespace) -> dict:
    """Distils (if asked), trains and evaluates what is missing in ``options.run_dir``; the row of its figures."""
    root = Path(options.run_dir)
    dataset = DEMO_DATASET
    if options.distill_overrides:
        dataset = root / "rationales"
        if not dataset.exists():
            run([RDREC, "distill", "--config", str(RECIPES / "distill/config_demo.yaml"), "--save_path", str(dataset),
                 "--output_dir", str(root / "distill"), *shlex.split(options.distill_overrides)])  # fmt: skip
    if not (root / "model" / "model.safetensors").exists():
        run([RDREC, "train", "--config", str(RECIPES / "train/config_demo.yaml"), "--dataset", str(dataset),
             "--output_dir", str(root / "model"), *shlex.split(options.train_overrides)])  # fmt: skip
    if not (root / "eval" / "metrics.json").exists():
        run([RDREC, "evaluate", "--config", str(RECIPES / "evaluation/config_demo.yaml"), "--dataset", str(dataset),
             "--model_name_or_path", str(root / "model"), "--output_dir", str(root / "eval")])  # fmt: skip
    figures = summary(json.loads((root / "eval" / "metrics.json").read_text(encoding="utf-8")))
    ranking = {task: entry["model"] for task, entry in figures["ranking"].items()}
    return {"change": options.change, "train_overrides": options.train_overrides,
            "distill_overrides": options.distill_overrides, "users": figures["ranking"]["sequential"]["users"],
            "threads": os.environ.get("OMP_NUM_THREADS", "one per core"), "load": options.load,
            **ranking, **figures["text"],
            "baselines": {name: values["ndcg@10"] for name, values in figures["ranking"]["sequential"].items()
                          if name not in ("users", "model")}}  # fmt: skip


def main(options: argparse.Namespace) -> None:
    row = probe(options)
    path = RESULTS_DIR / options.results
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"probes": []}
    results["measured"] = f"{datetime.now(timezone.utc):%Y-%m-%d} UTC"
    results["probes"] = [probe for probe in results["probes"] if probe["change"] != row["change"]] + [row]
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(row, indent=2))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--change", required=True, help="the row's name: what differs from config_demo.yaml")
    parser.add_argument("--train-overrides", default="", help="options after `train --config config_demo.yaml`")
    parser.add_argument("--distill-overrides", default="",
                        help="options after `distill --config config_demo.yaml`: distil a dataset of the probe's own")
    parser.add_argument("--run-dir", required=True, help="the probe's folder (resumed when it exists)")
    parser.add_argument("--results", default="demo_text_probes.json", help="file under benchmarks/results/")
    parser.add_argument("--load", default="two 1-thread jobs side by side", help="what else ran while it trained")
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_args())
