"""SASRec (Kang & McAuley, ICDM 2018) as a model of its own: configuration, model (RecBole's protocol:
``calculate_loss``, ``predict``, ``full_sort_predict``), and one fit with early stopping and a cache."""

from transformers import AutoConfig, AutoModel

from .configuration_sasrec import SASRecConfig
from .modeling_sasrec import PADDING_INDEX, SASRecModel, left_pad
from .training_sasrec import (
    SASREC_WEIGHTS_FILE,
    SASRecTrainingConfig,
    TrainingSummary,
    fit_sasrec,
    leave_one_out_parts,
    length_bucketed_batches,
    train_sasrec,
)

AutoConfig.register(SASRecConfig.model_type, SASRecConfig, exist_ok=True)
AutoModel.register(SASRecConfig, SASRecModel, exist_ok=True)

__all__ = [
    "PADDING_INDEX",
    "SASREC_WEIGHTS_FILE",
    "SASRecConfig",
    "SASRecModel",
    "SASRecTrainingConfig",
    "TrainingSummary",
    "fit_sasrec",
    "leave_one_out_parts",
    "left_pad",
    "length_bucketed_batches",
    "train_sasrec",
]
