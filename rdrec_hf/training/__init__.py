"""Training layer (TRL style): argument dataclasses beside ``RDRecTrainer``, the student builder and
``train_rdrec``, the one entry point of recipes and the CLI."""

from .model_card import render_model_card
from ..data.loading import DataArguments  # the data options of training (their home is the data layer)
from .pipeline import build_trainer, train_rdrec, train_rdrec_seeds
from .rdrec_config import (
    Bnb4bitQuantType,
    ModelArguments,
    RankingSoftmax,
    SampledNegatives,
    RDRecTrainingArguments,
    parse_config_overrides,
    parse_task_mixture,
)
from .rdrec_trainer import RDRecTrainer, mean_task_losses, per_example_loss, task_loss_totals
from .callbacks import SetEpochCallback
from .lora import rdrec_lora_config
from .optimization import LazyRowAdamW
from .student import build_student, load_student_tokenizer

__all__ = [
    "Bnb4bitQuantType",
    "DataArguments",
    "LazyRowAdamW",
    "ModelArguments",
    "RankingSoftmax",
    "SampledNegatives",
    "RDRecTrainer",
    "RDRecTrainingArguments",
    "SetEpochCallback",
    "build_student",
    "build_trainer",
    "load_student_tokenizer",
    "mean_task_losses",
    "parse_config_overrides",
    "parse_task_mixture",
    "per_example_loss",
    "rdrec_lora_config",
    "render_model_card",
    "task_loss_totals",
    "train_rdrec",
    "train_rdrec_seeds",
]
