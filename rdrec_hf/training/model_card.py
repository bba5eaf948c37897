"""The model card written beside every saved RDRec student (``hub_cards/model_card.md``, a Jinja template)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from datasets import DatasetDict
from huggingface_hub import ModelCard, ModelCardData

from ..paths import hub_card_template
from ..models.tasks import TASK_MIXTURE_ORDER, Task
from .rdrec_config import RDRecTrainingArguments

SPEED_SUFFIXES = ("_runtime", "_per_second")
# A task of transformers 5's pipelines (`text2text-generation` no longer is one): the student generates item
# ids and text from a prompt.
PIPELINE_TAG = "text-generation"
MODEL_CARD_TEMPLATE = hub_card_template("model_card.md")
# The data's terms, not the code's Apache-2.0: the weights are learnt from Amazon reviews (research use only).
DATA_LICENSE = json.loads(hub_card_template("data_license.json").read_text(encoding="utf-8"))


def latest_eval_metrics(log_history: Sequence[Mapping]) -> dict[str, float]:
    """The metrics of the last evaluation in a ``TrainerState.log_history`` (empty when none ran), without
    the speed figures."""
    for entry in reversed(log_history):
        metrics = {
            key: value for key, value in entry.items()
            if key.startswith("eval_") and not key.endswith(SPEED_SUFFIXES)
        }
        if metrics:
            return metrics
    return {}


def _format_metric(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def dataset_id(source: str) -> str:
    """How the card's ``datasets:`` names a training source: a Hub id as given, a local path by its name."""
    return source if not Path(source).exists() and source.count("/") == 1 else Path(source).name


def model_card_data(dataset_source: str | None, base_checkpoint: str | None, tags: Sequence[str] = ()) -> ModelCardData:
    """The card's metadata: a transformers 5 pipeline tag, the data's licence (not the code's) and the dataset."""
    return ModelCardData(
        library_name="transformers",
        pipeline_tag=PIPELINE_TAG,
        **DATA_LICENSE,
        datasets=[dataset_id(dataset_source)] if dataset_source else None,
        tags=list(tags),
        base_model=base_checkpoint if base_checkpoint and not Path(base_checkpoint).exists() else None,
    )


def _dataset_facts(rec_data: DatasetDict | None) -> dict:
    """Source, format, indexing, seed and counts from the dataset's metadata; an example user for the usage."""
    if rec_data is None:
        return {"dataset_source": None, "dataset_source_path": None, "indexing": None, "example_user": "1",
                "example_history": ["1"]}
    from ..data import get_metadata, training_history

    metadata = get_metadata(rec_data)
    first_user = rec_data["users"][0]
    return {
        "dataset_source": Path(metadata.source).name,
        "dataset_source_path": metadata.source,
        "dataset_format": metadata.source_format,
        "dataset_seed": metadata.seed,
        "indexing": metadata.indexing.value,
        "dataset_counts": ", ".join(f"{count:,} {name}" for name, count in metadata.counts.items()),
        "example_user": first_user["user_id"],
        "example_history": list(training_history(first_user["items"])),
    }


def render_model_card(
    model,
    args: RDRecTrainingArguments,
    rec_data: DatasetDict | None = None,
    tasks: Sequence[Task] | None = None,
    log_history: Sequence[Mapping] = (),
    tags: Sequence[str] = (),
    model_path: str | None = None,
    template_path: str | Path = MODEL_CARD_TEMPLATE,
) -> str:
    """Render the model card of a (possibly PEFT-wrapped) RDRec student being trained with ``args``.

    ``model_path`` is where readers load the model from (default: ``args.hub_model_id`` or ``args.output_dir``).
    """
    is_peft = hasattr(model, "peft_config")
    base = model.get_base_model() if is_peft else model
    config = base.config
    weights = args.task_weights
    trained = list(tasks) if tasks is not None else [task for task in TASK_MIXTURE_ORDER if weights[task] > 0]
    left_out = [task for task in TASK_MIXTURE_ORDER if weights[task] > 0 and task not in trained]
    base_checkpoint = config.name_or_path or None
    if is_peft:
        lora = model.peft_config["default"]
        fine_tuning = (
            f"LoRA r={lora.r}, alpha={lora.lora_alpha} on {', '.join(sorted(lora.target_modules))}; "
            f"{', '.join(lora.modules_to_save or [])} fully trained"
        )
    else:
        fine_tuning = "all weights"
    facts = _dataset_facts(rec_data)
    eval_metrics = [(name, _format_metric(value)) for name, value in sorted(latest_eval_metrics(log_history).items())]
    item_index = getattr(base, "item_index", None)
    card_data = model_card_data(facts["dataset_source_path"], base_checkpoint, tags)
    card = ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=Path(args.hub_model_id or args.output_dir).name,
        model_path=model_path or args.hub_model_id or args.output_dir,
        base_model_path=base_checkpoint or "",
        started_from=f"`{base_checkpoint}`" if base_checkpoint else "random initialisation (size preset)",
        is_peft=is_peft,
        fine_tuning=fine_tuning,
        d_model=config.d_model,
        num_layers=config.num_layers,
        num_decoder_layers=config.num_decoder_layers,
        num_heads=config.num_heads,
        d_ff=config.d_ff,
        prompts_per_task=config.prompts_per_task,
        num_parameters=f"{sum(p.numel() for p in base.parameters()):,}",
        num_trainable_parameters=f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,}",
        num_catalog_items=len(item_index) if item_index is not None else 0,
        tasks_text=", ".join(task.name.lower() for task in trained) or "no task",
        tasks_left_out=", ".join(task.name.lower() for task in left_out),
        task_mixture=args.task_mixture,
        task_mixture_mode=args.task_mixture_mode.value,
        epochs=f"{max((entry.get('epoch', 0) for entry in log_history), default=0):.3g}",
        global_step=max((entry.get("step", 0) for entry in log_history), default=0),
        learning_rate=args.learning_rate,
        train_batch_size=args.per_device_train_batch_size,
        seed=args.seed,
        max_source_length=args.max_source_length,
        max_target_length=args.max_target_length,
        rank_eval_max_users=args.rank_eval_max_users,
        has_rank_metrics=any("_hr@" in name for name, _ in eval_metrics),
        eval_metrics=eval_metrics,
        **{**facts, "example_history": json.dumps(facts["example_history"])},
    )
    return str(card)
