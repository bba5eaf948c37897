"""Ranking metrics for leave-one-out evaluation (one relevant item per example). Pure functions."""

from __future__ import annotations

import math
from collections.abc import Sequence

DEFAULT_KS = (1, 5, 10)


def rank_of(ranked: Sequence, target) -> int | None:
    """0-based position of ``target`` in ``ranked``, or ``None`` when it is absent."""
    for position, item in enumerate(ranked):
        if item == target:
            return position
    return None


def hit_at_k(ranked: Sequence, target, k: int) -> float:
    """1.0 when ``target`` is among the first ``k`` entries of ``ranked``, else 0.0."""
    position = rank_of(ranked[:k], target)
    return 0.0 if position is None else 1.0


def ndcg_at_k(ranked: Sequence, target, k: int) -> float:
    """NDCG@k with a single relevant item: ``1 / log2(position + 2)`` inside the top k, else 0."""
    position = rank_of(ranked[:k], target)
    return 0.0 if position is None else 1.0 / math.log2(position + 2)


def ranking_metrics(
    rankings: Sequence[Sequence], targets: Sequence, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Mean HR@k for every k and NDCG@k for every k > 1 (NDCG@1 equals HR@1) over all examples.

    Returns keys such as ``"hr@5"`` and ``"ndcg@5"``; an empty input raises ``ValueError``.
    """
    if len(rankings) != len(targets):
        raise ValueError(f"{len(rankings)} rankings but {len(targets)} targets")
    if not rankings:
        raise ValueError("no examples to score")
    metrics: dict[str, float] = {}
    for k in ks:
        metrics[f"hr@{k}"] = sum(hit_at_k(r, t, k) for r, t in zip(rankings, targets)) / len(targets)
        if k > 1:
            metrics[f"ndcg@{k}"] = sum(ndcg_at_k(r, t, k) for r, t in zip(rankings, targets)) / len(targets)
    return metrics


def rank_by_score(candidates: Sequence[str], scores: Sequence[float], target: str) -> list[str]:
    """Candidates by descending score (an evaluation's ranking of given scores, not the model's
    `rank_candidates`); on a tie the target goes after the others (ties never help a model)."""
    if len(candidates) != len(scores):
        raise ValueError(f"{len(candidates)} candidates but {len(scores)} scores")
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i] == target))
    return [candidates[i] for i in order]
