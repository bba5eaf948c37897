"""The evaluation loop of the paper, deterministic, with the leak rule and popularity on the same users.

- sequential: full ranking over the catalog for the held-out item, the user's history excluded, by
  constrained beam search (`model.generate(..., item_index=..., exclude_items=...)`);
- top-N: the held-out item among its stored negatives, ranked exactly by `model.score_candidates`;
- explanation and rationale: greedy generation scored with BLEU-1/4, ROUGE-1/2/L and the distinct share.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..tasks import Task
from .ranking import DEFAULT_KS

EVAL_SPLIT_NAMES = ("validation", "test")


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
        if self.split not in EVAL_SPLIT_NAMES:
            raise ValueError(f"EvaluationConfig: split must be one of {EVAL_SPLIT_NAMES}, got {self.split!r}")
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
