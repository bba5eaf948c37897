"""Prompt templates of the four RDRec tasks (own wording, the paper's structure).

Training samples one of several templates per task (from a seeded generator); evaluation and inference
always use the first template of each list (:func:`prompt_for`), which is also among the training ones.
Users appear as ``user_<id>``; items as their item-id scheme's mention (``item_<id>`` for numbers as text,
new tokens otherwise, see :class:`rdrec_hf.models.ItemIdScheme`); item lists are space-separated mentions
(no punctuation glued to an id, so whole-word spans stay clean). The rationale task has two prompt kinds:
about a user (target: the teacher's ``user_preference``) and about an item (target: ``item_attribute``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from enum import Enum

from ..models.item_ids import ItemIdScheme, ItemIndexing
from ..tasks import Task

MAX_HISTORY_ITEMS = 20  # the paper's sequential window
TEXT_IDS = ItemIdScheme(ItemIndexing.RANDOM)  # numbers as text: the mention rule of sequential and random


class RationaleKind(str, Enum):
    """Which side a rationale prompt asks about."""

    USER = "user"  # -> user_preference
    ITEM = "item"  # -> item_attribute


SEQUENTIAL_TEMPLATES = (
    "user_{user} bought these items in this order: {history} . Which item comes next?",
    "Purchase history of user_{user}: {history} . Predict the next purchase.",
    "Here are the items user_{user} chose so far: {history} . Recommend the next one.",
    "Given that user_{user} purchased {history} , what will the user buy next?",
    "user_{user} history {history}",
)
TOPN_TEMPLATES = (
    "Which of these items should be recommended to user_{user}? {candidates}",
    "Choose the one item user_{user} would like most from: {candidates}",
    "Candidates for user_{user}: {candidates} . Pick the best one.",
    "user_{user} candidates {candidates}",
)
EXPLANATION_TEMPLATES = (
    "Explain why user_{user} chose {item} .",
    "Write the reason user_{user} would give for {item} .",
    "What does user_{user} say about {item} ?",
    "user_{user} {item}",
)
RATIONALE_TEMPLATES = {
    RationaleKind.USER: (
        "Describe the preferences of user_{user} .",
        "What does user_{user} like?",
    ),
    RationaleKind.ITEM: (
        "Describe the attributes of {item} .",
        "What is {item} like?",
    ),
}
TEMPLATES = {Task.SEQUENTIAL: SEQUENTIAL_TEMPLATES, Task.TOPN: TOPN_TEMPLATES, Task.EXPLANATION: EXPLANATION_TEMPLATES}


def mention_list(items: Sequence[str], scheme: ItemIdScheme = TEXT_IDS) -> str:
    """``["3", "17"] -> "item_3 item_17"`` (text ids; other schemes write their own mentions)."""
    return " ".join(scheme.mention(item) for item in items)


def templates_for(task: Task, kind: RationaleKind | None = None) -> tuple[str, ...]:
    """The training templates of a task (a rationale ``kind`` is required for ``Task.RATIONALE``)."""
    if Task(task) is Task.RATIONALE:
        if kind is None:
            raise ValueError("Task.RATIONALE needs kind=RationaleKind.USER or RationaleKind.ITEM")
        return RATIONALE_TEMPLATES[RationaleKind(kind)]
    return TEMPLATES[Task(task)]


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
    if task is Task.RATIONALE and kind is None:
        raise ValueError("a rationale prompt needs kind=RationaleKind.USER or RationaleKind.ITEM")
    kind = RationaleKind(kind) if kind is not None else None
    needed = {
        Task.SEQUENTIAL: {"user_id": user_id, "history": history},
        Task.TOPN: {"user_id": user_id, "candidates": candidates},
        Task.EXPLANATION: {"user_id": user_id, "item_id": item_id},
        Task.RATIONALE: {"user_id": user_id} if kind is RationaleKind.USER else {"item_id": item_id},
    }[task]
    missing = [name for name, value in needed.items() if value is None or (not isinstance(value, str) and not value)]
    if missing:
        raise ValueError(f"prompt for {task.name.lower()} needs {missing}")
    return render(templates_for(task, kind)[0], user_id, history, item_id, candidates, scheme)
