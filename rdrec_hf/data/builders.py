"""Task builders: tokenised training mixtures and evaluation sets of the RDRec tasks.

Every task is read from its :class:`rdrec_hf.models.tasks.TaskSpec` (its kind, prompts, units and targets);
no task is named here. Training (:func:`build_training_dataset`) only ever reads the training part of the
leave-one-out split; for the four RDRec tasks:

- ``SEQUENTIAL``: per user, a random contiguous segment of the training history (``items[:-2]``), drawn as
  the reference code does (start uniform, then end uniform after it) or as a prefix (:class:`SegmentStart`);
  its last item is the target, the up to 20 items before it are the prompt's history;
- ``TOPN``: per user, a random training item as the positive plus ``num_negatives`` items sampled outside
  *all* the user's items, in a random order;
- ``EXPLANATION``: per training review (``split == "train"``), user + item -> the explanation sentence;
- ``RATIONALE``: per training review with a usable rationale (status ``ok``/``repaired``), user ->
  ``user_preference`` and item -> ``item_attribute`` (two examples of one record).

The task mixture (:class:`MixtureMode`) is read as the paper's code reads it, as each task's share of every
batch (``batch_shares``), or as a number of examples per unit (``unit_counts``).

Evaluation (:func:`build_eval_dataset`) uses the fixed template, the stored negatives of the split and, for
text tasks, the reviews of that split.

Items are written and targeted by the dataset's item-id scheme (:func:`item_id_scheme`): prompts carry its
mentions, ranking targets its target tokens (the tokenizer must hold the scheme's new tokens). Training
prompts are assembled from words tokenised once (:mod:`rdrec_hf.data.mixture`), every epoch's draw being array
work; evaluation texts are rendered in plain Python from explicit seeds, then tokenised once by a batched
``datasets.map``; pass ``cache_dir`` to keep that tokenised result on disk, keyed by the dataset, the options
and the tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path

from datasets import Dataset, DatasetDict

from ..models.item_ids import ItemIdScheme
from ..models.prompting import DEFAULT_MAX_SOURCE_LENGTH, encode_prompts, prompt_for
from ..models.tasks import RANKING_TASKS, TASK_SPECS, Task, TaskKind, TaskSpec
from .mixture import TrainingMixture, epoch_seed
from .schema import (
    REVIEWS,
    TRAIN,
    USERS,
    get_metadata,
    item_id_scheme,
    split_target,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_TARGET_LENGTH = 64
USABLE_RATIONALE_STATUSES = ("ok", "repaired")

RANKING_TASK_IDS = tuple(int(task) for task in RANKING_TASKS)
# The reference's `AllBatchify` sizes an epoch by the first task of this order that is in the mixture.
EPOCH_DEFINING_ORDER = tuple(sorted(TASK_SPECS, key=lambda task: TASK_SPECS[task].epoch_priority))


class MixtureMode(str, Enum):
    """What the ratios of a task mixture mean."""

    # The paper's (the reference's `AllBatchify`): ratio_i / sum is task i's share of every batch's draws, a
    # rationale record drawing its user and its item prompt (so 1:1:1:1 is 20/20/40/20 % of the examples
    # explanation/sequential/rationale/top-N). An epoch draws every unit of the first task of
    # `EPOCH_DEFINING_ORDER` in the mixture once; the other tasks cycle over their units as often as their
    # shares need. The examples are interleaved so that every run of consecutive examples holds the shares.
    BATCH_SHARES = "batch_shares"
    # ratio_i examples per unit of task i (users for the ranking tasks, training reviews and their rationale
    # prompts for the text tasks), shuffled: 1 draws every unit once, 7 seven times, 0.5 a random half.
    UNIT_COUNTS = "unit_counts"


class SegmentStart(str, Enum):
    """Where a sequential training segment starts; its end (the target) is then uniform after the start."""

    # The reference's: the start uniform over the history, so a segment often leaves out the older items.
    UNIFORM = "uniform"
    # The history's first item: every target keeps all the items before it (the last 20 in the prompt), as
    # an evaluation prompt keeps the whole history and as SASRec's loss at every position reads its prefix.
    FIRST = "first"


def _item_target_token_ids(targets: list[str], tokenizer, scheme: ItemIdScheme) -> list[list[int]]:
    """Tokens of ranking targets: one item id, or several space-separated (``sequential_targets``), in order."""
    items = [target.split(" ") for target in targets]
    tokens = iter(scheme.target_token_ids([item for row in items for item in row], tokenizer))
    return [[token for _ in row for token in next(tokens)] for row in items]


def _tokenize(batch: dict, tokenizer, scheme: ItemIdScheme, max_source_length: int, max_target_length: int) -> dict:
    encoded = encode_prompts(tokenizer, batch["source_text"], max_source_length)
    if "target_text" in batch:
        # Ranking targets are item ids, whose tokens come from the scheme; text targets are tokenised as text.
        is_item = [task_id in RANKING_TASK_IDS for task_id in batch["task_id"]]
        labels = [None] * len(is_item)
        for wanted, encode in (
            (True, lambda texts: _item_target_token_ids(texts, tokenizer, scheme)),
            (False, lambda texts: tokenizer(texts, truncation=True, max_length=max_target_length)["input_ids"]),
        ):
            rows = [row for row, item in enumerate(is_item) if item is wanted]
            if rows:
                for row, tokens in zip(rows, encode([batch["target_text"][row] for row in rows])):
                    labels[row] = tokens
        encoded["labels"] = labels
    return encoded


def _tokenized_dataset(
    columns: dict, tokenizer, scheme: ItemIdScheme, max_source_length: int, max_target_length: int, cache_file
) -> Dataset:
    """``Dataset.from_dict(columns)`` plus model columns from one batched map; warns about length limits."""
    if cache_file is not None and Path(cache_file).is_file():
        logger.info("loading tokenised examples from %s", cache_file)
        return Dataset.from_file(str(cache_file))
    dataset = Dataset.from_dict(columns).map(
        _tokenize,
        batched=True,
        batch_size=1000,
        fn_kwargs=dict(
            tokenizer=tokenizer, scheme=scheme, max_source_length=max_source_length, max_target_length=max_target_length
        ),
        cache_file_name=str(cache_file) if cache_file is not None else None,
        desc="tokenising",
    )
    at_limit = sum(len(ids) >= max_source_length for ids in dataset["input_ids"])
    if at_limit:
        logger.warning("%d of %d prompts reached max_source_length=%d and may be truncated",
                       at_limit, dataset.num_rows, max_source_length)
    return dataset


def _cache_file(cache_dir, kind: str, data: DatasetDict, tokenizer, options: dict) -> Path | None:
    if cache_dir is None:
        return None
    key = json.dumps(
        {
            "metadata": get_metadata(data).to_json(),
            "fingerprints": {name: split._fingerprint for name, split in data.items()},
            "tokenizer": [tokenizer.name_or_path, len(tokenizer), type(tokenizer).__name__],
            **options,
        },
        sort_keys=True,
        default=str,
    )
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return Path(cache_dir) / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.arrow"


def _reviews_of_split(data: DatasetDict, split: str) -> list[dict]:
    """The review rows of one leave-one-out split, as dicts (one batched filter, one Arrow conversion)."""
    keep = data[REVIEWS].filter(lambda splits: [s == split for s in splits], input_columns="split", batched=True)
    return keep.to_list()


def _review_records(rows: list[dict], spec: TaskSpec) -> list[tuple[str, str, tuple]]:
    """``(user_id, item_id, ((prompt, target), ...))`` of each review row with a target for at least one of the
    text task's prompts (in the spec's order; only usable rationales where the task needs them)."""
    records = []
    for row in rows:
        if spec.needs_rationale and row["rationale_status"] not in USABLE_RATIONALE_STATUSES:
            continue
        targets = tuple((prompt, row[prompt.target]) for prompt in spec.prompts if row[prompt.target])
        if targets:
            records.append((row["user_id"], row["item_id"], targets))
    return records


def _training_units(data: DatasetDict, task: Task) -> list:
    """What one example of ``task`` is drawn from: users (ranking tasks) or training reviews (text tasks)."""
    spec = task.spec
    if spec.kind is TaskKind.RANKING:
        users = data[USERS]
        return [(u, items) for u, items in zip(users["user_id"], users["items"]) if len(items) >= spec.min_user_items]
    return _review_records(_reviews_of_split(data, TRAIN), spec) if REVIEWS in data else []


def mixture_draws(units: Mapping[Task, int], weights: Mapping[Task, float], mode: MixtureMode) -> dict[Task, int]:
    """How many units each task draws in one epoch (a rationale draw is a record: up to two examples).

    Args:
        units: number of training units of every task with data (rationale: records).
        weights: the mixture's ratio of every task; tasks missing from ``units`` are left out.
        mode: ``unit_counts``: ``round(weight * units)``; ``batch_shares``: the task of
            ``EPOCH_DEFINING_ORDER`` that comes first draws each of its units once, every other task
            ``round(that count * weight / its weight)``.
    """
    present = {task: weight for task, weight in weights.items() if weight > 0 and units.get(task)}
    if mode is MixtureMode.UNIT_COUNTS:
        return {task: round(weight * units[task]) for task, weight in present.items()}
    if not present:
        return {}
    defining = next(task for task in EPOCH_DEFINING_ORDER if task in present)
    return {task: round(units[defining] * weight / present[defining]) for task, weight in present.items()}


def build_training_dataset(
    data: DatasetDict,
    tokenizer,
    task_weights: Mapping[Task | str | int, float],
    seed: int = 0,
    max_source_length: int = DEFAULT_MAX_SOURCE_LENGTH,
    max_target_length: int = DEFAULT_MAX_TARGET_LENGTH,
    num_negatives: int | None = None,
    mode: MixtureMode | str = MixtureMode.BATCH_SHARES,
    sequential_targets: int = 1,
    segment_start: SegmentStart | str = SegmentStart.UNIFORM,
    resample_each_epoch: bool = True,
) -> tuple[TrainingMixture, list[Task]]:
    """The training mixture of several tasks (:class:`rdrec_hf.data.mixture.TrainingMixture`): every prompt word
    and text target tokenised once here, epoch 0's draw made (seed ``seed``); ``set_epoch(e)`` draws epoch ``e``
    afresh (seed ``epoch_seed(seed, e)``) as array work, or keeps epoch 0's when ``resample_each_epoch`` is off.

    ``task_weights[task]`` is the task's ratio, read by ``mode`` (:class:`MixtureMode`):

    - ``batch_shares`` (the paper's): ratios are shares of every batch's draws, a rationale record drawing two
      examples; the epoch is set by the first task of explanation, rationale, sequential, top-N in the
      mixture, whose units are each drawn once. The examples come in an interleaved order in which every run
      of consecutive examples holds the shares (up to one draw per task): read them in order.
    - ``unit_counts``: ratios are examples per unit (users for ``SEQUENTIAL`` / ``TOPN``, training reviews
      for ``EXPLANATION``, each rationale prompt of a training review for ``RATIONALE``); ``1.0`` draws every
      unit once, ``2.0`` twice (with fresh random segments, negatives and templates), ``0.5`` a random half.
      The examples are shuffled.

    ``sequential_targets`` > 1 trains a sequential segment to generate the up to that many training items
    that follow it, in order (a loss at each decoder step; ranking reads the first): more targets per encoded
    prompt, as SASRec's loss at every position. It needs one-token item ids (``independent``).
    ``segment_start`` (:class:`SegmentStart`) draws a segment's start uniformly (the reference) or keeps the
    history's first item (prefixes).

    A task drawn more often than it has units cycles over whole shuffled passes of them. ``0`` leaves a task
    out; tasks without data (no reviews, no rationales) are left out with a logged notice.

    Returns the mixture (``mixture[i]``: ``input_ids``, ``attention_mask``, ``whole_word_ids``, ``labels``,
    ``task_id``; ``mixture.to_dataset()`` adds ``source_text`` / ``target_text`` for inspection) and its tasks.
    """
    weights = {Task.parse(task): float(weight) for task, weight in task_weights.items()}
    if any(weight < 0 for weight in weights.values()) or not any(weights.values()):
        raise ValueError(f"task weights must be >= 0 with at least one > 0, got {task_weights}")
    mode, segment_start = MixtureMode(mode), SegmentStart(segment_start)
    scheme = item_id_scheme(data)
    if sequential_targets < 1:
        raise ValueError(f"sequential_targets must be at least 1, got {sequential_targets}")
    if sequential_targets > 1 and scheme.ends_with_eos:
        raise ValueError(f"sequential_targets={sequential_targets} needs one-token item ids (indexing: independent); "
                         f"this dataset's are {scheme.indexing.value}")
    num_negatives = get_metadata(data).num_negatives if num_negatives is None else num_negatives
    units_of = {}
    for task in sorted(task for task, weight in weights.items() if weight > 0):
        units = _training_units(data, task)
        if mode is MixtureMode.UNIT_COUNTS and task.spec.kind is TaskKind.TEXT:  # a unit per prompt, not per record
            units = [(user_id, item_id, (target,)) for user_id, item_id, targets in units for target in targets]
        if units:
            units_of[task] = units
        else:
            logger.warning("no training data for task %s (no reviews or rationales): left out", task.name.lower())
    draws = mixture_draws({task: len(units) for task, units in units_of.items()}, weights, mode)
    mixture = TrainingMixture(
        data, tokenizer, draws, units=units_of, num_negatives=num_negatives,
        max_source_length=max_source_length, max_target_length=max_target_length,
        sequential_targets=sequential_targets, uniform_start=segment_start is SegmentStart.UNIFORM,
        seed_of_epoch=(lambda epoch: epoch_seed(seed, epoch)) if resample_each_epoch else (lambda epoch: seed),
        interleave=mode is MixtureMode.BATCH_SHARES,
    )
    counts = {task.name.lower(): f"{draws[task]:,} draws from {len(units):,} units" for task, units in units_of.items()}
    logger.info("training mixture (%s, seed %d): %d examples; %s", mode.value, seed, len(mixture), counts)
    return mixture, list(units_of)


def _sample_positions(total: int, max_examples: int | None, seed: int) -> list[int] | None:
    """Sorted seeded sample of ``max_examples`` positions out of ``total``; ``None`` when all are kept."""
    if max_examples is None or max_examples >= total:
        return None
    return sorted(random.Random(seed).sample(range(total), max_examples))


def sample_users(user_ids: Sequence[str], max_users: int | None, seed: int) -> list[str]:
    """A seeded sample of ``max_users`` users, in their original order; all users when ``max_users`` is
    ``None`` or not smaller than their number. Evaluation draws it once and hands it to
    :func:`build_eval_dataset` (``users=``) and to the baselines."""
    keep = _sample_positions(len(user_ids), max_users, seed)
    return list(user_ids) if keep is None else [user_ids[position] for position in keep]


def _positions_of_users(all_user_ids: Sequence[str], users: Sequence[str]) -> list[int]:
    """Positions (ascending) of ``users`` among ``all_user_ids``; an unknown user is a ``ValueError``."""
    wanted = set(users)
    positions = [position for position, user_id in enumerate(all_user_ids) if user_id in wanted]
    if len(positions) != len(wanted):
        unknown = sorted(wanted - {all_user_ids[position] for position in positions})
        raise ValueError(f"{len(unknown)} evaluation users are not in the dataset (e.g. {unknown[0]!r})")
    return positions


def _ranking_eval_rows(users: Dataset, task: Task, split: str, seed: int, scheme: ItemIdScheme) -> dict[str, list]:
    """Untokenised evaluation columns of a ranking task for the given users."""
    negatives_column = "valid_negatives" if split == "validation" else "test_negatives"
    columns: dict[str, list] = {name: [] for name in ("user_id", "target_item", "history", "source_text")}
    ranks_candidates = task.spec.ranks_candidates
    if ranks_candidates:
        columns["candidates"] = []
        if users.num_rows and not any(users[negatives_column]):
            raise ValueError(f"no user of this dataset has {negatives_column}: top-N would rank the target alone "
                             "(HR@1 = 1 for every system); prepare the dataset with --num-negatives 1 or more")
    for user_id, items, negatives in zip(users["user_id"], users["items"], users[negatives_column]):
        history, target = split_target(items, split)
        columns["user_id"].append(user_id)
        columns["target_item"].append(target)
        columns["history"].append(history)
        if ranks_candidates:
            candidates = [target, *negatives]
            random.Random(f"{seed}:{user_id}").shuffle(candidates)  # independent of which users are sampled
            columns["candidates"].append(candidates)
            columns["source_text"].append(prompt_for(task, user_id=user_id, candidates=candidates, scheme=scheme))
        else:
            columns["source_text"].append(prompt_for(task, user_id=user_id, history=history, scheme=scheme))
    columns["target_text"] = list(columns["target_item"])
    return columns


def _text_eval_rows(data: DatasetDict, task: Task, split: str, scheme: ItemIdScheme) -> dict[str, list]:
    """Untokenised evaluation columns of a text task from the reviews of ``split``; a task with several prompt
    kinds adds ``rationale_kind``."""
    split_target(["", ""], split)  # validates the split name
    if REVIEWS not in data:
        raise ValueError(f"task {task.name.lower()} needs a 'reviews' split; this dataset has none")
    spec = task.spec
    columns: dict[str, list] = {name: [] for name in ("user_id", "item_id", "source_text", "target_text")}
    has_kinds = any(prompt.kind is not None for prompt in spec.prompts)
    if has_kinds:
        columns["rationale_kind"] = []
    for user_id, item_id, targets in _review_records(_reviews_of_split(data, split), spec):
        for prompt, target in targets:
            columns["user_id"].append(user_id)
            columns["item_id"].append(item_id)
            columns["source_text"].append(
                prompt_for(task, user_id=user_id, item_id=item_id, kind=prompt.kind, scheme=scheme))
            columns["target_text"].append(target)
            if has_kinds:
                columns["rationale_kind"].append(prompt.kind.value)
    if not columns["target_text"]:
        raise ValueError(f"no {split} examples for task {task.name.lower()} (no reviews / rationales there)")
    return columns


def build_eval_dataset(
    data: DatasetDict,
    task: Task | str | int,
    split: str,
    tokenizer,
    *,
    max_source_length: int = DEFAULT_MAX_SOURCE_LENGTH,
    max_target_length: int = DEFAULT_MAX_TARGET_LENGTH,
    max_examples: int | None = None,
    users: Sequence[str] | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """Evaluation examples of one task on ``split`` (``"validation"`` or ``"test"``) with the fixed template.

    Columns: the model's (``input_ids``, ``attention_mask``, ``whole_word_ids``, ``labels``, ``task_id``),
    ``source_text``, ``target_text`` and

    - ranking tasks: ``user_id``, ``target_item``, ``history`` (all the user's items before the target,
      to exclude from rankings); top-N adds ``candidates`` (the target and the split's stored negatives,
      shuffled by a seed per user);
    - text tasks: ``user_id``, ``item_id`` (rationale adds ``rationale_kind``: ``user``/``item``).

    ``users`` keeps the examples of those users only (e.g. :func:`sample_users`; in dataset order; a user
    without examples of a text task has none). ``max_examples`` then keeps a seeded random sample of that many
    examples (in their original order): for the ranking tasks the users at positions
    ``sorted(random.Random(seed).sample(range(num_users), max_examples))``, as :func:`sample_users` draws them.
    """
    task = Task.parse(task)
    scheme = item_id_scheme(data)
    if task.spec.kind is TaskKind.RANKING:
        rows = data[USERS]
        if users is not None:
            rows = rows.select(_positions_of_users(rows["user_id"], users))
        keep = _sample_positions(rows.num_rows, max_examples, seed)
        columns = _ranking_eval_rows(rows if keep is None else rows.select(keep), task, split, seed, scheme)
    else:
        columns = _text_eval_rows(data, task, split, scheme)
        if users is not None:
            wanted = set(users)
            kept = [row for row, user_id in enumerate(columns["user_id"]) if user_id in wanted]
            columns = {name: [values[i] for i in kept] for name, values in columns.items()}
            if not kept:
                raise ValueError(f"none of the {len(wanted)} given users has a {split} example of {task.name.lower()}")
        keep = _sample_positions(len(columns["source_text"]), max_examples, seed)
        if keep is not None:
            columns = {name: [values[i] for i in keep] for name, values in columns.items()}
    columns["task_id"] = [int(task)] * len(columns["source_text"])
    users_key = {} if users is None else {"users": hashlib.sha256("\n".join(users).encode()).hexdigest()}
    cache_file = _cache_file(
        cache_dir, f"{task.name.lower()}-{split}", data, tokenizer,
        {"max_examples": max_examples, "seed": seed, "lengths": [max_source_length, max_target_length], **users_key},
    )
    return _tokenized_dataset(columns, tokenizer, scheme, max_source_length, max_target_length, cache_file)
