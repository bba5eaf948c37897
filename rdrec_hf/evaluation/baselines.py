"""Model-free baselines for the ranking tasks. Pure functions over item id strings.

- :func:`leak_rule_ranking` shows how much item *numbering* alone explains: with the P5 numbering (items
  numbered in order of first appearance) the next item is often ``max(history) + 1``. Under ``random``
  indexing it should be no better than chance.
- :func:`popularity_ranking` ranks by training-interaction counts (:func:`item_popularity`, computed once).

Both exclude the history, as the model's rankings do, and accept either the catalog size (ids ``1..N``)
or an explicit candidate list (top-N: the 100 candidates of a user).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain, islice


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
