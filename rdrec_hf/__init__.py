"""rdrec-hf: RDRec (rationale distillation for LLM-based recommendation) for the Hugging Face ecosystem.

Each layer adds its public names in its own section below.
"""

__version__ = "0.1.0"

from .paths import shared_dir
from .tasks import Task

__all__ = ["Task", "shared_dir", "__version__"]

# --- models ---
from .models import (
    ITEM_INDEX_FILE,
    SIZE_PRESETS,
    ItemGenerationOutput,
    ItemIdScheme,
    ItemIndex,
    ItemIndexing,
    RDRecConfig,
    RDRecForConditionalGeneration,
    rdrec_lora_config,
)

__all__ += [
    "ITEM_INDEX_FILE",
    "SIZE_PRESETS",
    "ItemGenerationOutput",
    "ItemIdScheme",
    "ItemIndex",
    "ItemIndexing",
    "RDRecConfig",
    "RDRecForConditionalGeneration",
    "rdrec_lora_config",
]

# --- data ---
from .data import (
    RDRecDataCollator,
    build_eval_dataset,
    build_training_dataset,
    load_amazon_reviews,
    load_p5_dataset,
    load_rec_dataset,
    load_tokenizer,
    save_rec_dataset,
)

__all__ += [
    "RDRecDataCollator",
    "build_eval_dataset",
    "build_training_dataset",
    "load_amazon_reviews",
    "load_p5_dataset",
    "load_rec_dataset",
    "load_tokenizer",
    "save_rec_dataset",
]

# --- teacher ---
from .teacher import (
    DistillationConfig,
    OpenAICompatibleTeacher,
    RationaleGenerator,
    TransformersTeacher,
    default_teacher_path,
    read_provenance,
)

__all__ += [
    "DistillationConfig",
    "OpenAICompatibleTeacher",
    "RationaleGenerator",
    "TransformersTeacher",
    "default_teacher_path",
    "read_provenance",
]

# --- evaluation ---
from .evaluation import (
    EvaluationConfig,
    aggregate_seeds,
    evaluate_model,
    load_metric,
    plot_training_curves,
    ranking_metrics,
    text_generation_metrics,
    write_report,
)

__all__ += [
    "EvaluationConfig",
    "aggregate_seeds",
    "evaluate_model",
    "load_metric",
    "plot_training_curves",
    "ranking_metrics",
    "text_generation_metrics",
    "write_report",
]

# --- training ---
from .training import DataArguments, ModelArguments, RDRecTrainer, RDRecTrainingArguments, train_rdrec

__all__ += ["DataArguments", "ModelArguments", "RDRecTrainer", "RDRecTrainingArguments", "train_rdrec"]
