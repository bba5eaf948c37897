"""The four RDRec tasks. The integer value is the ``task_id`` the student model sees.

Hub custom code: this file imports only the standard library (it is copied beside saved checkpoints).
"""

from enum import IntEnum


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

