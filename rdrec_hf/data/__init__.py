"""Data layer: loaders into one dataset schema, item indexing, leave-one-out splits, the four RDRec task
builders, whole-word ids and the collator. See :mod:`rdrec_hf.data.schema` for the schema and metadata."""

from .amazon import choose_explanation, load_amazon_reviews
from .builders import MixtureMode, SegmentStart, build_eval_dataset, build_training_dataset, mixture_draws, sample_users
from .mixture import TrainingMixture, epoch_seed
from .collator import RDRecDataCollator
from .loading import DataArguments, load_training_data
from .p5 import load_p5_dataset
from .schema import (
    DataFormatError,
    RecDatasetMetadata,
    check_numbering,
    get_metadata,
    item_id_scheme,
    numbering_of,
    split_target,
    training_history,
    validate_rec_dataset,
)
from .sources import SourceFormat, detect_source_format, load_source
from .storage import export_hub_folder, load_rec_dataset, push_rec_dataset, save_rec_dataset, upload_hub_folder
from ..models.prompting import encode_prompts, prompt_for, whole_word_ids
from ..models.tasks import RationaleKind
from .tokenization import load_tokenizer

__all__ = [
    "DataArguments",
    "DataFormatError",
    "MixtureMode",
    "SegmentStart",
    "TrainingMixture",
    "epoch_seed",
    "RDRecDataCollator",
    "RationaleKind",
    "RecDatasetMetadata",
    "build_eval_dataset",
    "SourceFormat",
    "build_training_dataset",
    "check_numbering",
    "choose_explanation",
    "detect_source_format",
    "encode_prompts",
    "export_hub_folder",
    "get_metadata",
    "item_id_scheme",
    "load_amazon_reviews",
    "load_p5_dataset",
    "load_rec_dataset",
    "load_source",
    "load_tokenizer",
    "load_training_data",
    "mixture_draws",
    "numbering_of",
    "prompt_for",
    "push_rec_dataset",
    "sample_users",
    "save_rec_dataset",
    "split_target",
    "training_history",
    "upload_hub_folder",
    "validate_rec_dataset",
    "whole_word_ids",
]
