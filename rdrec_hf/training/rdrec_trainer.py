"""``RDRecTrainer``: a ``Seq2SeqTrainer`` for the four-task mixture of RDRec.

What it adds (everything else is the parent's, reached through ``super()``):

- the loss of every task, logged at each logging step as ``loss_<task>`` (training) and at each
  evaluation as ``eval_loss_<task>`` with their mean ``eval_mean_task_loss`` (the early-stopping metric of
  the paper);
- ``steps_per_second`` at each logging step: the rate since the previous one (steady, after any compilation);
- ``ranking_softmax: sampled``: in training, the ranking targets against negatives drawn once per step for the
  whole batch (seeded from ``args.seed``), logQ-corrected, as the model's ``output_token_log_q``; in evaluation,
  the catalog softmax;
- ``sparse_embedding_gradients``: row-sparse embedding gradients, ``LazyRowAdamW`` and a clipping that takes them;
- ranking metrics of validation users (HR@k, NDCG@k of sequential and top-N) at each evaluation when
  ``args.rank_eval`` and a project dataset are given;
- a model card (``hub_cards/model_card.md``) and the item catalog written beside every saved model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import SequentialSampler
from datasets import DatasetDict
from transformers import EarlyStoppingCallback, Seq2SeqTrainer
from transformers.trainer import TRAINING_ARGS_NAME

from ..data import MixtureMode, RDRecDataCollator, TrainingMixture
from ..models.modeling_rdrec import draw_shared_negatives
from ..models.tasks import NUM_TASKS, RANKING_TASKS, Task
from .model_card import render_model_card
from .rdrec_config import MEAN_TASK_LOSS, EarlyStoppingCount, RankingSoftmax, RDRecTrainingArguments, SampledNegatives
from .optimization import LazyRowAdamW, clip_grad_norm_
from .callbacks import CumulativeEarlyStoppingCallback, SetEpochCallback, TimeBudgetCallback
from .resampling import EpochLengthGroupedSampler

logger = logging.getLogger(__name__)


TRAIN, EVAL = "train", "eval"
TRAINING_ARGS_JSON = "training_args.json"


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean token cross-entropy of each example.

    Args:
        logits: ``[B, T, V]`` decoder logits.
        labels: ``[B, T]`` target tokens, ``ignore_index`` on padding.
    Returns:
        ``[B]`` float32 losses; 0 for an example without any target token.
    """
    token_losses = F.cross_entropy(
        logits.float().transpose(1, 2), labels, ignore_index=ignore_index, reduction="none"
    )  # [B, T], 0 on ignored positions
    return mean_over_targets(token_losses, labels, ignore_index)


def mean_over_targets(token_losses: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """``[B]`` mean of each example's ``[B, T]`` token losses over its target tokens (0 without any)."""
    return token_losses.sum(dim=1) / (labels != ignore_index).sum(dim=1).clamp(min=1)


def task_loss_totals(
    example_losses: torch.Tensor, task_id: torch.Tensor, has_target: torch.Tensor, num_tasks: int = NUM_TASKS
) -> torch.Tensor:
    """Sum and count of example losses per task.

    Args:
        example_losses: ``[B]`` per-example losses. task_id: ``[B]`` task of each example.
        has_target: ``[B]`` bool, False for examples without target tokens (left out of both rows).
    Returns:
        ``[2, num_tasks]`` float64: row 0 the loss sums, row 1 the example counts.
    """
    weights = has_target.double()
    sums = torch.zeros(num_tasks, dtype=torch.float64, device=example_losses.device)
    counts = torch.zeros(num_tasks, dtype=torch.float64, device=example_losses.device)
    sums.index_add_(0, task_id, example_losses.double() * weights)
    counts.index_add_(0, task_id, weights)
    return torch.stack([sums, counts])


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """Knowledge-distillation loss of each example: ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``.

    Args:
        student_logits / teacher_logits: ``[B, N]`` scores of the same N classes.
        mask: ``[B, N]`` bool, the classes of each row's distributions (both renormalised over them; at least one
            per row); None: all.
    Returns:
        ``[B]`` float32 (the ``T^2`` keeps its gradient on the scale of a cross-entropy's).
    """
    student_logits, teacher_logits = student_logits.float() / temperature, teacher_logits.float() / temperature
    if mask is not None:
        student_logits = student_logits.masked_fill(~mask, float("-inf"))
        teacher_logits = teacher_logits.masked_fill(~mask, float("-inf"))
    student = F.log_softmax(student_logits, dim=-1)
    teacher = F.log_softmax(teacher_logits, dim=-1)
    terms = teacher.exp() * (teacher - student)
    if mask is not None:  # 0 * (-inf - -inf) is NaN outside the mask
        terms = terms.masked_fill(~mask, 0.0)
    return terms.sum(dim=-1) * temperature**2


def popularity_distribution(counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """``[N]`` float64 sampling distribution proportional to ``(counts + 1) ** alpha`` (alpha 0: uniform)."""
    weights = (counts.double() + 1.0) ** alpha
    return weights / weights.sum()


def mean_task_losses(totals: torch.Tensor) -> dict[Task, float]:
    """``{task: mean loss}`` from ``[2, num_tasks]`` totals, for the tasks with at least one example."""
    return {
        Task(task): float(totals[0, task] / totals[1, task]) for task in range(totals.shape[1]) if totals[1, task] > 0
    }


class RDRecTrainer(Seq2SeqTrainer):
    """``Seq2SeqTrainer`` for the RDRec student (see the module docstring).

    Args:
        model: an ``RDRecForConditionalGeneration`` (or a PEFT model wrapping one) whose ``item_index`` is set
            when ranking metrics are wanted.
        args: ``RDRecTrainingArguments``.
        data_collator: default ``RDRecDataCollator`` with the tokenizer's pad id.
        train_dataset / eval_dataset: tokenised examples with a ``task_id`` column (``build_training_dataset``
            / ``build_eval_dataset`` of ``rdrec_hf.data``); the eval set mixes all tasks' validation examples.
            A train dataset with ``set_epoch`` (``TrainingMixture``) is told each epoch that starts.
        processing_class: the tokenizer (saved with the model, used by the ranking evaluation).
        rec_data: the project dataset (``users``, ``items``, ...): validation users for ranking metrics and
            dataset facts for the model card.
        tasks: the tasks actually trained (``build_training_dataset``'s second result), for the model card.
        start_seconds: ``{"wall": s, "cpu": s}`` spent before training on the model's start (an item start), which
            the benchmark budgets (``benchmark_wall_minutes`` / ``benchmark_cpu_minutes``) count.
        recommender_teacher: a trained ``SASRecModel`` over the catalog positions (the `sasrec` item start) that
            ``recommender_distillation_weight`` distils into the sequential task; the default collator then
            also hands over each prompt's history (``history_items``).
        other keyword arguments: as ``Seq2SeqTrainer``.
    """

    _tag_names = ["rdrec", "recommendation", "rdrec-hf"]

    def __init__(
        self,
        model=None,
        args: RDRecTrainingArguments | None = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        rec_data: DatasetDict | None = None,
        tasks: Sequence[Task] | None = None,
        callbacks=None,
        start_seconds: Mapping[str, float] | None = None,
        recommender_teacher: torch.nn.Module | None = None,
        **kwargs,
    ):
        if args is None:
            raise ValueError("RDRecTrainer needs RDRecTrainingArguments (args=...)")
        if not isinstance(args, RDRecTrainingArguments):
            raise TypeError(f"args must be RDRecTrainingArguments, got {type(args).__name__}")
        distilling = args.recommender_distillation_weight > 0
        if distilling and recommender_teacher is None:
            raise ValueError("recommender_distillation_weight > 0 needs a recommender_teacher (item_embedding_init: sasrec)")
        if data_collator is None:
            pad_token_id = processing_class.pad_token_id if processing_class is not None else 0
            data_collator = RDRecDataCollator(pad_token_id=pad_token_id, pad_to_multiple_of=args.pad_to_multiple_of,
                                              history_items=distilling)
        if distilling and not getattr(data_collator, "history_items", False):
            raise ValueError("recommender distillation reads each prompt's history: the collator needs history_items=True")
        callbacks = [*(callbacks or []), SetEpochCallback()]
        if args.early_stopping_patience is not None:
            stopping = (CumulativeEarlyStoppingCallback if args.early_stopping_count is EarlyStoppingCount.CUMULATIVE
                        else EarlyStoppingCallback)
            callbacks.append(stopping(early_stopping_patience=args.early_stopping_patience))
        start_seconds = {"wall": 0.0, "cpu": 0.0, **(start_seconds or {})}
        if args.benchmark_wall_minutes is not None:
            callbacks.append(TimeBudgetCallback(args.benchmark_wall_minutes, spent_seconds=start_seconds["wall"]))
        if args.benchmark_cpu_minutes is not None:
            callbacks.append(TimeBudgetCallback(args.benchmark_cpu_minutes, time.process_time, "benchmark_cpu_minutes",
                                                start_seconds["cpu"]))
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            **kwargs,
        )
        # The model's forward takes **kwargs, so the parent assumes it normalises its loss by
        # `num_items_in_batch`; T5's loss is a per-batch token mean, which the parent must average over
        # accumulation steps (and not multiply by the number of processes).
        self.model_accepts_loss_kwargs = False
        self.rec_data = rec_data
        self.start_seconds = start_seconds
        self.tasks = [Task.parse(task) for task in tasks] if tasks is not None else None
        self._task_loss_totals = {mode: torch.zeros(2, NUM_TASKS, dtype=torch.float64) for mode in (TRAIN, EVAL)}
        self._rate_mark: tuple[int, float] | None = None  # (global step, perf_counter) of the last periodic log
        sampled = args.ranking_softmax is RankingSoftmax.SAMPLED
        self._catalog_token_ids = (self._catalog_softmax_tokens(f"ranking_softmax={args.ranking_softmax.value}")
                                   if args.ranking_softmax in (RankingSoftmax.CATALOG, RankingSoftmax.SAMPLED) else None)
        # `sampled`: training steps draw shared negatives (evaluation keeps the catalog softmax above).
        self._negative_generator = self._negative_probabilities = None
        if sampled:
            self._negative_probabilities = self._sampling_distribution(rec_data)
            self._negative_generator = torch.Generator().manual_seed(args.seed)
        # With text tasks in the mixture each row keeps its own softmax (ranking: the item tokens, text: the
        # vocabulary); decided once, not by parsing the mixture every step.
        self._per_row_softmax = self._catalog_token_ids is not None and args.has_text_tasks
        if args.sparse_embedding_gradients:
            self._use_sparse_embedding_gradients()
        self._ranking_task_ids = torch.tensor([int(task) for task in RANKING_TASKS])
        self._distilled_task_ids = torch.tensor([int(Task.SEQUENTIAL)] + ([int(Task.TOPN)] if args.distill_topn else []))
        self.recommender_teacher = None
        if distilling:  # teacher column p + 1 is catalog position p; the student's are token-sorted
            device = self.args.device
            self.recommender_teacher = recommender_teacher.eval().requires_grad_(False).to(device)
            self._distilled_token_ids = self._catalog_softmax_tokens("recommender_distillation_weight > 0")
            tokens = torch.tensor([token_ids[0] for token_ids in self._base_model().item_index.token_ids])
            self._teacher_column_of_student = (torch.searchsorted(self._distilled_token_ids, tokens).argsort() + 1).to(device)
            self._distilled_token_ids = self._distilled_token_ids.to(device)

    def _use_sparse_embedding_gradients(self) -> None:
        """`sparse_embedding_gradients`: refuses what would make the gradient dense or cannot take a sparse one."""
        if self._per_row_softmax:
            raise ValueError("sparse_embedding_gradients needs a mixture of ranking tasks only: the text targets' "
                             "softmax over the vocabulary reads every embedding row")
        if self.accelerator.num_processes > 1:
            raise ValueError("sparse_embedding_gradients runs in one process (DDP reduces dense gradients)")
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
        if optimizer_cls is not torch.optim.AdamW:
            raise ValueError(f"sparse_embedding_gradients needs optim adamw_torch or adamw_torch_fused, got "
                             f"{self.args.optim}")
        self.optimizer_cls_and_kwargs = (LazyRowAdamW, optimizer_kwargs)
        self.model.set_sparse_embedding_gradients(True)

    def _clip_grad_norm(self, model):
        """The parent's clipping, or with sparse embedding gradients one that takes them (the parent's cannot)."""
        if not self.args.sparse_embedding_gradients:
            return super()._clip_grad_norm(model)
        return clip_grad_norm_(model.parameters(), self.args.max_grad_norm)

    def _get_grad_norm(self, model, grad_norm=None):
        if grad_norm is None and self.args.sparse_embedding_gradients:  # max_grad_norm 0: measured, not clipped
            grad_norm = clip_grad_norm_(model.parameters(), float("inf"))
        return super()._get_grad_norm(model, grad_norm)

    def _sampling_distribution(self, rec_data: DatasetDict | None) -> torch.Tensor | None:
        """The distribution of `ranking_softmax: sampled`'s negatives over the token-sorted catalog columns (None:
        uniform); rejects more negatives than items."""
        args, catalog = self.args, self._catalog_token_ids
        if args.sampled_softmax_negatives > catalog.numel():
            raise ValueError(f"sampled_softmax_negatives={args.sampled_softmax_negatives} exceeds the catalog's "
                             f"{catalog.numel()} items; use ranking_softmax=catalog for a catalog this small")
        if args.sampled_softmax_distribution is SampledNegatives.UNIFORM:
            return None
        if rec_data is None:
            raise ValueError("sampled_softmax_distribution=popularity counts the training interactions: pass rec_data")
        item_index = self.model.item_index
        counts = torch.zeros(catalog.numel(), dtype=torch.long)
        positions = [item_index.position[item] for items in rec_data["users"]["items"] for item in items[:-2]
                     if item in item_index.position]
        if positions:
            tokens = torch.tensor([item_index.token_ids[position][0] for position in positions])
            counts.index_add_(0, torch.searchsorted(catalog, tokens), torch.ones_like(tokens))
        return popularity_distribution(counts, args.sampled_softmax_alpha)

    def _sampled_softmax_inputs(self, labels: torch.LongTensor, ranking_rows: torch.Tensor | None) -> dict:
        """One training step's `output_token_ids` (the ranking rows' targets and the shared negatives, ascending)
        with their logQ corrections as negatives (+inf for a target that was not drawn) and as targets."""
        catalog = self._catalog_token_ids
        num_items, num_draws = catalog.numel(), self.args.sampled_softmax_negatives
        drawn, negative_log_q = draw_shared_negatives(num_items, num_draws, self._negative_generator,
                                                      self._negative_probabilities)
        targets = labels if ranking_rows is None else labels[ranking_rows]
        target_tokens = targets[targets != -100].unique().cpu()
        columns = torch.cat([drawn, torch.searchsorted(catalog, target_tokens)]).unique()  # catalog columns
        output_log_q = torch.full((columns.numel(),), float("inf"))
        output_log_q[torch.searchsorted(columns, drawn)] = negative_log_q
        q = (torch.full((columns.numel(),), 1.0 / num_items, dtype=torch.float64) if self._negative_probabilities is None
             else self._negative_probabilities[columns])
        device = labels.device
        return {"output_token_ids": catalog[columns].to(device), "output_token_log_q": output_log_q.to(device),
                "output_token_target_log_q": torch.log(num_draws * q).float().to(device)}

    def _catalog_softmax_tokens(self, option: str = "ranking_softmax=catalog") -> torch.LongTensor:
        """The ascending item-token ids the `catalog` softmax keeps (one token per item); errors name ``option``."""
        if self._base_model() is not self.model:
            raise ValueError(f"{option} needs a fully fine-tuned student, not a PEFT adapter")
        item_index = getattr(self.model, "item_index", None)
        if item_index is None or not item_index.is_single_token:
            raise ValueError(
                f"{option} needs one-token item ids (indexing: independent); "
                f"this student's catalog is {item_index!r}"
            )
        return torch.tensor(sorted(tokens[0] for tokens in item_index.token_ids))

    def _get_train_sampler(self, train_dataset=None):
        """The builder's order for a mixture of batch shares (it already spreads the tasks over the batches);
        otherwise the parent's sampler, where grouping by length follows each epoch's draw of a resampled
        mixture (the parent would measure epoch 0's lengths once)."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.task_mixture_mode is MixtureMode.BATCH_SHARES:
            return SequentialSampler(dataset)
        if self.args.train_sampling_strategy == "group_by_length" and isinstance(dataset, TrainingMixture):
            return EpochLengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps, dataset
            )
        return super()._get_train_sampler(train_dataset)

    def get_decay_parameter_names(self, model) -> list[str]:
        """Every parameter with `weight_decay_all_parameters` (the paper's AdamW); else the parent's rule."""
        if self.args.weight_decay_all_parameters:
            return [name for name, _ in model.named_parameters()]
        return super().get_decay_parameter_names(model)

    # ------------------------------------------------------------------------------------ per-task loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The parent's loss; besides, accumulates each task's per-example losses for logging."""
        labels, task_id = inputs["labels"], inputs["task_id"]
        history_items = inputs.pop("history_items", None)  # the teacher's input, not the student's
        sampling = self._negative_generator is not None and model.training
        if self._catalog_token_ids is not None:  # ranking targets over the item tokens only
            inputs = {**inputs, "output_token_ids": self._catalog_token_ids.to(labels.device)}
            ranking_rows = None
            if self._per_row_softmax:  # text targets over the vocabulary
                ranking_rows = torch.isin(task_id, self._ranking_task_ids.to(task_id.device))
                inputs["output_token_rows"] = ranking_rows
                inputs["other_rows_exclude_output_tokens"] = self.args.text_softmax_excludes_items
            if sampling:  # over the targets and the step's shared negatives instead
                inputs.update(self._sampled_softmax_inputs(labels, ranking_rows))
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if self.recommender_teacher is not None and history_items is not None:
            weight = self.args.recommender_distillation_weight
            distillation = 0.0  # a batch of text rows alone has no history column (a Python int: no host read)
            if history_items.shape[1] > 0:
                student_logits = outputs.logits[:, 0]  # the first target token
                distilled = torch.isin(task_id, self._distilled_task_ids.to(task_id.device))
                if sampling:  # over the step's negatives and each row's target
                    tokens = inputs["output_token_ids"]
                    subset = inputs["output_token_log_q"].isfinite()[None, :] | (tokens[None, :] == labels[:, :1])
                    distillation = self._distillation_loss(student_logits, history_items, distilled, tokens, subset)
                else:
                    if self._catalog_token_ids is None:  # vocabulary logits
                        student_logits = student_logits[:, self._distilled_token_ids]
                    distillation = self._distillation_loss(student_logits, history_items, distilled)
            loss = (1 - weight) * loss + weight * distillation
        with torch.no_grad():  # the catalog forward returns its token losses: no second softmax over the logits
            token_losses = getattr(outputs, "token_losses", None)
            example_losses = (per_example_loss(outputs.logits.detach(), labels) if token_losses is None
                              else mean_over_targets(token_losses.detach().float(), labels))
            totals = task_loss_totals(example_losses, task_id, (labels != -100).any(dim=1))
        mode = TRAIN if model.training else EVAL  # kept on the device: no host synchronisation per step
        self._task_loss_totals[mode] = self._task_loss_totals[mode].to(totals.device) + totals
        return (loss, outputs) if return_outputs else loss

    def _distillation_loss(self, student_logits: torch.Tensor, history_items: torch.Tensor,
                           distilled: torch.Tensor | None = None, token_ids: torch.Tensor | None = None,
                           subset: torch.Tensor | None = None) -> torch.Tensor:
        """Mean `distillation_loss` over the ``distilled`` examples with a history, 0 without any.

        Args:
            student_logits: ``[B, N]`` catalog logits of the first target token (with ``token_ids``: the logits of
                those ``[N]`` ascending item tokens, the teacher then scoring only them; ``subset`` ``[B, N]`` bool:
                the columns of each row's distributions).
            history_items: ``[B, H]`` catalog positions + 1, left-padded with 0 (all 0: no history): a sequential
                prompt's listed history, a top-N prompt's user's training items.
            distilled: ``[B]`` bool, the rows of the distilled tasks (sequential; top-N with ``distill_topn``);
                None: every row with a history.
        """
        with torch.no_grad():
            hidden = self.recommender_teacher(history_items)[:, -1]
            if token_ids is None:
                teacher_logits = self.recommender_teacher.item_scores(hidden)[:, self._teacher_column_of_student]
            else:  # only the scored items' columns: no [B, catalog] scores
                student_columns = torch.searchsorted(self._distilled_token_ids, token_ids)
                weights = self.recommender_teacher.item_embeddings.weight[self._teacher_column_of_student[student_columns]]
                teacher_logits = hidden @ weights.T
        has_history = history_items[:, -1] > 0  # left-padded: a history ends in the last column
        if distilled is not None:
            has_history = has_history & distilled
        per_example = distillation_loss(student_logits, teacher_logits, self.args.recommender_distillation_temperature,
                                        subset)
        return (per_example * has_history).sum() / has_history.sum().clamp(min=1)  # no host read of the count

    def _pop_task_losses(self, mode: str) -> dict[Task, float]:
        """Mean loss per task since the last call, over all processes; resets the totals of ``mode``."""
        totals = self._task_loss_totals[mode]
        if self.accelerator.num_processes > 1:
            totals = self.accelerator.reduce(totals.to(self.accelerator.device), reduction="sum")
        self._task_loss_totals[mode] = torch.zeros_like(self._task_loss_totals[mode])
        return mean_task_losses(totals.cpu())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a periodic training log (the end-of-training summary has "train_loss" instead)
            task_losses = {f"loss_{task.name.lower()}": value for task, value in self._pop_task_losses(TRAIN).items()}
            logs = {**logs, **task_losses, **self._step_rate()}
        super().log(logs, start_time)

    def _step_rate(self) -> dict[str, float]:
        """``{"steps_per_second": r}``: optimizer steps per wall second since the previous periodic log (evaluations
        in between included), none at a training's first. The steady rate, which the end-of-training
        ``train_steps_per_second`` blurs with start-up and compilation."""
        step, now = self.state.global_step, time.perf_counter()
        mark, self._rate_mark = self._rate_mark, (step, now)
        if mark is None or step <= mark[0]:  # the first log, or a new training on this trainer
            return {}
        return {"steps_per_second": round((step - mark[0]) / (now - mark[1]), 3)}

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        """The parent's loop, plus ``<prefix>_loss_<task>``, ``<prefix>_mean_task_loss`` and ranking metrics."""
        self._task_loss_totals[EVAL].zero_()
        output = super().evaluation_loop(
            dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
        )
        task_losses = self._pop_task_losses(EVAL)
        for task, value in task_losses.items():
            output.metrics[f"{metric_key_prefix}_loss_{task.name.lower()}"] = value
        if task_losses:
            output.metrics[f"{metric_key_prefix}_{MEAN_TASK_LOSS}"] = sum(task_losses.values()) / len(task_losses)
        # Ranking metrics are of the validation users: only for evaluations, not for `predict` ("test_").
        if self.args.rank_eval and self.rec_data is not None and metric_key_prefix.startswith("eval"):
            for name, value in self.ranking_metrics().items():
                output.metrics[f"{metric_key_prefix}_{name}"] = value
        return output

    # ------------------------------------------------------------------------------------ ranking
    def ranking_metrics(self) -> dict[str, float]:
        """HR@k / NDCG@k of sequential and top-N for a seeded sample of validation users, as
        ``{"<task>_<metric>": value}``. Runs on every process (a sharded model needs them all)."""
        from ..evaluation import EvaluationConfig, evaluate_model

        tasks = [task for task in RANKING_TASKS if self.tasks is None or task in self.tasks]
        if not tasks:
            return {}
        config = EvaluationConfig(
            tasks=[task.name.lower() for task in tasks],
            split="validation",
            num_beams=self.args.rank_eval_num_beams,
            batch_size=self.args.per_device_eval_batch_size,
            max_users=self.args.rank_eval_max_users,
            seed=self.args.seed,
            num_samples=0,
        )
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        try:
            results = evaluate_model(
                model, self.rec_data, self.processing_class, config,
                item_index=self._base_model().item_index, show_progress=False,
            )
        finally:
            model.train(was_training)
        return {
            f"{task_name}_{metric}": value
            for task_name, task_results in results.items()
            for metric, value in task_results["model"].items()
        }

    # ------------------------------------------------------------------------------------ saving
    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        """The parent's save (``save_pretrained``, safetensors), plus the item catalog of a PEFT model's base,
        the arguments as JSON and the model card, on the main process."""
        super()._save(output_dir, state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        # The parent pickles the arguments (training_args.bin); keep them as JSON instead (no pickle).
        Path(output_dir, TRAINING_ARGS_NAME).unlink(missing_ok=True)
        Path(output_dir, TRAINING_ARGS_JSON).write_text(self.args.to_json_string(), encoding="utf-8")
        base_model = self._base_model()
        if base_model is not self.accelerator.unwrap_model(self.model) and getattr(base_model, "item_index", None):
            base_model.item_index.save(output_dir)  # PeftModel.save_pretrained writes only the adapter
        self._write_model_card(output_dir)

    def _issue_warnings_after_load(self, load_result) -> None:
        """On resume, the tied copies of ``shared.weight`` (``encoder/decoder.embed_tokens``, ``lm_head``) are
        missing from the checkpoint by design (``save_pretrained`` drops tied weights): tie them again and
        leave only other missing keys to the parent's warning."""
        base_model = self._base_model()
        tied = set(getattr(base_model, "_tied_weights_keys", None) or ())
        missing = [key for key in load_result.missing_keys if key not in tied]
        if len(missing) < len(load_result.missing_keys):
            base_model.tie_weights()
        super()._issue_warnings_after_load(type(load_result)(missing, load_result.unexpected_keys))

    def create_model_card(self, *args, **kwargs) -> None:
        """Write the RDRec model card (``hub_cards/model_card.md``) as ``README.md`` in ``args.output_dir``;
        called by ``push_to_hub``. Arguments of the parent's card (language, tags, ...) are not used."""
        if self.is_world_process_zero():
            self._write_model_card(self.args.output_dir)

    def _base_model(self):
        model = self.accelerator.unwrap_model(self.model)
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    def _write_model_card(self, output_dir: str | Path) -> None:
        model = self.accelerator.unwrap_model(self.model)
        card = render_model_card(
            model=model,
            args=self.args,
            rec_data=self.rec_data,
            tasks=self.tasks,
            log_history=self.state.log_history,
            tags=self._tag_names,
        )
        Path(output_dir, "README.md").write_text(card, encoding="utf-8")

