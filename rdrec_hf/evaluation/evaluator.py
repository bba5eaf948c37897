"""The evaluation loop of the paper, deterministic, with the leak rule and popularity on the same users.

- sequential: full ranking over the catalog for the held-out item, the user's history excluded
  (`model.generate(..., item_index=..., exclude_items=...)`: exact one-step ranking with one-token ids, the
  trie beam search of `rdrec_hf.models.item_decoding` otherwise);
- top-N: the held-out item among its stored negatives, ranked exactly by `model.score_candidates`;
- explanation and rationale: greedy generation scored with BLEU-1/4, ROUGE-1/2/L and the distinct share.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from datasets import Dataset, DatasetDict
from tqdm.auto import tqdm

from ..data import RDRecDataCollator, build_eval_dataset, training_history
from ..data.schema import EVAL_SPLITS, ITEMS, REVIEWS, USERS
from ..models import ItemIndex
from ..tasks import RANKING_TASKS, Task
from .baselines import item_popularity, leak_rule_ranking, popularity_ranking
from .ranking import DEFAULT_KS, ranking_metrics
from .text_metrics import text_generation_metrics

logger = logging.getLogger(__name__)

TEXT_TASKS = (Task.EXPLANATION, Task.RATIONALE)


@dataclass
class EvaluationConfig:
    """What to evaluate and how. Every choice that could vary between runs is fixed here (seeded)."""

    tasks: list[str] = field(
        default_factory=lambda: [task.name.lower() for task in Task],
        metadata={"help": "Tasks to evaluate: sequential, topn, explanation, rationale. Tasks without data "
                  "(no reviews: explanation, rationale) are left out with a logged notice."},
    )
    split: str = field(
        default="test",
        metadata={"help": "Leave-one-out target: 'test' (last item) or 'validation' (second last)."},
    )
    ks: list[int] = field(
        default_factory=lambda: list(DEFAULT_KS),
        metadata={"help": "Cut-offs of HR@k (all k) and NDCG@k (k > 1)."},
    )
    num_beams: int = field(
        default=20,
        metadata={"help": "Beams of the constrained search of the sequential task (the paper: 20); at least max(ks)."},
    )
    batch_size: int = field(default=32, metadata={"help": "Examples per forward pass."})
    max_users: int | None = field(
        default=None,
        metadata={"help": "Evaluate a seeded random sample of this many users (all users when unset)."},
    )
    seed: int = field(default=42, metadata={"help": "Seed of the user sample."})
    max_new_tokens: int = field(
        default=64, metadata={"help": "Longest generated explanation or rationale, in tokens (greedy decoding)."}
    )
    num_samples: int = field(
        default=3, metadata={"help": "Example predictions kept per task for the report (0: none)."}
    )

    def __post_init__(self):
        self.tasks = [Task.parse(task) for task in self.tasks]
        if not self.tasks:
            raise ValueError("EvaluationConfig: tasks is empty")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"EvaluationConfig: a task is listed twice in {[t.name.lower() for t in self.tasks]}")
        if self.split not in EVAL_SPLITS:
            raise ValueError(f"EvaluationConfig: split must be one of {EVAL_SPLITS}, got {self.split!r}")
        self.ks = sorted(int(k) for k in self.ks)
        if not self.ks or self.ks[0] < 1 or len(set(self.ks)) != len(self.ks):
            raise ValueError(f"EvaluationConfig: ks must be distinct positive integers, got {self.ks}")
        if Task.SEQUENTIAL in self.tasks and self.num_beams < self.ks[-1]:
            raise ValueError(
                f"EvaluationConfig: num_beams={self.num_beams} cannot return the top {self.ks[-1]} items; "
                f"use num_beams >= max(ks)"
            )
        for name in ("batch_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"EvaluationConfig: {name} must be >= 1, got {getattr(self, name)}")
        if self.max_users is not None and self.max_users < 1:
            raise ValueError(f"EvaluationConfig: max_users must be >= 1 or unset, got {self.max_users}")
        if self.num_samples < 0:
            raise ValueError(f"EvaluationConfig: num_samples must be >= 0, got {self.num_samples}")


def sample_users(user_ids: Sequence[str], max_users: int | None, seed: int) -> list[str]:
    """A seeded sample of ``max_users`` users, in their original order; all users when ``max_users`` is
    ``None`` or not smaller than their number."""
    if max_users is None or max_users >= len(user_ids):
        return list(user_ids)
    chosen = set(random.Random(seed).sample(range(len(user_ids)), max_users))
    return [user_id for position, user_id in enumerate(user_ids) if position in chosen]


def rank_candidates(candidates: Sequence[str], scores: Sequence[float], target: str) -> list[str]:
    """Candidates by descending score; on a tie the target goes after the others (ties never help a model)."""
    if len(candidates) != len(scores):
        raise ValueError(f"{len(candidates)} candidates but {len(scores)} scores")
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i] == target))
    return [candidates[i] for i in order]


def evaluate_model(
    model,
    data: DatasetDict,
    tokenizer,
    config: EvaluationConfig | None = None,
    *,
    item_index: ItemIndex | None = None,
    show_progress: bool = True,
) -> dict[str, dict]:
    """Evaluate ``model`` on ``data`` (the project dataset schema) as the paper does, with the baselines.

    Args:
        model: an `RDRecForConditionalGeneration` (or a PEFT wrapper of one); put in eval mode here.
        data: the project `DatasetDict` (``users``, ``items``, optionally ``reviews``).
        tokenizer: the model's tokenizer (prompts, decoding of generated text).
        config: what to evaluate; `EvaluationConfig()` when None.
        item_index: the catalog for the ranking tasks; ``model.item_index`` when None.
        show_progress: progress bars per task (off inside a trainer's evaluation).
    Returns:
        ``{task: {"model": {metric: value}, "num_examples": n, "protocol": str, "samples": [...]}}``;
        ranking tasks add ``"leak_rule"`` and ``"popularity"`` metrics on the very same users. A text task
        whose data is absent (no reviews, no rationales on the split) is ``{"skipped": reason, "num_examples": 0}``.
    """
    config = config if config is not None else EvaluationConfig()
    item_index = item_index if item_index is not None else getattr(model, "item_index", None)
    if item_index is None and any(task in RANKING_TASKS for task in config.tasks):
        raise ValueError("the ranking tasks need an item catalog: pass item_index= or set model.item_index")
    model.eval()
    collator = RDRecDataCollator(pad_token_id=tokenizer.pad_token_id)
    users = sample_users(data[USERS]["user_id"], config.max_users, config.seed)
    results: dict[str, dict] = {}
    for task in config.tasks:
        name = task.name.lower()
        if task in RANKING_TASKS:
            # build_eval_dataset draws the same seeded sample of users as `sample_users`; checked below.
            dataset = build_eval_dataset(
                data, task, config.split, tokenizer, max_examples=config.max_users, seed=config.seed
            )
            if list(dataset["user_id"]) != users:
                raise RuntimeError(f"{name}: the evaluation set does not hold the sampled users")
            results[name] = _evaluate_ranking(model, dataset, task, item_index, data, config, collator, show_progress)
        else:
            dataset, reason = _text_eval_dataset(data, task, tokenizer, users, config)
            if dataset is None:
                logger.warning("%s left out of the evaluation: %s", name, reason)
                results[name] = {"skipped": reason, "num_examples": 0}
                continue
            results[name] = _evaluate_text(model, tokenizer, dataset, task, config, collator, show_progress)
    logger.info("evaluation summary (%s split, %d users):\n%s", config.split, len(users), _summary(results))
    return results


def _text_eval_dataset(data, task, tokenizer, users, config) -> tuple[Dataset | None, str | None]:
    """The task's evaluation examples of the sampled users, or ``(None, reason)`` when there are none."""
    if REVIEWS not in data:
        return None, "the dataset has no reviews (its source has no review text)"
    try:
        dataset = build_eval_dataset(data, task, config.split, tokenizer, seed=config.seed)
    except ValueError as error:  # raised only when the split has no examples of this task
        return None, str(error)
    if config.max_users is not None:
        sampled = set(users)
        dataset = dataset.filter(
            lambda user_ids: [user_id in sampled for user_id in user_ids], input_columns="user_id", batched=True
        )
        if len(dataset) == 0:
            return None, f"none of the {len(users)} sampled users has a {config.split} example"
    return dataset, None


def _batches(dataset: Dataset, batch_size: int, description: str, show_progress: bool) -> Iterator[list[dict]]:
    """Rows of ``dataset`` in order, ``batch_size`` at a time, with a progress bar."""
    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, desc=description, unit="batch", disable=not show_progress):
        columns = dataset[start : start + batch_size]
        yield [dict(zip(columns, values)) for values in zip(*columns.values())]


def _model_inputs(rows: list[dict], collator: RDRecDataCollator, device: torch.device) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask``, ``whole_word_ids`` `[B, L]` and ``task_id`` `[B]` on ``device``."""
    batch = collator(rows)
    return {name: tensor.to(device) for name, tensor in batch.items() if name != "labels"}


def _evaluate_ranking(model, dataset, task, item_index, data, config, collator, show_progress) -> dict:
    top_k = config.ks[-1]
    catalog_size = data[ITEMS].num_rows
    popular_items = item_popularity((training_history(items) for items in data[USERS]["items"]), catalog_size)
    rankings: dict[str, list[list[str]]] = {"model": [], "leak_rule": [], "popularity": []}
    missing_ids = 0
    for rows in _batches(dataset, config.batch_size, f"evaluate {task.name.lower()}", show_progress):
        inputs = _model_inputs(rows, collator, model.device)
        if task is Task.SEQUENTIAL:
            output = model.generate(
                **inputs,
                item_index=item_index,
                exclude_items=[row["history"] for row in rows],
                num_beams=config.num_beams,
                num_return_sequences=top_k,
            )
            rankings["model"] += output.item_ids
            missing_ids += sum(output.num_missing)
        else:
            candidates = [row["candidates"] for row in rows]
            scores = model.score_candidates(**inputs, candidate_items=candidates, item_index=item_index).tolist()
            rankings["model"] += [
                rank_candidates(row["candidates"], row_scores[: len(row["candidates"])], row["target_item"])[:top_k]
                for row, row_scores in zip(rows, scores)
            ]
        for row in rows:
            catalog = catalog_size if task is Task.SEQUENTIAL else row["candidates"]
            rankings["leak_rule"].append(leak_rule_ranking(row["history"], catalog, top_k))
            rankings["popularity"].append(
                popularity_ranking(popular_items, row["history"], top_k, row.get("candidates"))
            )
    targets = list(dataset["target_item"])
    results = {system: ranking_metrics(ranked, targets, config.ks) for system, ranked in rankings.items()}
    results["num_examples"] = len(targets)
    if task is Task.SEQUENTIAL:
        results["protocol"] = (
            f"Full ranking over the {catalog_size:,}-item catalog, the user's history excluded; the model "
            + (
                "ranks every catalog item exactly from one decoder step (one-token ids)."
                if item_index.is_single_token
                else f"decodes catalog ids by trie-constrained beam search ({config.num_beams} beams, top {top_k})."
            )
        )
        results["missing_ids"] = missing_ids  # ranking slots the beams left empty (counted as misses)
    else:
        results["protocol"] = _topn_protocol(dataset, data)
    results["samples"] = [
        {
            "user_id": row["user_id"],
            "recent_history": row["history"][-5:],
            "target": row["target_item"],
            **{f"{system}_top_{top_k}": rankings[system][position] for system in rankings},
        }
        for position, row in enumerate(dataset.select(range(min(config.num_samples, len(dataset)))))
    ]
    return results


def _topn_protocol(dataset: Dataset, data: DatasetDict) -> str:
    """How the top-N candidates were formed, saying so when a small catalog leaves only the unseen items."""
    sizes = sorted({len(candidates) for candidates in dataset["candidates"]})
    size = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    catalog_size = data[ITEMS].num_rows
    items_of = dict(zip(data[USERS]["user_id"], data[USERS]["items"]))
    all_unseen = all(
        len(candidates) - 1 == catalog_size - len(set(items_of[user_id]))
        for user_id, candidates in zip(dataset["user_id"], dataset["candidates"])
    )
    formed = (
        f"all items the user has not interacted with ({size} candidates with the held-out item: the "
        f"{catalog_size}-item catalog is too small for the usual 99 sampled negatives)"
        if all_unseen
        else f"{size} candidates (it and the split's stored negatives)"
    )
    return (
        f"The held-out item among {formed}, ranked by the exact sequence log-likelihood of each candidate id; "
        "a tie ranks the held-out item last."
    )


def _evaluate_text(model, tokenizer, dataset, task, config, collator, show_progress) -> dict:
    predictions: list[str] = []
    for rows in _batches(dataset, config.batch_size, f"evaluate {task.name.lower()}", show_progress):
        sequences = model.generate(
            **_model_inputs(rows, collator, model.device),
            max_new_tokens=config.max_new_tokens,
            num_beams=1,
            do_sample=False,
        )
        predictions += tokenizer.batch_decode(sequences, skip_special_tokens=True)
    # As the paper's scripts do: the reference is the tokenised target decoded back (what the model can spell,
    # truncated like the training labels), and BLEU splits both texts on whitespace.
    references = tokenizer.batch_decode(list(dataset["labels"]), skip_special_tokens=True)
    identity_columns = [name for name in ("user_id", "item_id", "rationale_kind") if name in dataset.column_names]
    target = "explanations" if task is Task.EXPLANATION else "teacher rationales"
    samples = [
        {**{name: row[name] for name in identity_columns}, "generated": prediction, "reference": reference}
        for row, prediction, reference in zip(
            dataset.select(range(min(config.num_samples, len(dataset)))), predictions, references
        )
    ]
    return {
        "model": text_generation_metrics(predictions, references),
        "num_examples": len(references),
        "protocol": f"Greedy generation of at most {config.max_new_tokens} tokens, scored against the "
        f"{config.split} reviews' {target} (tokenised and decoded back, as the paper's scripts do).",
        "samples": samples,
    }


def _summary(results: Mapping[str, Mapping]) -> str:
    """One line per task: its examples and the model's and baselines' main metrics."""
    lines = []
    for task, task_results in results.items():
        if "skipped" in task_results:
            lines.append(f"  {task}: skipped ({task_results['skipped']})")
            continue
        systems = [system for system in ("model", "leak_rule", "popularity") if system in task_results]
        shown = ", ".join(
            f"{system} " + " ".join(f"{metric}={value:.4f}" for metric, value in task_results[system].items())
            for system in systems
        )
        lines.append(f"  {task} ({task_results['num_examples']} examples): {shown}")
    return "\n".join(lines)
