"""Train the RDRec student on the four-task mixture (``rdrec-hf train``, ``recipes/train.py``).

Options come from `ModelArguments`, `DataArguments`, `RDRecTrainingArguments` (rdrec_hf.training) and
`TrainScriptArguments` (below); the YAML given with `--config` sets them and the command line overrides it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from trl import TrlParser

from ..training import DataArguments, ModelArguments, RDRecTrainingArguments, train_rdrec, train_rdrec_seeds
from . import configure_logging

logger = logging.getLogger(__name__)


@dataclass
class TrainScriptArguments:
    """Several training seeds in one command."""

    seeds: list[int] | None = field(
        default=None,
        metadata={"help": "Train once per seed, each in <output_dir>/seed-<seed>, and report the mean and spread "
                  "of every metric in <output_dir>/seeds_metrics.json (the paper averages 10 runs). "
                  "Unset: one run with `seed` in <output_dir>."},
    )


def make_parser(prog: str | None = None) -> TrlParser:
    """The parser of this program's options (also used by the tests to check every training YAML)."""
    return TrlParser((ModelArguments, DataArguments, RDRecTrainingArguments, TrainScriptArguments), prog=prog)


def main(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: RDRecTrainingArguments,
    script_args: TrainScriptArguments | None = None,
) -> dict:
    """Train and save; returns the train (and eval) metrics, or their mean / spread over several seeds."""
    configure_logging(training_args.get_process_log_level())
    logger.info("model %s | data %s", model_args, data_args)
    if script_args is not None and script_args.seeds:
        folders, metrics = train_rdrec_seeds(model_args, data_args, training_args, script_args.seeds)
        logger.info("trained %d seeds: %s", len(folders), ", ".join(folders))
        return metrics
    _, metrics = train_rdrec(model_args, data_args, training_args)
    return metrics
