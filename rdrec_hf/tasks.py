"""The RDRec tasks and their table of facts (Hub code, :mod:`rdrec_hf.models.tasks`) and counts derived from them."""

from .models.tasks import RANKING_TASKS, TASK_MIXTURE_ORDER, TASK_SPECS, PromptSpec, RationaleKind, Task, TaskKind, TaskSpec

NUM_TASKS = len(Task)

__all__ = [
    "NUM_TASKS",
    "RANKING_TASKS",
    "TASK_MIXTURE_ORDER",
    "TASK_SPECS",
    "PromptSpec",
    "RationaleKind",
    "Task",
    "TaskKind",
    "TaskSpec",
]
