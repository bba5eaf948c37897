"""The RDRec tasks and their table of facts (:data:`TASK_SPECS`): what each task is asked, what it answers
and how it is drawn. The integer value of a :class:`Task` is the ``task_id`` the student model sees.

Builders, prompts, the trainer and evaluation read a task's :class:`TaskSpec` instead of naming tasks, so a
task whose prompts, units and targets have the shapes below is one entry here (its enum member, its spec).

Hub custom code: this file imports only the standard library (it is copied beside saved checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class Task(IntEnum):
    SEQUENTIAL = 0  # history -> next item id
    TOPN = 1  # user + 100 candidates -> the positive item id
    EXPLANATION = 2  # user + item -> a sentence of the user's review
    RATIONALE = 3  # user -> teacher's user preference; item -> teacher's item attributes

    @classmethod
    def parse(cls, value: "str | int | Task") -> "Task":
        """Accept a member, its value or its (case-insensitive) name, e.g. ``"topn"``."""
        if isinstance(value, cls):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[str(value).upper().replace("-", "").replace("_", "")]
        except KeyError:
            raise ValueError(f"unknown task {value!r}; choose from {[t.name.lower() for t in cls]}") from None

    @property
    def spec(self) -> "TaskSpec":
        return TASK_SPECS[self]


class TaskKind(str, Enum):
    """What a task's target is: it decides how the target is tokenised, decoded and scored."""

    RANKING = "ranking"  # an item id, tokenised by the item-id scheme; ranked, scored by HR@k / NDCG@k
    TEXT = "text"  # a sentence, tokenised as text; generated, scored by BLEU / ROUGE


class RationaleKind(str, Enum):
    """Which side a rationale prompt asks about."""

    USER = "user"  # -> user_preference
    ITEM = "item"  # -> item_attribute


@dataclass(frozen=True)
class PromptSpec:
    """One kind of prompt of a task: its templates, the fields that fill them and where its target lies.

    ``fields`` are :func:`rdrec_hf.models.prompting.prompt_for` arguments (``user_id``, ``history``, ``item_id``,
    ``candidates``). A ranking prompt names ``history`` (its target is the item after a segment of the training
    history, ranked against the whole catalog) or ``candidates`` (a training item among sampled negatives,
    ranked against them). A text prompt's ``target`` is the review column holding its reference sentence.
    """

    templates: tuple[str, ...]  # training draws one per example; evaluation and inference use the first
    fields: tuple[str, ...]
    target: str | None = None  # text tasks: a column of the dataset's reviews
    kind: RationaleKind | None = None  # which prompt, for a task that has several


@dataclass(frozen=True)
class TaskSpec:
    """Everything the library needs to know of a task.

    Units (what one training draw is made from) follow the kind: a ranking task draws users (those with at
    least ``min_user_items`` items), a text task draws training reviews, each giving one example per prompt
    whose target is present (both rationale prompts of a record come from one draw). Metrics follow the kind
    too (:class:`TaskKind`).
    """

    task: Task
    kind: TaskKind
    prompts: tuple[PromptSpec, ...]
    epoch_priority: int  # batch-share mixtures size the epoch by the present task with the lowest value
    target_description: str | None = None  # text tasks: what the references are, in reports ("explanations")
    min_user_items: int = 0  # ranking tasks: users with fewer items (all splits) give no training unit
    needs_rationale: bool = False  # text tasks: only reviews whose teacher rationale is usable give units

    def __post_init__(self):
        if not self.prompts:
            raise ValueError(f"{self.task.name}: a task needs at least one prompt")
        for prompt in self.prompts:
            if not prompt.templates:
                raise ValueError(f"{self.task.name}: a prompt needs at least one template")
            if (prompt.target is None) != (self.kind is TaskKind.RANKING):
                raise ValueError(f"{self.task.name}: text prompts name their target column, ranking prompts do not")
        if (self.target_description is None) != (self.kind is TaskKind.RANKING):
            raise ValueError(f"{self.task.name}: a text task (only) describes its references (target_description)")
        if self.kind is TaskKind.RANKING and (len(self.prompts) != 1 or self.ranking_field is None):
            raise ValueError(f"{self.task.name}: a ranking task has one prompt with 'history' or 'candidates'")
        if len({prompt.kind for prompt in self.prompts}) != len(self.prompts):
            raise ValueError(f"{self.task.name}: several prompts need distinct kinds")

    @property
    def ranking_field(self) -> str | None:
        """``"history"`` (ranked against the catalog) or ``"candidates"`` (against them); ``None`` for text."""
        fields = self.prompts[0].fields
        return next((name for name in ("candidates", "history") if name in fields), None)

    @property
    def ranks_candidates(self) -> bool:
        return self.ranking_field == "candidates"

    def prompt(self, kind: RationaleKind | str | None = None) -> PromptSpec:
        """The prompt of ``kind``; a task with several prompts needs one."""
        kind = RationaleKind(kind) if kind is not None else None
        if kind is None and len(self.prompts) > 1:
            kinds = " or ".join(f"RationaleKind.{prompt.kind.name}" for prompt in self.prompts)
            raise ValueError(f"Task.{self.task.name} needs kind={kinds}")
        for prompt in self.prompts:
            if kind is None or prompt.kind is kind:
                return prompt
        raise ValueError(f"Task.{self.task.name} has no {kind.value} prompt")


# Templates: own wording, the paper's structure (see rdrec_hf.models.prompting for how they are filled).
# In the order of a `task_mixture` string (explanation:sequential:rationale:top-N, as the paper writes it).
TASK_SPECS: dict[Task, TaskSpec] = {
    spec.task: spec
    for spec in (
        TaskSpec(
            Task.EXPLANATION, TaskKind.TEXT,
            prompts=(PromptSpec((
                "Explain why user_{user} chose {item} .",
                "Write the reason user_{user} would give for {item} .",
                "What does user_{user} say about {item} ?",
                "user_{user} {item}",
            ), fields=("user_id", "item_id"), target="explanation"),),
            target_description="explanations", epoch_priority=0,
        ),
        TaskSpec(
            Task.SEQUENTIAL, TaskKind.RANKING,
            prompts=(PromptSpec((
                "user_{user} bought these items in this order: {history} . Which item comes next?",
                "Purchase history of user_{user}: {history} . Predict the next purchase.",
                "Here are the items user_{user} chose so far: {history} . Recommend the next one.",
                "Given that user_{user} purchased {history} , what will the user buy next?",
                "user_{user} history {history}",
            ), fields=("user_id", "history")),),
            epoch_priority=2,
            min_user_items=4,  # two training items: a segment of one and the item after it
        ),
        TaskSpec(
            Task.RATIONALE, TaskKind.TEXT,
            prompts=(
                PromptSpec((
                    "Describe the preferences of user_{user} .",
                    "What does user_{user} like?",
                ), fields=("user_id",), target="user_preference", kind=RationaleKind.USER),
                PromptSpec((
                    "Describe the attributes of {item} .",
                    "What is {item} like?",
                ), fields=("item_id",), target="item_attribute", kind=RationaleKind.ITEM),
            ),
            target_description="teacher rationales", epoch_priority=1, needs_rationale=True,
        ),
        TaskSpec(
            Task.TOPN, TaskKind.RANKING,
            prompts=(PromptSpec((
                "Which of these items should be recommended to user_{user}? {candidates}",
                "Choose the one item user_{user} would like most from: {candidates}",
                "Candidates for user_{user}: {candidates} . Pick the best one.",
                "user_{user} candidates {candidates}",
            ), fields=("user_id", "candidates")),),
            epoch_priority=3,
        ),
    )
}  # fmt: skip
if set(TASK_SPECS) != set(Task):
    raise RuntimeError(f"TASK_SPECS must describe every Task, missing {sorted(set(Task) - set(TASK_SPECS))}")

TASK_MIXTURE_ORDER: tuple[Task, ...] = tuple(TASK_SPECS)
"""Order of the ratios in ``task_mixture`` strings: explanation:sequential:rationale:top-N."""
RANKING_TASKS: tuple[Task, ...] = tuple(task for task, spec in TASK_SPECS.items() if spec.kind is TaskKind.RANKING)
"""Tasks whose targets are item ids (the others are text), in mixture order."""
NUM_TASKS = len(Task)  # the soft prompts' count and the width of per-task logging
