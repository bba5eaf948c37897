"""Arguments of RDRec training, in the style of TRL: dataclasses whose every field carries its help text.

``ModelArguments`` says which student to build (a checkpoint or a size preset, LoRA, quantisation),
``DataArguments`` which data to train on and ``RDRecTrainingArguments`` (a ``Seq2SeqTrainingArguments``)
how: the task mixture, length limits and the evaluation done during training. ``TrlParser`` turns them
into command-line options and reads YAML recipes with ``--config``.
"""

from __future__ import annotations

import ast
import logging
import os
from dataclasses import dataclass, field
from enum import Enum

import torch
from transformers import Seq2SeqTrainingArguments
from transformers.trainer_utils import IntervalStrategy

from ..models.sasrec import SASRecTrainingConfig
from ..data.builders import DEFAULT_MAX_TARGET_LENGTH, MixtureMode, SegmentStart
from .lora import DEFAULT_LORA_ALPHA, DEFAULT_LORA_DROPOUT, DEFAULT_LORA_R, DEFAULT_LORA_TARGET_MODULES
from ..models.item_decoding import DEFAULT_NUM_BEAMS
from ..models.prompting import DEFAULT_MAX_SOURCE_LENGTH
from ..models.tasks import RANKING_TASKS, TASK_MIXTURE_ORDER, Task

logger = logging.getLogger(__name__)

MEAN_TASK_LOSS = "mean_task_loss"
"""Name of the mean of the per-task validation losses (logged as ``eval_mean_task_loss``), the default
metric of early stopping and best-model selection, as the paper."""

class ItemEmbeddingInit(str, Enum):
    """How the embedding rows of new item tokens start."""

    DEFAULT = "default"  # the model's own rule (a preset: its normal init; a checkpoint: the resize's mean init)
    SVD = "svd"  # truncated SVD of the training user-item matrix (see `rdrec_hf.data.item_graph`)
    # Spectral embedding of the normalised graph of items bought within `TRANSITION_WINDOW` positions of each
    # other in the training sequences: the order's locality, popularity divided out.
    TRANSITIONS = "transitions"
    # The item embeddings of a SASRec trained on the training sequences to its best validation epoch: a sequential recommender's item space, as LLaRA / CoLLM start their
    # item tokens.
    SASREC = "sasrec"


class RankingSoftmax(str, Enum):
    """Over which tokens the loss of a ranking target normalises."""

    VOCABULARY = "vocabulary"  # the whole vocabulary, as T5 (and the paper)
    # Only the catalog's item tokens (one-token ids, independent). The ranking of items is the same (one softmax
    # constant per row); a mixture of ranking tasks only drops the 32,100 text rows from the output layer, and the
    # text targets of a mixed batch keep the vocabulary's softmax.
    CATALOG = "catalog"
    # Training: the target against `sampled_softmax_negatives` items drawn once per step for the whole batch (from
    # `sampled_softmax_distribution`), each logit minus the log of its sampling probability (logQ correction, the
    # target's too), a draw of the target itself left out; evaluation: the `catalog` softmax. The step's output layer
    # grows with the negatives, not with the catalog.
    SAMPLED = "sampled"


class SampledNegatives(str, Enum):
    """From which distribution `ranking_softmax: sampled` draws its shared negatives (with replacement)."""

    UNIFORM = "uniform"  # every catalog item alike
    # Item i with probability proportional to (count_i + 1) ** alpha, count_i its interactions in the training parts
    # of the users' sequences (items[:-2]), alpha `sampled_softmax_alpha`; the +1 keeps unseen items drawable.
    POPULARITY = "popularity"


class EarlyStoppingCount(str, Enum):
    """How evaluations without improvement add up to `early_stopping_patience`."""

    CONSECUTIVE = "consecutive"  # transformers' EarlyStoppingCallback: an improvement resets the count
    CUMULATIVE = "cumulative"  # the reference's pretrain.py: never reset, every non-improving evaluation counts


class Bnb4bitQuantType(str, Enum):
    """4-bit data types of bitsandbytes."""

    NF4 = "nf4"
    FP4 = "fp4"


def parse_task_mixture(text: str) -> dict[Task, float]:
    """Parse ``"explanation:sequential:rationale:topn"`` ratios, e.g. ``"1:1:1:1"`` or ``"2:1:0:1"``.

    Returns the weight of every task (zero weights included), keyed by ``Task``. Raises ``ValueError`` on a
    wrong number of fields, a non-number, a negative ratio or all ratios zero.
    """
    parts = str(text).split(":")
    order = ":".join(task.name.lower() for task in TASK_MIXTURE_ORDER)
    if len(parts) != len(TASK_MIXTURE_ORDER):
        raise ValueError(f"task_mixture {text!r} must have {len(TASK_MIXTURE_ORDER)} ratios ({order})")
    try:
        ratios = [float(part) for part in parts]
    except ValueError:
        raise ValueError(f"task_mixture {text!r}: every ratio must be a number ({order})") from None
    if any(ratio < 0 for ratio in ratios):
        raise ValueError(f"task_mixture {text!r}: ratios must not be negative")
    if sum(ratios) == 0:
        raise ValueError(f"task_mixture {text!r}: at least one ratio must be positive")
    return dict(zip(TASK_MIXTURE_ORDER, ratios))


def parse_config_overrides(text: str | None) -> dict[str, object]:
    """Parse ``"d_model=32,num_layers=2,dropout_rate=0.0"`` into ``{"d_model": 32, ...}``.

    Values are Python literals (numbers, booleans, quoted strings); anything else stays a string.
    """
    overrides: dict[str, object] = {}
    if not text:
        return overrides
    for item in str(text).split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"config_overrides item {item!r} is not of the form key=value (in {text!r})")
        try:
            overrides[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            overrides[key.strip()] = value.strip()
    return overrides


@dataclass
class ModelArguments:
    """Which student model to train: a checkpoint or a fresh model from a size preset, LoRA, quantisation."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Checkpoint to start from: a plain T5 or an RDRec model folder (or Hub id when online). "
            "Give this or `model_preset`."
        },
    )
    model_preset: str | None = field(
        default=None,
        metadata={
            "help": "Size preset of a freshly initialised student (`RDRecConfig.from_preset`: tiny, mini, "
            "small, t5-small). No pretrained T5 weights are reachable offline, so this is the offline default."
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Comma-separated config overrides applied to the preset or checkpoint config, "
                  "e.g. `d_model=32,num_layers=2`."},
    )
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Tokenizer folder; default: the checkpoint's own, else the shared T5 vocabulary."},
    )
    item_embedding_init: ItemEmbeddingInit = field(
        default=ItemEmbeddingInit.DEFAULT,
        metadata={
            "help": "Start of the item tokens' embedding rows (schemes with an item token: independent, "
            "collaborative+independent): `default`; `svd`: item factors V*sqrt(S) of a truncated SVD of the "
            "training user-item matrix; `transitions`: the spectral embedding of the degree-normalised graph of "
            "items bought within a few positions of each other in the training sequences (the window is "
            "`rdrec_hf.data.item_graph.TRANSITION_WINDOW`); `sasrec`: the item embeddings of a SASRec of width "
            "d_model trained on the training sequences to its best validation epoch (`item_embedding_init_max_epochs`, "
            "`item_embedding_init_patience`). All rescaled to the embedding table's std. The start's time counts in "
            "the benchmark budgets (`benchmark_wall_minutes` / `benchmark_cpu_minutes`)."
        },
    )
    item_embedding_init_scale: float = field(
        default=1.0,
        metadata={
            "help": "With `item_embedding_init` svd, transitions or sasrec: the std of the item rows as a multiple of the "
            "embedding table's std. Below 1 it tames the first loss: the SVD puts large rows under popular items."
        },
    )
    item_embedding_init_max_epochs: int = field(
        default=SASRecTrainingConfig.max_epochs,
        metadata={"help": "With `item_embedding_init: sasrec`: the most epochs SASRec trains (the best validation "
                  "epoch's weights start the item tokens). A number of epochs, not minutes: the same config gives "
                  "the same start on any machine."},
    )
    item_embedding_init_patience: int = field(
        default=SASRecTrainingConfig.patience,
        metadata={"help": "With `item_embedding_init: sasrec`: stop SASRec after this many epochs without a better "
                  "validation NDCG@10."},
    )
    item_embedding_init_negatives: int | None = field(
        default=None,
        metadata={"help": "With `item_embedding_init: sasrec`: train SASRec with a sampled softmax over this many "
                  "uniform negatives shared by the batch (logQ-corrected), so that its epoch's cost stops growing "
                  "with the catalog; None: the full softmax over every item."},
    )
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters (PEFT) instead of all weights."})
    lora_r: int | None = field(
        default=None, metadata={"help": f"LoRA rank (needs `use_peft`; default {DEFAULT_LORA_R})."}
    )
    lora_alpha: int | None = field(
        default=None, metadata={"help": f"LoRA scaling alpha (needs `use_peft`; default {DEFAULT_LORA_ALPHA})."}
    )
    lora_dropout: float | None = field(
        default=None, metadata={"help": f"LoRA dropout (needs `use_peft`; default {DEFAULT_LORA_DROPOUT})."}
    )
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Modules that get LoRA adapters (needs `use_peft`; default "
            f"{' '.join(DEFAULT_LORA_TARGET_MODULES)}). Soft prompts and whole-word embeddings are always trained."
        },
    )
    load_in_8bit: bool = field(
        default=False, metadata={"help": "Load the checkpoint in 8-bit (bitsandbytes); needs `use_peft`."}
    )
    load_in_4bit: bool = field(
        default=False, metadata={"help": "Load the checkpoint in 4-bit (bitsandbytes); needs `use_peft`."}
    )
    bnb_4bit_quant_type: Bnb4bitQuantType = field(
        default=Bnb4bitQuantType.NF4, metadata={"help": "4-bit data type when `load_in_4bit`."}
    )
    use_bnb_nested_quant: bool = field(
        default=False, metadata={"help": "Quantise the 4-bit quantisation constants too (needs `load_in_4bit`)."}
    )

    def __post_init__(self):
        if (self.model_name_or_path is None) == (self.model_preset is None):
            raise ValueError("give exactly one of `model_name_or_path` (a checkpoint) and `model_preset` (from scratch)")
        parse_config_overrides(self.config_overrides)  # fail now, not after the data is built
        self.item_embedding_init = ItemEmbeddingInit(self.item_embedding_init)
        if self.item_embedding_init_scale <= 0:
            raise ValueError(f"item_embedding_init_scale must be positive, got {self.item_embedding_init_scale}")
        if self.item_embedding_init_negatives is not None and self.item_embedding_init_negatives < 1:
            raise ValueError(f"item_embedding_init_negatives must be at least 1 (or unset), got "
                             f"{self.item_embedding_init_negatives}")
        if self.item_embedding_init_max_epochs < 1 or self.item_embedding_init_patience < 1:
            raise ValueError("item_embedding_init_max_epochs and item_embedding_init_patience must be positive, got "
                             f"{self.item_embedding_init_max_epochs} and {self.item_embedding_init_patience}")
        if self.item_embedding_init_scale != 1.0 and self.item_embedding_init is ItemEmbeddingInit.DEFAULT:
            raise ValueError("item_embedding_init_scale is the scale of a factor start: it needs "
                             "`item_embedding_init` svd, transitions or sasrec")
        self.bnb_4bit_quant_type = Bnb4bitQuantType(self.bnb_4bit_quant_type)
        lora_options = {
            "lora_r": self.lora_r,
            "lora_alpha": self.lora_alpha,
            "lora_dropout": self.lora_dropout,
            "lora_target_modules": self.lora_target_modules,
        }
        if not self.use_peft:
            given = [name for name, value in lora_options.items() if value is not None]
            if given:
                raise ValueError(f"{', '.join(given)} given without `use_peft`")
        else:
            if self.model_preset is not None:
                raise ValueError("LoRA adapts a trained checkpoint: give `model_name_or_path`, not a preset")
            self.lora_r = DEFAULT_LORA_R if self.lora_r is None else self.lora_r
            self.lora_alpha = DEFAULT_LORA_ALPHA if self.lora_alpha is None else self.lora_alpha
            self.lora_dropout = DEFAULT_LORA_DROPOUT if self.lora_dropout is None else self.lora_dropout
            if self.lora_target_modules is None:
                self.lora_target_modules = list(DEFAULT_LORA_TARGET_MODULES)
            if self.lora_r <= 0 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1:
                raise ValueError("LoRA needs lora_r > 0, lora_alpha > 0 and 0 <= lora_dropout < 1")
        if self.load_in_8bit and self.load_in_4bit:
            raise ValueError("choose one of `load_in_8bit` and `load_in_4bit`")
        if self.use_bnb_nested_quant and not self.load_in_4bit:
            raise ValueError("`use_bnb_nested_quant` needs `load_in_4bit`")
        if self.load_in_8bit or self.load_in_4bit:
            if not self.use_peft:
                raise ValueError("a quantised model cannot be fully fine-tuned: add `use_peft` (QLoRA)")
            if self.model_name_or_path is None:
                raise ValueError("quantisation loads a checkpoint: give `model_name_or_path`, not a preset")

    @property
    def quantized(self) -> bool:
        """Whether the checkpoint is loaded through bitsandbytes."""
        return self.load_in_8bit or self.load_in_4bit


@dataclass
class RDRecTrainingArguments(Seq2SeqTrainingArguments):
    """``Seq2SeqTrainingArguments`` plus what RDRec training needs: the task mixture, length limits and the
    per-task validation and ranking evaluation done by ``RDRecTrainer``.

    Per-task validation losses are logged as ``eval_loss_<task>`` and their mean as ``eval_mean_task_loss``,
    the metric early stopping watches (as the paper).
    """

    task_mixture: str = field(
        default="1:1:1:1",
        metadata={
            "help": "Ratios explanation:sequential:rationale:top-N of the training mixture (paper: 1:1:1:1), "
            "read as `task_mixture_mode` says. Tasks absent from the data are left out with a logged notice."
        },
    )
    task_mixture_mode: MixtureMode = field(
        default=MixtureMode.BATCH_SHARES,
        metadata={
            "help": "`batch_shares` (the paper's): each task's share of every batch, a rationale record giving "
            "a user and an item prompt (1:1:1:1 = 20/20/40/20 percent explanation/sequential/rationale/top-N); an "
            "epoch draws every training explanation once (without them: every rationale record, then every "
            "user); the batches are read in the builder's interleaved order (a `train_sampling_strategy` that regroups them is refused). "
            "`unit_counts`: examples per unit (users, reviews, rationale prompts) per epoch, e.g. 0:7:0:0 = "
            "seven sequential segments per user, shuffled."
        },
    )
    sequential_targets: int = field(
        default=1,
        metadata={"help": "Training items a sequential segment is trained to generate after it, in order (a loss "
                  "at each decoder step, as SASRec's at every position; ranking reads the first step). 1: the "
                  "next item only, as the paper. Above 1 needs one-token item ids (indexing: independent)."},
    )
    segment_start: SegmentStart = field(
        default=SegmentStart.UNIFORM,
        metadata={"help": "Where a sequential training segment starts: `uniform` (the reference: a uniform start, "
                  "then the target uniform after it) or `first` (the history's first item: every target keeps "
                  "the items before it, as the evaluation prompt keeps the whole history)."},
    )
    max_source_length: int = field(
        default=DEFAULT_MAX_SOURCE_LENGTH, metadata={"help": "Longest prompt in tokens (longer are cut)."}
    )
    max_target_length: int = field(
        default=DEFAULT_MAX_TARGET_LENGTH, metadata={"help": "Longest target in tokens (longer are cut)."}
    )
    pad_to_multiple_of: int | None = field(
        default=None,
        metadata={"help": "Round each batch's padded prompt and target lengths up to a multiple of this (the default "
                  "collator), so that `torch_compile` (and CUDA graphs, `torch_compile_mode: reduce-overhead`) meet "
                  "a few shapes rather than one per length. None: the longest in the batch."},
    )
    num_negatives: int | None = field(
        default=None,
        metadata={"help": "Negatives beside the positive in a training top-N prompt (default: the dataset's, "
                  "99 as the paper)."},
    )
    resample_each_epoch: bool = field(
        default=True,
        metadata={"help": "Draw the task mixture afresh every epoch (templates, top-N negatives, history "
                  "segments), as the paper's loader does; off: every epoch repeats epoch 0's examples."},
    )
    eval_max_examples_per_task: int | None = field(
        default=500,
        metadata={"help": "Validation examples per task for the per-task validation loss (a seeded sample; "
                  "none: all)."},
    )
    rank_eval: bool = field(
        default=True,
        metadata={"help": "During evaluation also rank items for validation users (HR@k, NDCG@k)."},
    )
    rank_eval_max_users: int = field(
        default=100, metadata={"help": "Validation users ranked at each evaluation (a seeded sample)."}
    )
    rank_eval_num_beams: int = field(
        default=DEFAULT_NUM_BEAMS, metadata={"help": "Beams of the constrained generation ranking sequential recommendation."}
    )
    ranking_softmax: RankingSoftmax = field(
        default=RankingSoftmax.VOCABULARY,
        metadata={"help": "Loss of the ranking targets (sequential, top-N) over the whole vocabulary, or over the "
                  "catalog's item tokens only (`catalog`: independent ids; the items rank the same), or, in "
                  "training, over the targets and `sampled_softmax_negatives` shared sampled items with the logQ "
                  "correction (`sampled`: independent ids; evaluation losses use `catalog`; for catalogs of 100,000+ "
                  "items). The text targets of the same batch (explanations, rationales) normalise over the "
                  "vocabulary; a mixture of ranking tasks only shrinks the output layer from the vocabulary to the "
                  "catalog (or the sample)."},
    )
    sampled_softmax_negatives: int = field(
        default=1024,
        metadata={"help": "With `ranking_softmax: sampled`: draws of negatives per training step, shared by the "
                  "whole batch (with replacement; an item drawn twice counts twice). At least 1 and at most the "
                  "catalog's size."},
    )
    sampled_softmax_distribution: SampledNegatives = field(
        default=SampledNegatives.UNIFORM,
        metadata={"help": "With `ranking_softmax: sampled`: `uniform` over the catalog, or `popularity`: "
                  "(training count + 1) ** `sampled_softmax_alpha`. The draws are seeded from `seed`."},
    )
    sampled_softmax_alpha: float = field(
        default=0.75,
        metadata={"help": "Exponent of the popularity in `sampled_softmax_distribution: popularity` (0: uniform)."},
    )
    sparse_embedding_gradients: bool = field(
        default=False,
        metadata={"help": "With `ranking_softmax: sampled` and ranking tasks only: the token embedding gets row-sparse "
                  "gradients and `LazyRowAdamW` updates only the rows a step read (lazy Adam: the other rows are "
                  "neither decayed nor moved by their momentum), so a step's cost stops growing with the catalog "
                  "(for 100,000+ items; BENCHMARKS.md section 5). Needs the `adamw_torch` or `adamw_torch_fused` "
                  "optimizer and one process."},
    )
    text_softmax_excludes_items: bool = field(
        default=False,
        metadata={"help": "With `ranking_softmax: catalog`, text targets normalise over the vocabulary without the "
                  "item tokens (which never occur in a text); off: over the whole vocabulary, so the text loss "
                  "also pushes the item tokens down at text positions (BENCHMARKS.md measures both)."},
    )
    recommender_distillation_weight: float = field(
        default=0.0,
        metadata={"help": "Weight w of distilling the item start's SASRec (`item_embedding_init: sasrec`) into the "
                  "sequential task: the loss is (1 - w) * the batch's cross-entropy + w * the mean over its "
                  "sequential prompts of T^2 * KL(teacher || student), both distributions over the catalog's item "
                  "tokens at the first target, the teacher reading the history the prompt lists (T: "
                  "`recommender_distillation_temperature`). With `ranking_softmax: sampled` both distributions are "
                  "over the step's sampled items plus the row's target only, the teacher renormalised over that "
                  "subset (no logQ correction). Needs one-token item ids (independent). 0: off."},
    )
    distill_topn: bool = field(
        default=False,
        metadata={"help": "With `recommender_distillation_weight`, also distil into the top-N prompts: KL to the "
                  "SASRec's catalog distribution after the user's training items (the top-N prompt names the user "
                  "and the candidates, not the history). Off: the sequential prompts only."},
    )
    recommender_distillation_temperature: float = field(
        default=1.0, metadata={"help": "Softmax temperature of both distributions in the distillation loss."}
    )
    benchmark_wall_minutes: float | None = field(
        default=None,
        metadata={"aliases": ["--max_train_minutes"],
                  "help": "A benchmark's rule, not a recipe's: stop training after this many wall-clock minutes, the "
                  "item start included (checked after each step). The same config then gives different models on "
                  "faster, slower or busier machines, so recipes fix steps or epochs instead. None: no limit. "
                  "`--max_train_minutes` is its old spelling (kept for one release)."},
    )
    benchmark_cpu_minutes: float | None = field(
        default=None,
        metadata={"aliases": ["--max_train_cpu_minutes"],
                  "help": "A benchmark's rule, not a recipe's: stop training after this many minutes of this "
                  "process's CPU time, the item start included (a budget other jobs do not shrink; with one torch "
                  "thread, single-thread minutes). None: no limit. `--max_train_cpu_minutes` is its old spelling "
                  "(kept for one release)."},
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without a better `metric_for_best_model` "
                  "(default metric: mean validation loss over tasks)."},
    )
    early_stopping_count: EarlyStoppingCount = field(
        default=EarlyStoppingCount.CONSECUTIVE,
        metadata={"help": "`consecutive`: stop after `early_stopping_patience` evaluations in a row without "
                  "improvement (transformers'); `cumulative`: after that many in all, never reset (the paper's "
                  "pretrain.py)."},
    )
    weight_decay_all_parameters: bool = field(
        default=False,
        metadata={"help": "Apply `weight_decay` to every parameter, biases and layer norms too, as "
                  "torch.optim.AdamW(model.parameters()) in the paper's pretrain.py; off: transformers' rule, "
                  "which spares them."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start at step 0 even when output_dir holds checkpoints (they are removed). Off: a rerun "
                  "resumes from the last complete checkpoint-* and says so (transformers 5 dropped this option "
                  "of TrainingArguments; this is the project's rule)."},
    )
    # Changed defaults of the parent class.
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep dataset columns the collator reads (RDRec batches need them)."}
    )
    ddp_find_unused_parameters: bool | None = field(
        default=False, metadata={"help": "DDP's unused-parameter search (off: every parameter takes part)."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps (or fraction of training)."})

    def __post_init__(self):
        self.task_weights  # validates task_mixture
        self.task_mixture_mode = MixtureMode(self.task_mixture_mode)
        self.segment_start = SegmentStart(self.segment_start)
        if self.task_mixture_mode is MixtureMode.BATCH_SHARES and self.train_sampling_strategy not in ("random", "sequential"):
            raise ValueError(f"task_mixture_mode=batch_shares fixes every batch's tasks; train_sampling_strategy="
                             f"{self.train_sampling_strategy} would regroup them (use task_mixture_mode=unit_counts)")
        self.ranking_softmax = RankingSoftmax(self.ranking_softmax)
        self.sampled_softmax_distribution = SampledNegatives(self.sampled_softmax_distribution)
        if self.sampled_softmax_negatives < 1:
            raise ValueError(f"sampled_softmax_negatives must be at least 1, got {self.sampled_softmax_negatives}")
        if self.sampled_softmax_alpha < 0:
            raise ValueError(f"sampled_softmax_alpha must be non-negative, got {self.sampled_softmax_alpha}")
        if self.sparse_embedding_gradients and self.ranking_softmax is not RankingSoftmax.SAMPLED:
            raise ValueError("sparse_embedding_gradients needs ranking_softmax=sampled (the catalog and vocabulary "
                             "softmaxes read every item row each step)")
        if self.distill_topn and self.recommender_distillation_weight == 0:
            raise ValueError("distill_topn needs recommender_distillation_weight > 0")
        if self.text_softmax_excludes_items and self.ranking_softmax is not RankingSoftmax.CATALOG:
            raise ValueError("text_softmax_excludes_items needs ranking_softmax=catalog (the vocabulary softmax "
                             "has one normalisation for every target)")
        if not 0.0 <= self.recommender_distillation_weight <= 1.0:
            raise ValueError(f"recommender_distillation_weight must be in [0, 1], got {self.recommender_distillation_weight}")
        if self.recommender_distillation_temperature <= 0:
            raise ValueError("recommender_distillation_temperature must be positive, got "
                             f"{self.recommender_distillation_temperature}")
        for name in ("max_source_length", "max_target_length", "rank_eval_max_users", "rank_eval_num_beams",
                     "sequential_targets"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be positive, got {self.pad_to_multiple_of}")
        if self.num_negatives is not None and self.num_negatives < 1:
            raise ValueError(f"num_negatives must be positive, got {self.num_negatives}")
        if self.eval_max_examples_per_task is not None and self.eval_max_examples_per_task < 1:
            raise ValueError(f"eval_max_examples_per_task must be positive, got {self.eval_max_examples_per_task}")
        self.early_stopping_count = EarlyStoppingCount(self.early_stopping_count)
        if self.early_stopping_count is EarlyStoppingCount.CUMULATIVE and self.early_stopping_patience is None:
            raise ValueError("early_stopping_count=cumulative needs early_stopping_patience")
        if self.early_stopping_patience is not None:
            if self.early_stopping_patience <= 0:
                raise ValueError("early_stopping_patience must be positive")
            if IntervalStrategy(self.eval_strategy) is IntervalStrategy.NO:
                raise ValueError("early stopping needs an evaluation: set eval_strategy to steps or epoch")
        if self.metric_for_best_model is None and (self.load_best_model_at_end or self.early_stopping_patience):
            self.metric_for_best_model = MEAN_TASK_LOSS
        if not self.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
            # Without it, a GPU-less multi-process launch trains N independent copies instead of one DDP run.
            logger.warning("multi-process launch without a GPU: training on CPU processes over gloo (use_cpu=True)")
            self.use_cpu = True
        super().__post_init__()

    @property
    def has_text_tasks(self) -> bool:
        """Whether the mixture trains a text task (explanation, rationale)."""
        return any(weight > 0 and task not in RANKING_TASKS for task, weight in self.task_weights.items())

    @property
    def task_weights(self) -> dict[Task, float]:
        """Weight of every task from ``task_mixture`` (zero for tasks left out)."""
        return parse_task_mixture(self.task_mixture)
