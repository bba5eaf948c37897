"""The four RDRec tasks (the enum is Hub code, :mod:`rdrec_hf.models.tasks`) and facts derived from them."""

from .models.tasks import Task

NUM_TASKS = len(Task)
RANKING_TASKS = (Task.SEQUENTIAL, Task.TOPN)  # targets are item ids; the others are text

__all__ = ["NUM_TASKS", "RANKING_TASKS", "Task"]
