"""``train_rdrec``: data -> tokenised task mixture -> student -> ``RDRecTrainer`` -> saved model and metrics.

The one training entry point: ``recipes/train.py`` and the ``rdrec-hf train`` command both call it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from datasets import DatasetDict, concatenate_datasets
from transformers.trainer_utils import IntervalStrategy

from ..data import (
    build_eval_dataset,
    build_training_dataset,
    check_numbering,
    item_id_scheme,
    numbering_of,
    training_history,
)
from ..models import ItemIndex
from ..models.tasks import Task, TaskKind
from ..paths import seed_run_dir
from ..data.collator import MODEL_COLUMNS
from ..data.loading import DataArguments, load_training_data
from .memory import available_memory_bytes, check_training_memory, sasrec_start_bytes, student_training_bytes
from .rdrec_config import ItemEmbeddingInit, ModelArguments, RankingSoftmax, RDRecTrainingArguments
from .checkpoints import resolve_checkpoint
from .rdrec_trainer import RDRecTrainer
from .student import build_student, describe_student, init_item_embeddings, load_student_tokenizer

logger = logging.getLogger(__name__)

SEEDS_METRICS_FILE = "seeds_metrics.json"


def build_validation_set(data: DatasetDict, tasks, tokenizer, training_args: RDRecTrainingArguments):
    """Validation examples of every trained task in one dataset (model columns only), for per-task losses.

    A task without validation examples in this data (e.g. a tiny slice without validation reviews) is left
    out with a logged notice.
    """
    parts = []
    for task in tasks:
        try:
            part = build_eval_dataset(
                data, task, "validation", tokenizer,
                max_source_length=training_args.max_source_length,
                max_target_length=training_args.max_target_length,
                max_examples=training_args.eval_max_examples_per_task,
                seed=training_args.seed,
            )
        except ValueError as error:
            logger.warning("no validation loss for task %s: %s", task.name.lower(), error)
            continue
        parts.append(part.select_columns(list(MODEL_COLUMNS)))
    if not parts:
        raise ValueError("no validation examples for any trained task: evaluation is impossible on this data")
    return concatenate_datasets(parts)


def check_text_tasks_have_data(training_args: RDRecTrainingArguments, tasks: Sequence[Task], dataset: str) -> None:
    """``ValueError`` naming the text tasks of the mixture that the dataset has no targets for, and the review
    columns they read; a ranking task without data (no user long enough) is left out with a warning."""
    wanted = [task for task, weight in training_args.task_weights.items() if weight > 0 and task not in tasks]
    text = [task for task in wanted if task.spec.kind is TaskKind.TEXT]
    if text:
        columns = sorted({prompt.target for task in text for prompt in task.spec.prompts})
        raise ValueError(
            f"task_mixture {training_args.task_mixture!r} trains {', '.join(task.name.lower() for task in text)}, but "
            f"dataset {dataset} has no training reviews with {', '.join(columns)} (rationales: from `rdrec-hf "
            "distill`); give a dataset with them, or set those ratios to 0 (explanation:sequential:rationale:top-N, "
            "e.g. 0:1:0:1)"
        )
    if wanted:
        logger.warning("left out of the mixture, no data for them in %s: %s", dataset,
                       ", ".join(task.name.lower() for task in wanted))


def training_memory_estimate(model, item_index, data: DatasetDict, model_args: ModelArguments,
                             training_args: RDRecTrainingArguments) -> dict[str, int]:
    """The dominant memory of a training step (`rdrec_hf.training.memory`) for this student, catalog and softmax,
    and of the SASRec start when there is one: checked before the start and the training run."""
    ranking_only = not training_args.has_text_tasks
    one_token_targets = ranking_only and item_index.is_single_token
    width = model.config.vocab_size  # the vocabulary softmax; text rows always have it
    if ranking_only and training_args.ranking_softmax is RankingSoftmax.CATALOG:
        width = len(item_index)
    elif ranking_only and training_args.ranking_softmax is RankingSoftmax.SAMPLED:
        width = min(training_args.sampled_softmax_negatives + training_args.per_device_train_batch_size, len(item_index))
    trainable = {name: parameter for name, parameter in model.named_parameters() if parameter.requires_grad}
    parts = student_training_bytes(
        sum(parameter.numel() for parameter in trainable.values()),
        sum(parameter.numel() for name, parameter in trainable.items() if name.endswith("shared.weight")),
        training_args.per_device_train_batch_size, 1 if one_token_targets else training_args.max_target_length,
        width, training_args.sparse_embedding_gradients,
    )
    if model_args.item_embedding_init is ItemEmbeddingInit.SASREC:
        training_lengths = [len(training_history(items)) for items in data["users"]["items"]]
        parts |= sasrec_start_bytes(len(item_index), model.config.d_model, training_lengths,
                                    model_args.item_embedding_init_negatives)
    return parts


def build_trainer(
    model_args: ModelArguments, data_args: DataArguments, training_args: RDRecTrainingArguments
) -> RDRecTrainer:
    """Load the data, build the task mixture and the student (with the catalog attached) and the trainer."""
    data = load_training_data(data_args)
    tokenizer = load_student_tokenizer(model_args)
    scheme = item_id_scheme(data)
    items = data["items"]
    added = scheme.add_tokens(tokenizer, items["item_id"])
    # The catalog sizes the student's vocabulary: the tokenizer's tokens, then the item tokens (arithmetic
    # independent ids run past the tokenizer, which holds their placeholder alone).
    item_index = ItemIndex.from_catalog(items["item_id"], tokenizer, original_ids=items["original_id"], scheme=scheme,
                                        numbering=numbering_of(data))  # fmt: skip
    if added:
        logger.info("%s item ids: %d tokens added to the tokenizer (%d in all), a vocabulary of %d",
                    scheme.indexing.value, added, len(tokenizer), item_index.vocab_size)

    train_dataset, tasks = build_training_dataset(
        data, tokenizer, training_args.task_weights,
        seed=training_args.seed,
        max_source_length=training_args.max_source_length,
        max_target_length=training_args.max_target_length,
        num_negatives=training_args.num_negatives,
        mode=training_args.task_mixture_mode,
        sequential_targets=training_args.sequential_targets,
        segment_start=training_args.segment_start,
        resample_each_epoch=training_args.resample_each_epoch,
    )
    check_text_tasks_have_data(training_args, tasks, data_args.dataset)
    eval_dataset = None
    if IntervalStrategy(training_args.eval_strategy) is not IntervalStrategy.NO or training_args.do_eval:
        with training_args.main_process_first(desc="building the validation set"):
            eval_dataset = build_validation_set(data, tasks, tokenizer, training_args)
    logger.info(
        "training on %d examples per epoch (%s)%s", len(train_dataset), ", ".join(t.name.lower() for t in tasks),
        f", validating on {eval_dataset.num_rows}" if eval_dataset is not None else "",
    )
    model = build_student(model_args, tokenizer, training_args.seed, training_args.gradient_checkpointing, item_index)
    base_model = model.get_base_model() if model_args.use_peft else model
    # A trained student goes on training: its ids must mean the same items (a fresh model has no catalog yet).
    check_numbering(base_model.item_index, data, f"checkpoint {model_args.model_name_or_path}",
                    f"dataset {data_args.dataset}")  # fmt: skip
    check_training_memory(training_memory_estimate(base_model, item_index, data, model_args, training_args),
                          available_memory_bytes(training_args.device), training_args.device)
    # The item start (a graph, a factorisation, a trained SASRec) is part of the recipe: a benchmark's budget counts it.
    wall, cpu = time.perf_counter(), time.process_time()
    recommender = None
    if model_args.item_embedding_init is not ItemEmbeddingInit.DEFAULT:
        recommender = init_item_embeddings(base_model, data, item_index, model_args.item_embedding_init,
                             training_args.seed, scale=model_args.item_embedding_init_scale,
                             sasrec_max_epochs=model_args.item_embedding_init_max_epochs,
                             sasrec_patience=model_args.item_embedding_init_patience,
                             sasrec_negatives=model_args.item_embedding_init_negatives, device=training_args.device)
    start_seconds = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    base_model.set_item_index(item_index)
    base_model.config.trained_tasks = [task.name.lower() for task in tasks]  # saved: what the student can answer
    logger.info(describe_student(model))
    return RDRecTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        rec_data=data,
        tasks=tasks,
        start_seconds=start_seconds,
        recommender_teacher=recommender if training_args.recommender_distillation_weight > 0 else None,
    )


def train_rdrec(
    model_args: ModelArguments, data_args: DataArguments, training_args: RDRecTrainingArguments
) -> tuple[RDRecTrainer, dict[str, float]]:
    """Train the RDRec student and save it (safetensors, catalog, tokenizer, model card) in ``output_dir``.

    Resumes as :func:`resolve_checkpoint` says: a rerun into an ``output_dir`` holding checkpoints goes on from
    the last complete one unless ``overwrite_output_dir``. Evaluates at the end when an eval strategy or ``do_eval`` is set, writes
    ``train_results.json`` (with ``item_start_runtime``, the item start's wall seconds, and ``train_cpu_runtime``,
    this process's CPU seconds of start and training) / ``eval_results.json``, ``trainer_state.json`` and a PNG of
    the loss curves. Pushes to the Hub when ``push_to_hub``. Returns the trainer and the train (and eval) metrics.
    """
    checkpoint = resolve_checkpoint(training_args)
    trainer = build_trainer(model_args, data_args, training_args)
    cpu_started = time.process_time()
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model()
    # What the budgets count: the item start's seconds, and the CPU seconds of start and training together.
    metrics = {**train_result.metrics, "item_start_runtime": trainer.start_seconds["wall"],
               "train_cpu_runtime": trainer.start_seconds["cpu"] + time.process_time() - cpu_started}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    if trainer.eval_dataset is not None:
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
        trainer.create_model_card()  # the card now shows the final evaluation
    if trainer.is_world_process_zero():
        from ..evaluation.report import TRAINING_CURVES_FILE, plot_training_curves

        plot_training_curves(trainer.state.log_history, Path(training_args.output_dir) / TRAINING_CURVES_FILE)
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="RDRec student trained with rdrec-hf")
    return trainer, metrics


def train_rdrec_seeds(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: RDRecTrainingArguments,
    seeds: Sequence[int],
) -> tuple[list[str], dict]:
    """``train_rdrec`` once per seed, each in ``<output_dir>/seed-<seed>`` (the paper averages runs because
    single runs fluctuate). The data (``data_args.dataset_seed``) stays the same across runs.

    Returns the run folders and the mean / spread of every metric (``aggregate_seeds``), also written to
    ``<output_dir>/seeds_metrics.json``.
    """
    from ..evaluation import aggregate_seeds

    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
    folders, runs = [], []
    for seed in seeds:
        folder = str(seed_run_dir(training_args.output_dir, seed))
        _, metrics = train_rdrec(model_args, data_args, replace(training_args, seed=seed, output_dir=folder))
        folders.append(folder)
        runs.append(metrics)
    aggregate = aggregate_seeds(runs)
    if training_args.should_save:
        summary = {"seeds": list(seeds), "runs": folders, "metrics": aggregate}
        Path(training_args.output_dir, SEEDS_METRICS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return folders, aggregate


__all__ = ["build_trainer", "check_text_tasks_have_data", "load_training_data", "seed_run_dir", "train_rdrec", "train_rdrec_seeds"]
