"""Baselines of the ranking tasks (`Baseline`), over the project's item id strings ``"1".."N"``.

- :func:`leak_rule_ranking` shows how much item *numbering* alone explains: with the P5 numbering (items
  numbered in order of first appearance) the next item is often ``max(history) + 1``. Under ``random``
  indexing it should be no better than chance.
- :func:`popularity_ranking` ranks by training-interaction counts (:func:`item_popularity`, computed once).
- :class:`TransitionItemKNN` ranks the items bought near the user's last item in the training sequences.
- SASRec (`rdrec_hf.models.sasrec`, opt-in: it trains) is the strong sequential recommender.

All exclude the history, as the model's rankings do, and rank either the whole catalog or an explicit
candidate list (top-N: the 100 candidates of a user). `baseline_rankers` builds the chosen ones for a
dataset from its training histories only (each user's last two items dropped).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from itertools import chain, islice
from pathlib import Path

import numpy as np
import torch

from ..data.item_graph import TRANSITION_WINDOW, transition_graph
from ..data.schema import ITEMS, USERS, training_history
from ..models.sasrec import PADDING_INDEX, SASRecConfig, SASRecModel, SASRecTrainingConfig, fit_sasrec

__all__ = [
    "DEFAULT_BASELINES",
    "Baseline",
    "Ranker",
    "TransitionItemKNN",
    "baseline_rankers",
    "item_popularity",
    "leak_rule_ranking",
    "popularity_ranking",
]

logger = logging.getLogger(__name__)


class Baseline(str, Enum):
    """A baseline an evaluation can put beside the model (``EvaluationConfig.baselines``)."""

    POPULARITY = "popularity"
    LEAK_RULE = "leak_rule"
    ITEM_KNN = "item_knn"
    SASREC = "sasrec"

    @classmethod
    def parse(cls, value: "str | Baseline") -> "Baseline":
        """A member from itself or its name (``"item_knn"``, ``"item-knn"``, any case); an unknown name is a
        ``ValueError`` naming the choices."""
        try:
            return cls(str(value.value if isinstance(value, cls) else value).lower().replace("-", "_"))
        except ValueError:
            raise ValueError(f"unknown baseline {value!r}; choose from {[b.value for b in cls]}") from None


# SASRec is opt-in: it trains (about 30 CPU minutes on P5 beauty), the others take seconds.
DEFAULT_BASELINES = (Baseline.POPULARITY, Baseline.LEAK_RULE, Baseline.ITEM_KNN)

Ranker = Callable[[Sequence[Sequence[str]], int, "Sequence[Sequence[str]] | None"], list[list[str]]]
"""``ranker(histories, k, candidates)``: per history, its top ``k`` ids outside it (among its candidates when
``candidates`` is given: one list per history)."""


def leak_rule_ranking(history: Sequence[str], catalog: int | Sequence[str], k: int) -> list[str]:
    """Rank ``max(history) + 1, + 2, ...`` first, then the remaining ids from ``max(history) - 1`` downwards.

    ``catalog``: the number of items (ids ``1..N``) or the candidate ids to rank. History items are never
    ranked. Returns up to ``k`` id strings (fewer only when the catalog minus the history is smaller).
    """
    if not history:
        raise ValueError("the leak rule needs a non-empty history")
    seen = {int(item) for item in history}
    last = max(seen)
    if isinstance(catalog, int):
        order = chain(range(last + 1, catalog + 1), range(min(last, catalog + 1) - 1, 0, -1))
    else:
        ids = sorted({int(item) for item in catalog})
        order = chain((i for i in ids if i > last), (i for i in reversed(ids) if i < last))
    return [str(item) for item in islice((i for i in order if i not in seen), k)]


def item_popularity(training_histories: Iterable[Sequence[str]], catalog_size: int) -> list[str]:
    """All ids ``1..catalog_size``, most interactions in the training histories first (ties: smaller id)."""
    counts = Counter(item for history in training_histories for item in history)
    return sorted((str(i) for i in range(1, catalog_size + 1)), key=lambda item: (-counts[item], int(item)))


def popularity_ranking(
    popular_items: Sequence[str], history: Sequence[str], k: int, candidates: Sequence[str] | None = None
) -> list[str]:
    """The first ``k`` of ``popular_items`` (from :func:`item_popularity`) outside ``history``, restricted
    to ``candidates`` when given."""
    excluded = set(history)
    allowed = set(candidates) if candidates is not None else None
    kept = (i for i in popular_items if i not in excluded and (allowed is None or i in allowed))
    return list(islice(kept, k))


class TransitionItemKNN:
    """Transition item-kNN: the items that sat at most ``window`` positions from the user's last item in the
    training sequences, most such pairs first (`transition_graph`), ties and the rest of the catalog by
    popularity (`item_popularity`). Items are ids ``"1".."num_items"``; ``training_histories`` must hold the
    training interactions only (`training_history`)."""

    def __init__(self, training_histories: Sequence[Sequence[str]], num_items: int, window: int = TRANSITION_WINDOW):
        self.popular_items = item_popularity(training_histories, num_items)
        self.popularity_rank = np.empty(num_items, dtype=np.int64)  # by position (id - 1): 0 = most popular
        self.popularity_rank[[int(item) - 1 for item in self.popular_items]] = np.arange(num_items)
        positions = [[int(item) - 1 for item in history] for history in training_histories]
        self.graph = transition_graph(positions, num_items, window)

    def neighbours(self, item: str) -> list[str]:
        """The ids sharing an edge with ``item``, most pairs first, ties by popularity."""
        position = int(item) - 1
        span = slice(self.graph.indptr[position], self.graph.indptr[position + 1])
        found, counts = self.graph.indices[span], self.graph.data[span]
        return [str(n + 1) for n in found[np.lexsort((self.popularity_rank[found], -counts))]]

    def ranking(self, history: Sequence[str], k: int, candidates: Sequence[str] | None = None) -> list[str]:
        """The top ``k`` ids outside ``history`` (among ``candidates`` when given), by the last history item."""
        if not history:
            raise ValueError("item-kNN needs a non-empty history")
        seen = set(history)
        if candidates is not None:
            rank = {item: r for r, item in enumerate(self.neighbours(history[-1]))}
            ordered = sorted(candidates, key=lambda item: (rank.get(item, len(rank)), self.popularity_rank[int(item) - 1]))
            return [item for item in ordered if item not in seen][:k]

        def unseen(items):
            for item in items:
                if item not in seen:
                    seen.add(item)
                    yield item

        return list(islice(unseen(chain(self.neighbours(history[-1]), self.popular_items)), k))

    def __call__(self, histories, k, candidates=None) -> list[list[str]]:
        """The `Ranker` form: `ranking` of each history."""
        return [self.ranking(h, k, None if candidates is None else candidates[i]) for i, h in enumerate(histories)]


def baseline_rankers(
    data,
    baselines: Sequence[Baseline | str] = DEFAULT_BASELINES,
    *,
    seed: int = 0,
    device="cpu",
    cache_dir: str | Path | None = None,
    sasrec_wall_budget_s: float | None = None,
) -> tuple[dict[str, Ranker], dict[str, str]]:
    """The chosen baselines of the project dataset ``data``, built from its training histories only.

    Args:
        baselines: `Baseline` members or names; an unknown name is a ``ValueError`` naming the choices.
        seed: SASRec's initialisation, batch order and dropout.
        device: where SASRec trains and ranks (the evaluated model's device).
        cache_dir: SASRec's weights are kept there (``sasrec.safetensors``) and read back by a later call on
            the same data; None: trained in memory only.
        sasrec_wall_budget_s: SASRec stops before an epoch that would end past this many seconds of training.
    Returns:
        ``({name: ranker}, {name: why it was skipped})`` in ``baselines`` order. SASRec is skipped, with a
        logged warning, on a dataset with fewer users than one training batch.
    """
    chosen = list(dict.fromkeys(Baseline.parse(baseline) for baseline in baselines))
    num_items = data[ITEMS].num_rows
    sequences = list(data[USERS]["items"])
    training = [training_history(items) for items in sequences]
    rankers: dict[str, Ranker] = {}
    skipped: dict[str, str] = {}
    for baseline in chosen:
        if baseline is Baseline.LEAK_RULE:
            rankers[baseline.value] = lambda histories, k, candidates=None: [
                leak_rule_ranking(history, num_items if candidates is None else candidates[i], k)
                for i, history in enumerate(histories)
            ]
        elif baseline is Baseline.POPULARITY:
            popular = item_popularity(training, num_items)
            rankers[baseline.value] = lambda histories, k, candidates=None: [
                popularity_ranking(popular, history, k, None if candidates is None else candidates[i])
                for i, history in enumerate(histories)
            ]
        elif baseline is Baseline.ITEM_KNN:
            rankers[baseline.value] = TransitionItemKNN(training, num_items)
        else:
            ranker, reason = _sasrec_ranker(sequences, num_items, seed, device, cache_dir, sasrec_wall_budget_s)
            if ranker is None:
                logger.warning("SASRec left out of the evaluation: %s", reason)
                skipped[baseline.value] = reason
            else:
                rankers[baseline.value] = ranker
    return rankers, skipped


def _sasrec_ranker(sequences, num_items, seed, device, cache_dir, wall_budget_s) -> tuple[Ranker | None, str | None]:
    """``(SASRec ranker, None)``, or ``(None, reason)`` when the dataset is too small to train it."""
    training_config = SASRecTrainingConfig(seed=seed, wall_budget_s=float("inf") if wall_budget_s is None else wall_budget_s)
    if len(sequences) < training_config.batch_size:
        return None, (f"SASRec trains on batches of {training_config.batch_size} users and the dataset has "
                      f"{len(sequences)}")  # fmt: skip
    model, info = fit_sasrec(
        [[int(item) for item in items] for items in sequences],
        SASRecConfig(num_items=num_items, init_seed=seed),
        training_config,
        cache_dir,
        device,
    )
    logger.info("SASRec %s: best validation NDCG@10 %.4f at epoch %d of %d (%s)",
                "read back" if info["cached"] else "trained", info["best_valid_ndcg_at_10"], info["best_epoch"],
                info["epochs"], info["stop_reason"])  # fmt: skip
    return SASRecRanker(model), None


class SASRecRanker:
    """A trained `SASRecModel` as an evaluation baseline over the project's item ids (``"1".."N"``).

    Called with a batch of histories (and optionally each one's candidates), it returns the top ``k`` ids of
    each: over the whole catalog with the history excluded, or among the candidates. A catalog smaller than
    a history plus ``k`` gives shorter lists, as the model-free baselines do.
    """

    def __init__(self, model: SASRecModel, batch_size: int = 512):
        self.model, self.batch_size = model, batch_size

    def __call__(
        self, histories: Sequence[Sequence[str]], k: int, candidates: Sequence[Sequence[str]] | None = None
    ) -> list[list[str]]:
        indices = [[int(item) for item in history] for history in histories]
        if candidates is None:
            free = self.model.config.num_items - max(len(set(history)) for history in indices)
            top = self.model.top_k(indices, min(k, free), self.batch_size)
            return [[str(item) for item in row] for row in top.tolist()]
        width = max(len(row) for row in candidates)
        padded = torch.tensor([[int(item) for item in row] + [PADDING_INDEX] * (width - len(row)) for row in candidates])
        scores = self.model.predict(indices, padded, self.batch_size).tolist()
        # Stable: float scores of different items practically never tie.
        return [
            [row[i] for i in sorted(range(len(row)), key=lambda i: -row_scores[i])][:k]
            for row, row_scores in zip(candidates, scores)
        ]
