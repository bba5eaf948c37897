"""Evaluate trained students and write one metrics file and report per protocol (``rdrec-hf evaluate``,
``recipes/evaluation.py``): metrics.json + report.md for this project's protocol, metrics_paper.json +
report_paper.md for the paper's.

Options come from `EvaluateScriptArguments` (below), `DataArguments` (rdrec_hf.data: the same data options
as training, so the same users, items and negatives) and `EvaluationConfig` (rdrec_hf.evaluation: also
``--device`` and ``--dtype``, where and in what the student is loaded).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

from ..data import check_numbering, get_metadata
from ..evaluation import EvaluationConfig, aggregate_seeds, evaluate_model, write_report
from ..evaluation.report import TRAINING_CURVES_FILE
from ..checkpoints import load_trained_student
from ..data.loading import DataArguments, load_training_data
from ..paths import seed_run_dir
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
    """Evaluate under every protocol of ``config.protocols`` and write their reports; returns
    ``{protocol: evaluate_model results (or their seed aggregate)}``."""
    configure_logging()
    data = load_training_data(data_args)
    root = Path(script_args.model_name_or_path)
    model_paths = [seed_run_dir(root, seed) for seed in script_args.seeds] if script_args.seeds else [root]
    runs = {protocol: [] for protocol in config.protocols}
    for path in model_paths:
        model, tokenizer = load_trained_student(str(path), config.device, config.dtype)
        check_numbering(model.item_index, data, f"model {path}", f"dataset {data_args.dataset}")
        for protocol in config.protocols:
            # A trained baseline (SASRec) keeps its weights beside the report: later evaluations reuse them.
            runs[protocol].append(evaluate_model(model, data, tokenizer, config, protocol=protocol,
                                                 baseline_dir=script_args.output_dir))
    results = {protocol.value: found[0] if len(found) == 1 else aggregate_seeds(found) for protocol, found in runs.items()}

    metadata = get_metadata(data)
    users = "all users" if config.max_users is None else f"a seeded sample of {config.max_users} users"
    notes = [
        f"model: {script_args.model_name_or_path}"
        + (f" (mean and std over seeds {', '.join(map(str, script_args.seeds))})" if script_args.seeds else ""),
        f"dataset: {data_args.dataset} ({metadata.indexing.value} item indexing, seed {metadata.seed})",
        f"split: {config.split}; {users} (seed {config.seed})",
        f"run on {model.device.type} in {str(model.dtype).removeprefix('torch.')}",  # bf16 can move a metric
    ]
    output_dir = Path(script_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # One model: its training curves go into the report (copied unless the report sits in the model folder).
    curves, report_curves = model_paths[0] / TRAINING_CURVES_FILE, output_dir / TRAINING_CURVES_FILE
    embed_curves = len(model_paths) == 1 and curves.is_file()
    if embed_curves and curves.resolve() != report_curves.resolve():
        shutil.copyfile(curves, report_curves)
    for protocol, protocol_results in results.items():
        paths = write_report(protocol_results, output_dir, notes=notes, protocol=protocol,
                             curves_png=TRAINING_CURVES_FILE if embed_curves else None)
        logger.info("wrote %s and %s", paths["metrics"], paths["report"])
    return results
