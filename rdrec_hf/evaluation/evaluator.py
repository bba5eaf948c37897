"""The evaluation loop, deterministic, with the chosen baselines (`Baseline`: popularity, the leak rule and
item-kNN by default) on the same users, under one of two protocols (`EvalProtocol`); their numbers never share a
table.

This project's protocol (``project``), the stricter one:

- sequential: full ranking over the catalog for the held-out item, the user's history excluded
  (`model.generate(..., item_index=..., exclude_items=...)`: exact one-step ranking with one-token ids, the
  trie beam search of `rdrec_hf.models.item_decoding` otherwise);
- top-N: the held-out item among its stored negatives, ranked exactly by `model.score_candidates`;
- explanation and rationale: greedy generation that blocks repeated 3-grams, within a length range
  (`TextGenerationSettings`: a small student decoded plainly greedily loops).

The paper's protocol (``paper``), as the reference scripts (``seq.py``, ``topn.py``, ``exp.py``) run it:

- sequential: free beam search (20 beams, 15 returned, length penalty 1.0, early stopping), the history
  removed from the 15 afterwards, so fewer than 10 may remain; an output that is not a catalog id takes its
  rank as a miss (the reference fills in a random id);
- top-N: free beam search (20 beams, 10 returned), not restricted to the candidates; an invalid or
  out-of-candidate output is a miss, never filled in;
- explanation and rationale: beam search with 7 beams (the reference's 21 beams in 3 groups with diversity 0,
  which transformers 5 no longer offers, is the same search), 10 to 50 tokens, against references of up to
  100 tokens.

Texts are scored with BLEU-1/4, both ROUGE-1/2/L (rouge-score's and the reference's) and the distinct share.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict
from tqdm.auto import tqdm

from ..data import RDRecDataCollator, build_eval_dataset, sample_users
from ..data.schema import EVAL_SPLITS, ITEMS, REVIEWS, USERS
from ..devices import DEFAULT_BATCH_SIZES, DEVICE_HELP, DTYPE_HELP, default_batch_size, resolve_device, resolve_dtype
from ..models import ItemIndex
from ..models.item_decoding import DEFAULT_NUM_BEAMS
from ..models.text_generation import PAPER_TEXT_GENERATION, TextGenerationSettings
from ..models.recommending import text_generation_kwargs
from ..models.tasks import RANKING_TASKS, Task, TaskKind
from .baselines import DEFAULT_BASELINES, Baseline, Ranker, baseline_rankers
from .protocols import EvalProtocol
from .ranking import DEFAULT_KS, rank_by_score, ranking_metrics
from .text_metrics import text_generation_metrics

logger = logging.getLogger(__name__)

# The reference scripts' decoding settings (seq.py, topn.py; exp.py's: models.text_generation), one home for each.
PAPER_SEQUENTIAL_GENERATION = dict(num_beams=DEFAULT_NUM_BEAMS, num_return_sequences=15, length_penalty=1.0, early_stopping=True)
PAPER_TOPN_GENERATION = dict(num_beams=DEFAULT_NUM_BEAMS, num_return_sequences=10)
PAPER_REFERENCE_MAX_TOKENS = 100  # exp.py cuts the test explanations at exp_len=100 tokens


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
        default=DEFAULT_NUM_BEAMS,
        metadata={"help": "Beams of the constrained search of the sequential task (the paper: 20); at least max(ks)."},
    )
    batch_size: int | None = field(
        default=None,
        metadata={"help": "Examples per forward pass (default: sized for the model's device, "
                  f"`rdrec_hf.devices.default_batch_size`: {DEFAULT_BATCH_SIZES})."},
    )
    device: str | None = field(
        default=None, metadata={"help": f"Device `rdrec-hf evaluate` loads the student on: {DEVICE_HELP}."}
    )
    dtype: str = field(default="auto", metadata={"help": f"The student's {DTYPE_HELP}."})
    max_users: int | None = field(
        default=None,
        metadata={"help": "Evaluate a seeded random sample of this many users (all users when unset)."},
    )
    seed: int = field(default=42, metadata={"help": "Seed of the user sample."})
    max_new_tokens: int = field(
        default=64, metadata={"help": "Longest generated explanation or rationale, in tokens (this project's "
                              "protocol: `TextGenerationSettings`, greedy without repeated 3-grams)."}
    )
    text_sample_seed: int | None = field(
        default=None,
        metadata={"help": "This project's protocol: sample explanations and rationales (nucleus, "
                  "`TextGenerationSettings`) from this seed instead of greedy decoding, whose single most likely "
                  "text is the same for every user (None: greedy)."},
    )
    num_samples: int = field(
        default=3, metadata={"help": "Example predictions kept per task for the report (0: none)."}
    )
    baselines: list[str] = field(
        default_factory=lambda: [baseline.value for baseline in DEFAULT_BASELINES],
        metadata={"help": "Baselines ranked for the same users beside the model, from the training histories only: "
                  "popularity, leak_rule (max history id + 1, ...), item_knn (transition item-kNN) and sasrec "
                  "(full-softmax SASRec with early stopping on validation; opt-in, it trains: about 30 CPU minutes "
                  "on P5 beauty; its weights are kept beside the report and reused)."},
    )
    sasrec_wall_budget_s: float | None = field(
        default=None,
        metadata={"help": "SASRec stops training before an epoch that would end past this many seconds (the "
                  "benchmarks' 30-CPU-minute budget: 1800); unset: early stopping alone."},
    )
    protocols: list[str] = field(
        default_factory=lambda: [EvalProtocol.PROJECT.value],
        metadata={"help": "Protocols to run, each written to its own metrics file and report: `project` (this "
                  "project's: exact or trie-constrained ranking, greedy text; metrics.json, report.md) and/or "
                  "`paper` (the reference scripts' free beam searches; metrics_paper.json, report_paper.md). "
                  "num_beams and max_new_tokens belong to `project`; `paper` has the reference's settings."},
    )

    def __post_init__(self):
        self.protocols = [EvalProtocol(protocol) for protocol in self.protocols]
        if not self.protocols or len(set(self.protocols)) != len(self.protocols):
            raise ValueError(f"EvaluationConfig: protocols must be distinct and not empty, got {self.protocols}")
        self.baselines = [Baseline.parse(baseline) for baseline in self.baselines]
        if len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"EvaluationConfig: a baseline is listed twice in {[b.value for b in self.baselines]}")
        if self.sasrec_wall_budget_s is not None and self.sasrec_wall_budget_s <= 0:
            raise ValueError(f"EvaluationConfig: sasrec_wall_budget_s must be positive or unset, got "
                             f"{self.sasrec_wall_budget_s}")
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
        if any(task.spec.ranking_field == "history" for task in self.tasks) and self.num_beams < self.ks[-1]:
            raise ValueError(
                f"EvaluationConfig: num_beams={self.num_beams} cannot return the top {self.ks[-1]} items; "
                f"use num_beams >= max(ks)"
            )
        if self.max_new_tokens < 1:
            raise ValueError(f"EvaluationConfig: max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"EvaluationConfig: batch_size must be >= 1 or unset, got {self.batch_size}")
        resolve_device(self.device), resolve_dtype(self.dtype)  # a bad name or a missing GPU, before any loading
        if self.max_users is not None and self.max_users < 1:
            raise ValueError(f"EvaluationConfig: max_users must be >= 1 or unset, got {self.max_users}")
        if self.num_samples < 0:
            raise ValueError(f"EvaluationConfig: num_samples must be >= 0, got {self.num_samples}")


def evaluate_model(
    model,
    data: DatasetDict,
    tokenizer,
    config: EvaluationConfig | None = None,
    *,
    item_index: ItemIndex | None = None,
    show_progress: bool = True,
    protocol: EvalProtocol | str | None = None,
    baseline_dir: str | Path | None = None,
) -> dict[str, dict]:
    """Evaluate ``model`` on ``data`` (the project dataset schema) under one protocol, with the baselines.

    Args:
        model: an `RDRecForConditionalGeneration` (or a PEFT wrapper of one); put in eval mode here.
        data: the project `DatasetDict` (``users``, ``items``, optionally ``reviews``).
        tokenizer: the model's tokenizer (prompts, decoding of generated text).
        config: what to evaluate; `EvaluationConfig()` when None.
        item_index: the catalog for the ranking tasks; ``model.item_index`` when None.
        show_progress: progress bars per task (off inside a trainer's evaluation).
        protocol: an `EvalProtocol`; the first of ``config.protocols`` when None.
        baseline_dir: where a trained baseline (SASRec) keeps its weights for later evaluations of the same data.
    Returns:
        ``{task: {"model": {metric: value}, "num_examples": n, "evaluation_protocol": "project" | "paper",
        "protocol": description, "samples": [...]}}``; ranking tasks add the metrics of each of
        ``config.baselines`` under its name, on the very same users, and ``"skipped_baselines"``: ``{name:
        reason}`` of those that could not run (SASRec on too few users). A text task whose data is absent (no reviews, no rationales on the
        split) is ``{"skipped": reason, "num_examples": 0}``.
    """
    config = config if config is not None else EvaluationConfig()
    protocol = EvalProtocol(protocol) if protocol is not None else config.protocols[0]
    item_index = item_index if item_index is not None else getattr(model, "item_index", None)
    if item_index is None and any(task in RANKING_TASKS for task in config.tasks):
        raise ValueError("the ranking tasks need an item catalog: pass item_index= or set model.item_index")
    model.eval()
    if config.batch_size is None:
        config = replace(config, batch_size=default_batch_size(model.device))
    collator = RDRecDataCollator(pad_token_id=tokenizer.pad_token_id)
    users = sample_users(data[USERS]["user_id"], config.max_users, config.seed)
    results: dict[str, dict] = {}
    if any(task in RANKING_TASKS for task in config.tasks):
        baselines, skipped_baselines = baseline_rankers(
            data, config.baselines, seed=config.seed, device=model.device, cache_dir=baseline_dir,
            sasrec_wall_budget_s=config.sasrec_wall_budget_s,
        )  # fmt: skip
    for task in config.tasks:
        name = task.name.lower()
        if task.spec.kind is TaskKind.RANKING:
            dataset = build_eval_dataset(data, task, config.split, tokenizer, users=users, seed=config.seed)
            if protocol is EvalProtocol.PROJECT:
                results[name] = _evaluate_ranking(
                    model, dataset, task, item_index, data, config, collator, show_progress, baselines
                )
            else:
                results[name] = _evaluate_ranking_as_paper(
                    model, tokenizer, dataset, task, item_index, data, config, collator, show_progress, baselines
                )
            results[name]["skipped_baselines"] = skipped_baselines
        else:
            dataset, reason = _text_eval_dataset(data, task, tokenizer, users, config, protocol)
            if dataset is None:
                logger.warning("%s left out of the evaluation: %s", name, reason)
                results[name] = {"skipped": reason, "num_examples": 0}
                continue
            results[name] = _evaluate_text(model, tokenizer, dataset, task, config, collator, show_progress, protocol)
        results[name]["evaluation_protocol"] = protocol.value
    logger.info("evaluation summary (%s protocol, %s split, %d users):\n%s",
                protocol.value, config.split, len(users), _summary(results))
    return results


def _text_eval_dataset(data, task, tokenizer, users, config, protocol) -> tuple[Dataset | None, str | None]:
    """The task's evaluation examples of the sampled users, or ``(None, reason)`` when there are none."""
    if REVIEWS not in data:
        return None, "the dataset has no reviews (its source has no review text)"
    lengths = {"max_target_length": PAPER_REFERENCE_MAX_TOKENS} if protocol is EvalProtocol.PAPER else {}
    sampled = users if config.max_users is not None else None
    try:
        dataset = build_eval_dataset(data, task, config.split, tokenizer, users=sampled, seed=config.seed, **lengths)
    except ValueError as error:  # raised only when the split (or the sampled users) has no examples of this task
        return None, str(error)
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


def _evaluate_ranking(model, dataset, task, item_index, data, config, collator, show_progress, baselines) -> dict:
    top_k = config.ks[-1]
    catalog_size = data[ITEMS].num_rows
    rankings: dict[str, list[list[str]]] = {"model": [], **{name: [] for name in baselines}}
    missing_ids = 0
    for rows in _batches(dataset, config.batch_size, f"evaluate {task.name.lower()}", show_progress):
        inputs = _model_inputs(rows, collator, model.device)
        if not task.spec.ranks_candidates:
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
                rank_by_score(row["candidates"], row_scores[: len(row["candidates"])], row["target_item"])[:top_k]
                for row, row_scores in zip(rows, scores)
            ]
        _add_baseline_rankings(rankings, rows, task, baselines, top_k)
    targets = list(dataset["target_item"])
    results = {system: ranking_metrics(ranked, targets, config.ks) for system, ranked in rankings.items()}
    results["num_examples"] = len(targets)
    if not task.spec.ranks_candidates:
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
    results["samples"] = _ranking_samples(dataset, rankings, top_k, config.num_samples)
    return results


def _add_baseline_rankings(rankings, rows, task, baselines: Mapping[str, Ranker], top_k) -> None:
    """Append each baseline's top ``top_k`` for ``rows`` (top-N: among their candidates)."""
    histories = [row["history"] for row in rows]
    candidates = [row["candidates"] for row in rows] if task.spec.ranks_candidates else None
    for name, ranker in baselines.items():
        rankings[name] += ranker(histories, top_k, candidates)


def _evaluate_ranking_as_paper(
    model, tokenizer, dataset, task, item_index, data, config, collator, show_progress, baselines
) -> dict:
    """The reference's ranking evaluation: free beams parsed into catalog ids (see the module docstring)."""
    top_k = config.ks[-1]
    generation = PAPER_TOPN_GENERATION if task.spec.ranks_candidates else PAPER_SEQUENTIAL_GENERATION
    returned = generation["num_return_sequences"]
    rankings: dict[str, list[list[str | None]]] = {"model": [], **{name: [] for name in baselines}}
    outputs = invalid = outside = removed = 0
    for rows in _batches(dataset, config.batch_size, f"evaluate {task.name.lower()} (paper)", show_progress):
        sequences = model.generate(**_model_inputs(rows, collator, model.device), **generation)
        generated = _generated_items(sequences, item_index, tokenizer)
        for index, row in enumerate(rows):
            allowed = set(row["candidates"]) if task.spec.ranks_candidates else None
            history = set(row["history"])
            ranked: list[str | None] = []
            for item in generated[index * returned:(index + 1) * returned]:
                outputs += 1
                if item is None:
                    invalid += 1
                elif allowed is not None and item not in allowed:
                    outside += 1
                    item = None
                elif allowed is None and item in history:  # seq.py drops these after the search
                    removed += 1
                    continue
                ranked.append(item)  # a None keeps its rank as a miss
            rankings["model"].append(ranked[:top_k])
        _add_baseline_rankings(rankings, rows, task, baselines, top_k)
    targets = list(dataset["target_item"])
    results = {system: ranking_metrics(ranked, targets, config.ks) for system, ranked in rankings.items()}
    results["num_examples"] = len(targets)
    results["invalid_share"] = invalid / outputs  # generated sequences that are no catalog id (misses)
    if not task.spec.ranks_candidates:
        results["history_share"] = removed / outputs  # catalog ids of the user's history, removed
        results["protocol"] = (
            f"The paper's: free beam search ({generation['num_beams']} beams, {returned} returned, length penalty "
            "1.0, early stopping) over the whole vocabulary, the user's history removed afterwards; an output that "
            "is no catalog id is a miss (not filled in)."
        )
    else:
        results["outside_candidates_share"] = outside / outputs
        results["protocol"] = (
            f"The paper's: free beam search ({generation['num_beams']} beams, {returned} returned), not restricted "
            f"to the {_topn_candidates(dataset, data)}; an output that is no catalog id or "
            "lies outside the candidates is a miss (not filled in)."
        )
    results["samples"] = _ranking_samples(dataset, rankings, top_k, config.num_samples)
    return results


def _generated_items(sequences: torch.LongTensor, item_index: ItemIndex, tokenizer) -> list[str | None]:
    """The catalog item each free-beam sequence `[R, T]` names, or None. Numbers as text are read as the
    reference reads them: the decoded text's first space-separated word; ids of new tokens by their tokens."""
    if item_index.indexing.is_text:
        words = (text.split(" ")[0] for text in tokenizer.batch_decode(sequences, skip_special_tokens=True))
        return [word if word in item_index else None for word in words]
    positions = item_index.items_of_sequences(sequences[:, 1:]).tolist()
    return [item_index.item_ids[position] if position >= 0 else None for position in positions]


def _ranking_samples(dataset: Dataset, rankings: Mapping[str, list], top_k: int, num_samples: int) -> list[dict]:
    return [
        {
            "user_id": row["user_id"],
            "recent_history": row["history"][-5:],
            "target": row["target_item"],
            **{f"{system}_top_{top_k}": rankings[system][position] for system in rankings},
        }
        for position, row in enumerate(dataset.select(range(min(num_samples, len(dataset)))))
    ]


def _topn_candidates(dataset: Dataset, data: DatasetDict) -> str:
    """How the top-N candidates were formed, saying so when a small catalog leaves only the unseen items."""
    sizes = sorted({len(candidates) for candidates in dataset["candidates"]})
    size = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    catalog_size = data[ITEMS].num_rows
    items_of = dict(zip(data[USERS]["user_id"], data[USERS]["items"]))
    all_unseen = all(
        len(candidates) - 1 == catalog_size - len(set(items_of[user_id]))
        for user_id, candidates in zip(dataset["user_id"], dataset["candidates"])
    )
    if all_unseen:
        return (f"all items the user has not interacted with ({size} candidates with the held-out item: the "
                f"{catalog_size}-item catalog is too small for the usual 99 sampled negatives)")
    return f"{size} candidates (it and the split's stored negatives)"


def _topn_protocol(dataset: Dataset, data: DatasetDict) -> str:
    """This project's top-N protocol: the candidates, ranked exactly."""
    return (
        f"The held-out item among {_topn_candidates(dataset, data)}, ranked by the exact sequence log-likelihood "
        "of each candidate id; a tie ranks the held-out item last."
    )


def _evaluate_text(model, tokenizer, dataset, task, config, collator, show_progress, protocol) -> dict:
    if protocol is EvalProtocol.PAPER:
        generation, seeded = PAPER_TEXT_GENERATION, nullcontext()
        decoding = (f"The paper's: beam search with {generation['num_beams']} beams (the reference's 21 beams in 3 "
                    f"groups, diversity 0), {generation['min_length']} to {generation['max_length']} tokens")
    else:
        settings = TextGenerationSettings.up_to(config.max_new_tokens, sample_seed=config.text_sample_seed)
        generation = text_generation_kwargs(model, settings)
        seeded, decoding = settings.seeded(model.device), settings.describe()
    predictions: list[str] = []
    with seeded:  # sampling: one random stream across the batches
        for rows in _batches(dataset, config.batch_size, f"evaluate {task.name.lower()}", show_progress):
            sequences = model.generate(**_model_inputs(rows, collator, model.device), **generation)
            predictions += tokenizer.batch_decode(sequences, skip_special_tokens=True)
    # As the paper's scripts do: the reference is the tokenised target decoded back (what the model can spell,
    # truncated like the training labels), and BLEU splits both texts on whitespace.
    references = tokenizer.batch_decode(list(dataset["labels"]), skip_special_tokens=True)
    identity_columns = [name for name in ("user_id", "item_id", "rationale_kind") if name in dataset.column_names]
    samples = [
        {**{name: row[name] for name in identity_columns}, "generated": prediction, "reference": reference}
        for row, prediction, reference in zip(
            dataset.select(range(min(config.num_samples, len(dataset)))), predictions, references
        )
    ]
    return {
        "model": text_generation_metrics(predictions, references),
        "num_examples": len(references),
        "protocol": f"{decoding}, scored against the {config.split} reviews' {task.spec.target_description} (tokenised and decoded "
        "back, as the paper's scripts do). A student trained from a configuration (every one here: no pretrained T5 "
        "weights offline) learns its English from the training texts alone.",
        "samples": samples,
    }


def _summary(results: Mapping[str, Mapping]) -> str:
    """One line per task: its examples and the model's and baselines' main metrics."""
    lines = []
    for task, task_results in results.items():
        if "skipped" in task_results:
            lines.append(f"  {task}: skipped ({task_results['skipped']})")
            continue
        systems = [system for system in ("model", *(b.value for b in Baseline)) if system in task_results]
        shown = ", ".join(
            f"{system} " + " ".join(f"{metric}={value:.4f}" for metric, value in task_results[system].items())
            for system in systems
        )
        lines.append(f"  {task} ({task_results['num_examples']} examples): {shown}")
    return "\n".join(lines)
