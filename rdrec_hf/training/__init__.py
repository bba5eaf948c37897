"""Training layer (TRL style): argument dataclasses beside ``RDRecTrainer``, the student builder and
``train_rdrec``, the one entry point of recipes and the CLI."""

from .model_card import render_model_card
from .pipeline import build_trainer, load_training_data, seed_run_dir, train_rdrec, train_rdrec_seeds
from .rdrec_config import (
    Bnb4bitQuantType,
    DataArguments,
    ModelArguments,
    RankingSoftmax,
    RDRecTrainingArguments,
    parse_config_overrides,
    parse_task_mixture,
)
from .rdrec_trainer import RDRecTrainer, mean_task_losses, per_example_loss, task_loss_totals
from .resampling import EpochResampledDataset, SetEpochCallback, epoch_seed
from .student import build_student, load_student_tokenizer

__all__ = [
    "Bnb4bitQuantType",
    "DataArguments",
    "EpochResampledDataset",
    "ModelArguments",
    "RankingSoftmax",
    "RDRecTrainer",
    "RDRecTrainingArguments",
    "SetEpochCallback",
    "build_student",
    "build_trainer",
    "epoch_seed",
    "load_student_tokenizer",
    "load_training_data",
    "mean_task_losses",
    "parse_config_overrides",
    "parse_task_mixture",
    "per_example_loss",
    "render_model_card",
    "seed_run_dir",
    "task_loss_totals",
    "train_rdrec",
    "train_rdrec_seeds",
]
