"""rdrec-hf: RDRec (rationale distillation for LLM-based recommendation) for the Hugging Face ecosystem.

Each layer adds its public names in its own section below. The model layer is imported at once (it registers the
``rdrec`` model type with the Auto classes); the data, teacher, evaluation and training layers when one of their
names is first used (PEP 562), so ``import rdrec_hf`` and the ``rdrec-hf`` command do not load datasets, PEFT,
TRL and the teacher's stack up front.
"""

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .paths import shared_dir
from .models.tasks import Task

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
]

# --- LoRA, data, teacher, evaluation, training: imported on first use ---
_LAZY_NAMES = {
    "data": (
        "RDRecDataCollator",
        "build_eval_dataset",
        "build_training_dataset",
        "load_amazon_reviews",
        "load_p5_dataset",
        "load_rec_dataset",
        "load_tokenizer",
        "save_rec_dataset",
    ),
    "teacher": (
        "DistillationConfig",
        "OpenAICompatibleTeacher",
        "RationaleGenerator",
        "TransformersTeacher",
        "default_teacher_path",
        "read_provenance",
    ),
    "evaluation": (
        "EvaluationConfig",
        "aggregate_seeds",
        "evaluate_model",
        "load_metric",
        "plot_training_curves",
        "ranking_metrics",
        "text_generation_metrics",
        "write_report",
    ),
    "training": (
        "DataArguments",
        "ModelArguments",
        "RDRecTrainer",
        "RDRecTrainingArguments",
        "rdrec_lora_config",
        "train_rdrec",
    ),
}
_MODULE_OF = {name: module for module, names in _LAZY_NAMES.items() for name in names}
__all__ += list(_MODULE_OF)

if TYPE_CHECKING:
    from .data import (  # noqa: F401
        RDRecDataCollator,
        build_eval_dataset,
        build_training_dataset,
        load_amazon_reviews,
        load_p5_dataset,
        load_rec_dataset,
        load_tokenizer,
        save_rec_dataset,
    )
    from .teacher import (  # noqa: F401
        DistillationConfig,
        OpenAICompatibleTeacher,
        RationaleGenerator,
        TransformersTeacher,
        default_teacher_path,
        read_provenance,
    )
    from .evaluation import (  # noqa: F401
        EvaluationConfig,
        aggregate_seeds,
        evaluate_model,
        load_metric,
        plot_training_curves,
        ranking_metrics,
        text_generation_metrics,
        write_report,
    )
    from .training import (  # noqa: F401
        DataArguments,
        ModelArguments,
        RDRecTrainer,
        RDRecTrainingArguments,
        rdrec_lora_config,
        train_rdrec,
    )


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value  # later uses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
