"""Evaluate a trained RDRec student as the paper does and write metrics.json + report.md.
(Not named evaluate.py: a script of that name in recipes/ would shadow the `evaluate` library.)

    accelerate launch --num_processes 1 recipes/evaluation.py \
        --config recipes/beauty/evaluation/config_full.yaml [--model_name_or_path runs/beauty/full ...]

Options come from `EvaluateScriptArguments` (below), `DataArguments` (rdrec_hf.training: the same data
options as training, so the same users, items and negatives) and `EvaluationConfig` (rdrec_hf.evaluation).
The YAML given with `--config` sets them; the command line overrides the YAML.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from trl import TrlParser

from rdrec_hf.data import get_metadata
from rdrec_hf.evaluation import EvaluationConfig, evaluate_model, write_report
from rdrec_hf.training import DataArguments, load_trained_student, load_training_data, run_recipe

logger = logging.getLogger(__name__)


@dataclass
class EvaluateScriptArguments:
    """Which model to evaluate and where the report goes."""

    model_name_or_path: str = field(
        metadata={"help": "A trained student folder (`recipes/train.py` output or a checkpoint), or a LoRA adapter folder."}
    )
    output_dir: str = field(metadata={"help": "Folder for metrics.json and report.md."})


def make_parser() -> TrlParser:
    """The parser of this recipe's options (used by tests to check every YAML)."""
    return TrlParser((EvaluateScriptArguments, DataArguments, EvaluationConfig))


def main(script_args: EvaluateScriptArguments, data_args: DataArguments, config: EvaluationConfig) -> dict:
    """Evaluate and write the report; returns the `evaluate_model` results."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=logging.INFO)
    data = load_training_data(data_args)
    model, tokenizer = load_trained_student(script_args.model_name_or_path)
    results = evaluate_model(model, data, tokenizer, config)
    metadata = get_metadata(data)
    users = "all users" if config.max_users is None else f"a seeded sample of {config.max_users} users"
    notes = [
        f"model: {script_args.model_name_or_path}",
        f"dataset: {data_args.dataset} ({metadata.indexing.value} item indexing, seed {metadata.seed})",
        f"split: {config.split}; {users} (seed {config.seed})",
    ]
    paths = write_report(results, script_args.output_dir, notes=notes)
    logger.info("wrote %s and %s", paths["metrics"], paths["report"])
    return results


if __name__ == "__main__":
    run_recipe(make_parser(), main)
