"""Recommend for one or more users with a trained student: the Python face of `rdrec-hf recommend`.

`recommend` answers one user (optionally with explanations); `recommend_users` ranks a whole list of users in
batches; `write_recommendations` writes them as JSON lines and resumes an interrupted file.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data import encode_prompts, prompt_for
from .data.builders import DEFAULT_MAX_SOURCE_LENGTH
from .tasks import Task

logger = logging.getLogger(__name__)

ANONYMOUS_USER = "0"  # project user ids start at 1, so `user_0` is a mention no training user has


@dataclass
class Recommendation:
    """One recommended item: the project id, the source's original id (e.g. the asin), the sequence
    log-likelihood the model gave it and, when asked for, a generated explanation."""

    item_id: str
    original_id: str
    score: float
    explanation: str | None = None


def _model_inputs(tokenizer, prompts: Sequence[str], task: Task, device) -> dict[str, torch.Tensor]:
    batch = encode_prompts(tokenizer, prompts, max_length=DEFAULT_MAX_SOURCE_LENGTH, return_tensors="pt")
    batch = {name: value.to(device) for name, value in batch.items()}
    batch["task_id"] = torch.full((len(prompts),), int(task), dtype=torch.long, device=device)
    return batch


@dataclass
class UserRecommendations:
    """The ranked items of one user: one line of `write_recommendations`' JSONL file."""

    user_id: str
    item_ids: list[str]
    original_ids: list[str]
    scores: list[float]
    num_missing: int  # how many of the k asked for were not returned (fewer allowed items remain)


def _catalog_of(model):
    item_index = getattr(model, "item_index", None)
    if item_index is None:
        raise ValueError("the model has no item catalog (item_index.json); train or load an RDRec checkpoint")
    return item_index


def _check_history(item_index, history: Sequence[str], who: str = "") -> None:
    if not history:
        raise ValueError(f"an empty history{who}: give at least one item the user interacted with")
    unknown = [item for item in history if item not in item_index.position]
    if unknown:
        raise ValueError(f"items not in the model's catalog{who}: {unknown[:10]}")


@torch.no_grad()
def rank_next_items(
    model,
    tokenizer,
    histories: Sequence[Sequence[str]],
    user_ids: Sequence[str | None],
    k: int = 10,
    num_beams: int = 20,
    exclude_history: bool = True,
    decoding: str | None = None,
):
    """One `generate(..., item_index=model.item_index)` call for a batch of users (the sequential task).

    Returns the model's `ItemGenerationOutput` (item ids, scores and shortfalls per user, best first).
    """
    item_index = _catalog_of(model)
    if num_beams < k and not item_index.is_single_token:
        raise ValueError(f"num_beams={num_beams} cannot return {k} items; use num_beams >= k")
    prompts = [
        prompt_for(Task.SEQUENTIAL, user_id=ANONYMOUS_USER if user is None else str(user), history=history,
                   scheme=item_index.scheme)
        for user, history in zip(user_ids, histories)
    ]  # fmt: skip
    model.eval()
    device = next(model.parameters()).device
    return model.generate(
        **_model_inputs(tokenizer, prompts, Task.SEQUENTIAL, device),
        item_index=item_index,
        exclude_items=[list(history) for history in histories] if exclude_history else None,
        num_beams=max(num_beams, k),
        num_return_sequences=k,
        decoding=decoding,
    )


@torch.no_grad()
def recommend(
    model,
    tokenizer,
    history: Sequence[str],
    user_id: str | None = None,
    k: int = 10,
    num_beams: int = 20,
    exclude_history: bool = True,
    explain: bool = False,
    max_explanation_tokens: int = 48,
) -> list[Recommendation]:
    """Top-``k`` next items for a user, best first (the sequential task): exact one-step ranking with one-token
    ids (independent), the trie beam search otherwise (`rdrec_hf.models.item_decoding`).

    Args:
        model: an `RDRecForConditionalGeneration` with its catalog (`model.item_index`), e.g. from
            `RDRecForConditionalGeneration.from_pretrained(folder_or_hub_id)`.
        tokenizer: the model's tokenizer.
        history: the user's items (project ids), oldest first; the prompt keeps the last 20 as in training.
        user_id: the user's project id; None uses an anonymous mention (`user_0`) for a user unseen in training.
        k: how many items; fewer come back only when fewer valid catalog items remain.
        num_beams: beams of the constrained search (at least ``k``; unused by exact ranking).
        exclude_history: never recommend an item of ``history``.
        explain: also generate an explanation (the explanation task) for every recommended item.
    Raises:
        ValueError: no catalog on the model, an empty history, or items unknown to the catalog.
    """
    item_index = _catalog_of(model)
    _check_history(item_index, history)
    user_id = ANONYMOUS_USER if user_id is None else str(user_id)
    output = rank_next_items(model, tokenizer, [history], [user_id], k, num_beams, exclude_history)
    items, scores = output.item_ids[0], output.scores[0]
    explanations: list[str | None] = [None] * len(items)
    if explain and items:
        device = next(model.parameters()).device
        prompts = [prompt_for(Task.EXPLANATION, user_id=user_id, item_id=item, scheme=item_index.scheme)
                   for item in items]
        generated = model.generate(
            **_model_inputs(tokenizer, prompts, Task.EXPLANATION, device),
            max_new_tokens=max_explanation_tokens,
            do_sample=False,
            num_beams=1,
        )
        explanations = tokenizer.batch_decode(generated, skip_special_tokens=True)
    return [
        Recommendation(item, item_index.original_id(item), float(score), explanation)
        for item, score, explanation in zip(items, scores, explanations)
    ]


def recommend_users(
    model,
    tokenizer,
    users: Sequence[tuple[str, Sequence[str]]],
    k: int = 10,
    num_beams: int = 20,
    batch_size: int = 32,
    exclude_history: bool = True,
    decoding: str | None = None,
    progress: bool = True,
) -> Iterator[UserRecommendations]:
    """Top-``k`` next items of every ``(user_id, history)`` in ``users``, in batches, in input order.

    Every history is checked before the first batch runs (an empty history or an unknown item raises
    ``ValueError`` naming the user), so a bad input does not stop a long run half way.
    """
    item_index = _catalog_of(model)
    for user_id, history in users:
        _check_history(item_index, history, f" of user {user_id}")
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
    k: int = 10,
    batch_size: int = 32,
    **options,
) -> RecommendationSummary:
    """Write one JSON line per user (``user_id``, ``item_ids``, ``original_ids``, ``scores``, ``num_missing``)
    to ``output``, resuming: users already in the file are skipped, an interrupted last line is redone, and
    each batch is flushed before the next starts, so an interruption loses at most the batch in flight.
    ``options`` are the other arguments of `recommend_users` (``num_beams``, ``decoding``, ...).
    """
    path = Path(output)
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
