"""Prompts of the RDRec tasks and their encoding: what the student is asked, as text and as model inputs.

Hub custom code: this file imports only ``torch`` and its sibling files (it is copied beside saved
checkpoints, so an Inference Endpoints handler builds the same prompts without the package installed).

Templates (own wording, the paper's structure) are each task's :class:`rdrec_hf.models.tasks.PromptSpec`s.
Training samples one of several templates per task (from a seeded generator); evaluation and inference
always use the first template of each list (:func:`prompt_for`), which is also among the training ones.
Users appear as ``user_<id>``; items as their item-id scheme's mention (``item_<id>`` for numbers as text,
new tokens otherwise, see :class:`rdrec_hf.models.ItemIdScheme`); item lists are space-separated mentions
(no punctuation glued to an id, so whole-word spans stay clean). The rationale task has two prompt kinds:
about a user (target: the teacher's ``user_preference``) and about an item (target: ``item_attribute``).

Whole-word ids mark the tokens of each user / item mention (``user_<id>``, ``item_<id>``, or a run of new item
tokens; the pattern is the item-id scheme's :data:`rdrec_hf.models.item_ids.MENTION_PATTERN`): the k-th mention of
a prompt gets id k (1, 2, ...) on every token whose character span overlaps the mention, every other token gets
0 (special tokens included). Using character offsets instead of scanning token strings for ``_`` makes this
correct for any fast tokenizer, including ones that merge an id's last digit with the punctuation after it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from .item_ids import MENTION_PATTERN, ItemIdScheme, ItemIndexing, tokenize_with_item_ids
from .tasks import RationaleKind, Task

MAX_HISTORY_ITEMS = 20  # the paper's sequential window
DEFAULT_MAX_SOURCE_LENGTH = 512  # the longest beauty top-N prompt (100 candidates) takes 419 T5 tokens
TEXT_IDS = ItemIdScheme(ItemIndexing.RANDOM)  # numbers as text: the mention rule of sequential and random


def mention_list(items: Sequence[str], scheme: ItemIdScheme = TEXT_IDS) -> str:
    """``["3", "17"] -> "item_3 item_17"`` (text ids; other schemes write their own mentions)."""
    return " ".join(scheme.mention(item) for item in items)


def templates_for(task: Task, kind: RationaleKind | None = None) -> tuple[str, ...]:
    """The training templates of a task (a rationale ``kind`` is required for ``Task.RATIONALE``)."""
    return Task(task).spec.prompt(kind).templates


def render(
    template: str,
    user_id: str | None = None,
    history: Sequence[str] = (),
    item_id: str | None = None,
    candidates: Sequence[str] = (),
    scheme: ItemIdScheme = TEXT_IDS,
) -> str:
    """Fill a template, items written by ``scheme``; the history keeps its last :data:`MAX_HISTORY_ITEMS` items."""
    return template.format(
        user=user_id,
        item=scheme.mention(item_id) if item_id is not None else None,
        history=mention_list(list(history)[-MAX_HISTORY_ITEMS:], scheme),
        candidates=mention_list(candidates, scheme),
    )


def sample_prompt(rng: random.Random, task: Task, kind: RationaleKind | None = None, **fields) -> str:
    """A training prompt: a template drawn from ``rng``, filled with ``fields`` (see :func:`render`)."""
    return render(rng.choice(templates_for(task, kind)), **fields)


def prompt_for(
    task: Task | str | int,
    user_id: str | None = None,
    history: Sequence[str] = (),
    item_id: str | None = None,
    candidates: Sequence[str] = (),
    kind: RationaleKind | str | None = None,
    scheme: ItemIdScheme = TEXT_IDS,
) -> str:
    """The fixed evaluation / inference prompt of a task, items written by ``scheme``.

    ``SEQUENTIAL``: ``user_id`` + ``history``; ``TOPN``: ``user_id`` + ``candidates``; ``EXPLANATION``:
    ``user_id`` + ``item_id``; ``RATIONALE``: ``kind="user"`` + ``user_id`` or ``kind="item"`` + ``item_id``.
    Raises ``ValueError`` when a field the task needs is missing.
    """
    task = Task.parse(task)
    prompt = task.spec.prompt(kind)
    given = {"user_id": user_id, "history": history, "item_id": item_id, "candidates": candidates}
    needed = {name: given[name] for name in prompt.fields}
    missing = [name for name, value in needed.items() if value is None or (not isinstance(value, str) and not value)]
    if missing:
        raise ValueError(f"prompt for {task.name.lower()} needs {missing}")
    return render(prompt.templates[0], user_id, history, item_id, candidates, scheme)


# ------------------------------------------------------------------------------------- encoding
def mention_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the user and item mentions, in order."""
    return [match.span() for match in MENTION_PATTERN.finditer(text)]


def whole_word_ids(text: str, offsets: Sequence[Sequence[int]]) -> list[int]:
    """Whole-word ids of one encoded text, aligned with its tokens.

    ``offsets``: the tokenizer's ``offset_mapping`` for ``text`` (one ``(start, end)`` per token; empty
    spans such as ``</s>``'s ``(0, 0)`` get 0).
    """
    spans = mention_spans(text)
    ids = []
    mention = 0  # index into spans of the first mention that may still overlap a token
    for start, end in offsets:
        while mention < len(spans) and spans[mention][1] <= start:
            mention += 1
        inside = end > start and mention < len(spans) and spans[mention][0] < end
        ids.append(mention + 1 if inside else 0)
    return ids


def encode_prompts(tokenizer, texts: Sequence[str], max_length: int, return_tensors: str | None = None) -> dict:
    """Tokenise prompts with truncation to ``max_length`` tokens, item mentions by the tokenizer's item-token rule
    (:func:`rdrec_hf.models.item_ids.tokenize_with_item_ids`).

    Returns ``input_ids``, ``attention_mask`` and ``whole_word_ids``: lists of per-text lists, or with
    ``return_tensors="pt"`` right-padded ``LongTensor``s of shape ``[len(texts), longest]`` (whole-word ids
    padded with 0).
    """
    encoded = tokenize_with_item_ids(tokenizer, texts, truncation=True, max_length=max_length)
    batch = {
        "input_ids": encoded["input_ids"],
        "attention_mask": encoded["attention_mask"],
        "whole_word_ids": [whole_word_ids(t, o) for t, o in zip(texts, encoded["offset_mapping"])],
    }
    if return_tensors is None:
        return batch
    if return_tensors != "pt":
        raise ValueError(f"return_tensors must be None or 'pt', got {return_tensors!r}")
    pad_values = {"input_ids": tokenizer.pad_token_id, "attention_mask": 0, "whole_word_ids": 0}
    return {name: pad_sequences(rows, pad_values[name]) for name, rows in batch.items()}


def pad_sequences(rows: Sequence[Sequence[int]], value: int, pad_to_multiple_of: int | None = None) -> torch.Tensor:
    """Right-pad integer rows to the longest (rounded up to ``pad_to_multiple_of``): ``LongTensor [len(rows), L]``."""
    longest = max((len(row) for row in rows), default=0)
    if pad_to_multiple_of:
        longest = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    padded = torch.full((len(rows), longest), value, dtype=torch.long)
    for index, row in enumerate(rows):
        padded[index, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return padded
