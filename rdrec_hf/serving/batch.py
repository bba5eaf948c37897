"""Batch recommendation: rank a whole list of users in batches and write them as JSON lines, resumably.

The Python face of `rdrec-hf recommend --users ...`: `recommend_users` ranks, `write_recommendations` writes
one line a user and resumes an interrupted file.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..devices import default_batch_size
from ..models.item_decoding import DEFAULT_NUM_BEAMS, DEFAULT_TOP_K
from ..models.recommending import catalog_of, check_items, rank_next_items

logger = logging.getLogger(__name__)


@dataclass
class UserRecommendations:
    """The ranked items of one user: one line of `write_recommendations`' JSONL file."""

    user_id: str
    item_ids: list[str]
    original_ids: list[str]
    scores: list[float]
    num_missing: int  # how many of the k asked for were not returned (fewer allowed items remain)


def recommend_users(
    model,
    tokenizer,
    users: Sequence[tuple[str, Sequence[str]]],
    k: int = DEFAULT_TOP_K,
    num_beams: int = DEFAULT_NUM_BEAMS,
    batch_size: int | None = None,
    exclude_history: bool = True,
    decoding: str | None = None,
    progress: bool = True,
) -> Iterator[UserRecommendations]:
    """Top-``k`` next items of every ``(user_id, history)`` in ``users``, in batches (None: `default_batch_size`
    of the model's device), in input order.

    Every history is checked before the first batch runs (an empty history or an unknown item raises
    ``ValueError`` naming the user), so a bad input does not stop a long run half way.
    """
    item_index = catalog_of(model)
    for user_id, history in users:
        check_items(item_index, history, who=f" of user {user_id}")
    batch_size = default_batch_size(model.device) if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    bar = tqdm(total=len(users), desc="recommending", unit="user", disable=not progress)
    for start in range(0, len(users), batch_size):
        chunk = users[start : start + batch_size]
        output = rank_next_items(
            model, tokenizer, [history for _, history in chunk], [user for user, _ in chunk], k, num_beams,
            exclude_history, decoding,
        )  # fmt: skip
        for (user_id, _), items, scores, missing in zip(chunk, output.item_ids, output.scores, output.num_missing):
            yield UserRecommendations(
                str(user_id), items, [item_index.original_id(item) for item in items], [float(s) for s in scores], missing
            )
        bar.update(len(chunk))
    bar.close()


@dataclass
class RecommendationSummary:
    """What `write_recommendations` did."""

    num_users: int  # users in the file now
    num_resumed: int  # of them, already in the file before this run
    num_new: int
    seconds: float  # wall time of the new ones
    num_short: int  # users (in the file) with fewer than k items
    dropped_partial_line: bool  # an interrupted last line was removed and its user redone

    @property
    def users_per_second(self) -> float:
        return self.num_new / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        rate = f"{self.users_per_second:.2f} users/s" if self.num_new else "nothing new"
        return (
            f"{self.num_users:,} users in the file ({self.num_resumed:,} resumed, {self.num_new:,} new in "
            f"{self.seconds:.1f} s: {rate}); {self.num_short:,} with fewer than k allowed items"
            + ("; an interrupted last line was redone" if self.dropped_partial_line else "")
        )


def _read_finished(path: Path, k: int) -> tuple[dict[str, int], bool]:
    """``{user_id: num_missing}`` of the complete lines of ``path``; truncates an interrupted last line.

    Raises ``ValueError`` for a damaged line elsewhere, or a file written with another ``k``.
    """
    finished: dict[str, int] = {}
    if not path.is_file():
        return finished, False
    raw = path.read_bytes()
    complete_end = raw.rfind(b"\n") + 1  # a last line without its newline was cut by an interruption
    dropped = complete_end < len(raw)
    for number, line in enumerate(raw[:complete_end].decode("utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            user_id, items, missing = str(row["user_id"]), row["item_ids"], int(row["num_missing"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: line {number} is not a recommendation line; move the file away to start over") from None
        if len(items) + missing != k:
            raise ValueError(f"{path}: line {number} holds {len(items) + missing} slots, not k={k}; "
                             "resume with the same -k or write another file")  # fmt: skip
        finished[user_id] = missing
    if dropped:
        with path.open("r+b") as handle:
            handle.truncate(complete_end)
    return finished, dropped


def write_recommendations(
    model,
    tokenizer,
    users: Sequence[tuple[str, Sequence[str]]],
    output: str | Path,
    k: int = DEFAULT_TOP_K,
    batch_size: int | None = None,
    **options,
) -> RecommendationSummary:
    """Write one JSON line per user (``user_id``, ``item_ids``, ``original_ids``, ``scores``, ``num_missing``)
    to ``output``, resuming: users already in the file are skipped, an interrupted last line is redone, and
    each batch is flushed before the next starts, so an interruption loses at most the batch in flight.
    ``options`` are the other arguments of `recommend_users` (``num_beams``, ``decoding``, ...).
    """
    path = Path(output)
    batch_size = default_batch_size(model.device) if batch_size is None else batch_size
    repeated = next((user for user, count in Counter(str(user) for user, _ in users).items() if count > 1), None)
    if repeated is not None:
        raise ValueError(f"user {repeated!r} appears more than once in the users to recommend for")
    path.parent.mkdir(parents=True, exist_ok=True)
    finished, dropped = _read_finished(path, k)
    todo = [(str(user), history) for user, history in users if str(user) not in finished]
    num_short = sum(1 for missing in finished.values() if missing)
    started = time.perf_counter()
    with path.open("a", encoding="utf-8") as handle:
        for written, row in enumerate(
            recommend_users(model, tokenizer, todo, k=k, batch_size=batch_size, **options), 1
        ):
            handle.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
            num_short += row.num_missing > 0
            if written % batch_size == 0:
                handle.flush()
    summary = RecommendationSummary(
        len(finished) + len(todo), len(finished), len(todo), time.perf_counter() - started, num_short, dropped
    )
    logger.info("recommendations written to %s: %s", path, summary)
    return summary


__all__ = ["RecommendationSummary", "UserRecommendations", "recommend_users", "write_recommendations"]
