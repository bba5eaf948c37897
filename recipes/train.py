"""Train the RDRec student on the four-task mixture.

    accelerate launch --config_file recipes/accelerate_configs/ddp.yaml recipes/train.py \
        --config recipes/beauty/train/config_full.yaml [--any_option value ...]

Options come from `ModelArguments`, `DataArguments` and `RDRecTrainingArguments` (rdrec_hf.training); the
YAML given with `--config` sets them and the command line overrides the YAML. `--help` lists them all.
"""

from __future__ import annotations

import logging
import sys

import datasets
import transformers
from trl import TrlParser

from rdrec_hf.training import (
    DataArguments,
    ModelArguments,
    RDRecTrainingArguments,
    run_recipe,
    train_rdrec,
)

logger = logging.getLogger(__name__)


def make_parser() -> TrlParser:
    """The parser of this recipe's options (used by tests to check every YAML)."""
    return TrlParser((ModelArguments, DataArguments, RDRecTrainingArguments))


def main(model_args: ModelArguments, data_args: DataArguments, training_args: RDRecTrainingArguments) -> dict:
    """Train and save; returns the train (and eval) metrics."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", handlers=[logging.StreamHandler(sys.stdout)]
    )
    log_level = training_args.get_process_log_level()
    for library_logger in (logging.getLogger("rdrec_hf"), logger):
        library_logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    logger.info("model %s | data %s", model_args, data_args)
    _, metrics = train_rdrec(model_args, data_args, training_args)
    return metrics


if __name__ == "__main__":
    run_recipe(make_parser(), main)
