"""Evaluate trained students as the paper does and write metrics.json + report.md (``rdrec-hf evaluate``,
``recipes/evaluation.py``).

Options come from `EvaluateScriptArguments` (below), `DataArguments` (rdrec_hf.training: the same data options
as training, so the same users, items and negatives) and `EvaluationConfig` (rdrec_hf.evaluation).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

from ..data import get_metadata
from ..evaluation import EvaluationConfig, aggregate_seeds, evaluate_model, write_report
from ..training import DataArguments, load_trained_student, load_training_data, seed_run_dir
from ..training.pipeline import TRAINING_CURVES_FILE
from . import configure_logging

logger = logging.getLogger(__name__)


@dataclass
class EvaluateScriptArguments:
    """Which model to evaluate and where the report goes."""

    model_name_or_path: str = field(
        metadata={"help": "A trained student folder (`rdrec-hf train` output or a checkpoint), or a LoRA adapter "
                  "folder; with `seeds`, the folder holding the seed-<seed> runs."}
    )
    output_dir: str = field(metadata={"help": "Folder for metrics.json and report.md."})
    seeds: list[int] | None = field(
        default=None,
        metadata={"help": "Evaluate <model_name_or_path>/seed-<seed> for each seed (as `train --seeds` writes "
                  "them) and report the mean and spread of every metric."},
    )


def make_parser(prog: str | None = None) -> TrlParser:
    """The parser of this program's options (also used by the tests to check every evaluation YAML)."""
    return TrlParser((EvaluateScriptArguments, DataArguments, EvaluationConfig), prog=prog)


def main(script_args: EvaluateScriptArguments, data_args: DataArguments, config: EvaluationConfig) -> dict:
    """Evaluate and write the report; returns the `evaluate_model` results (or their seed aggregate)."""
    configure_logging()
    data = load_training_data(data_args)
    root = Path(script_args.model_name_or_path)
    model_paths = [seed_run_dir(root, seed) for seed in script_args.seeds] if script_args.seeds else [root]
    runs = []
    for path in model_paths:
        model, tokenizer = load_trained_student(str(path))
        runs.append(evaluate_model(model, data, tokenizer, config))
    results = runs[0] if len(runs) == 1 else aggregate_seeds(runs)

    metadata = get_metadata(data)
    users = "all users" if config.max_users is None else f"a seeded sample of {config.max_users} users"
    notes = [
        f"model: {script_args.model_name_or_path}"
        + (f" (mean and std over seeds {', '.join(map(str, script_args.seeds))})" if script_args.seeds else ""),
        f"dataset: {data_args.dataset} ({metadata.indexing.value} item indexing, seed {metadata.seed})",
        f"split: {config.split}; {users} (seed {config.seed})",
    ]
    output_dir = Path(script_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # One model: its training curves go into the report (copied unless the report sits in the model folder).
    curves, report_curves = model_paths[0] / TRAINING_CURVES_FILE, output_dir / TRAINING_CURVES_FILE
    embed_curves = len(model_paths) == 1 and curves.is_file()
    if embed_curves and curves.resolve() != report_curves.resolve():
        shutil.copyfile(curves, report_curves)
    paths = write_report(results, output_dir, notes=notes, curves_png=TRAINING_CURVES_FILE if embed_curves else None)
    logger.info("wrote %s and %s", paths["metrics"], paths["report"])
    return results
