"""Batch recommendation: rank a whole list of users in batches and write them as JSON lines, resumably.

The Python face of `rdrec-hf recommend --users ...`: `recommend_users` ranks, `write_recommendations` writes
one line a user and resumes an interrupted file; `write_recommendations_sharded` splits the users between the
processes of an ``accelerate launch`` (each writes a shard beside the file) and merges the shards into the same
file a single process writes.
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


def _check_once_each(users: Sequence[tuple[str, Sequence[str]]]) -> None:
    repeated = next((user for user, count in Counter(str(user) for user, _ in users).items() if count > 1), None)
    if repeated is not None:
        raise ValueError(f"user {repeated!r} appears more than once in the users to recommend for")


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
    _check_once_each(users)
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


def shard_path(output: str | Path, process_index: int) -> Path:
    """The file process ``process_index`` of a sharded run writes beside ``output`` (``recs.jsonl.shard-1``)."""
    path = Path(output)
    return path.with_name(f"{path.name}.shard-{process_index}")


def write_recommendations_sharded(
    model,
    tokenizer,
    users: Sequence[tuple[str, Sequence[str]]],
    output: str | Path,
    k: int = DEFAULT_TOP_K,
    batch_size: int | None = None,
    state=None,
    **options,
) -> RecommendationSummary:
    """`write_recommendations` over the processes of an ``accelerate launch`` (``state``: an
    ``accelerate.PartialState``, made here when None); every process calls it with the same arguments.

    The users still missing from ``output`` are cut into the batches one process would run, the batches are split
    between the processes (``state.split_between_processes``: consecutive runs of batches, so each batch is the
    one a single process would rank, padded alike), each process writes its users to its shard
    (`shard_path`, resumable as `write_recommendations` is) and the main process appends them to ``output`` in the
    users' order and removes the shards. So the merged file has the lines, in the order, of a one-process run;
    after a kill, the same command resumes from the shards (or from ``output`` when the merge had begun).
    Returns the summary of this process's shard (the main process: of the whole file).
    """
    if state is None:
        from accelerate import PartialState

        state = PartialState()
    path = Path(output)
    batch_size = default_batch_size(model.device) if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_once_each(users)
    dropped = False
    if state.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        _, dropped = _read_finished(path, k)  # truncates an interrupted last line before any process reads the file
    state.wait_for_everyone()
    started = time.perf_counter()  # every process ready: the summary's seconds run from here to the merged file
    finished, _ = _read_finished(path, k)
    todo = [(str(user), history) for user, history in users if str(user) not in finished]
    batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    with state.split_between_processes(batches) as mine:
        mine = [user for batch in mine for user in batch]
    progress = options.pop("progress", True) and state.is_main_process  # one bar: the main process's share
    summary = write_recommendations(model, tokenizer, mine, shard_path(path, state.process_index), k=k,
                                    batch_size=batch_size, progress=progress, **options)  # fmt: skip
    state.wait_for_everyone()
    if state.is_main_process:
        summary = _merge_shards(path, [user for user, _ in todo], state.num_processes, k)
        summary.seconds, summary.dropped_partial_line = time.perf_counter() - started, dropped
        logger.info("recommendations of %d processes merged into %s: %s", state.num_processes, path, summary)
    state.wait_for_everyone()
    return summary


def _merge_shards(path: Path, todo: Sequence[str], num_processes: int, k: int) -> RecommendationSummary:
    """Append the shards' lines of the users ``todo`` to ``path`` in that order; remove the shards."""
    lines: dict[str, str] = {}
    shards = [shard_path(path, index) for index in range(num_processes)]
    for shard in shards:
        _read_finished(shard, k)  # checks every line (and k)
        for line in shard.read_text(encoding="utf-8").splitlines() if shard.is_file() else []:
            lines[str(json.loads(line)["user_id"])] = line
    missing = [user for user in todo if user not in lines]
    if missing:
        raise ValueError(f"the shards beside {path} lack {len(missing)} users, e.g. {missing[:5]}; run the same "
                         "command again to finish them")  # fmt: skip
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(lines[user] + "\n" for user in todo)
    for shard in shards:
        shard.unlink(missing_ok=True)
    finished, _ = _read_finished(path, k)
    return RecommendationSummary(len(finished), len(finished) - len(todo), len(todo), 0.0,
                                 sum(1 for missing in finished.values() if missing), False)  # fmt: skip


__all__ = ["RecommendationSummary", "UserRecommendations", "recommend_users", "shard_path", "write_recommendations",
           "write_recommendations_sharded"]
