"""Loader of raw Amazon review JSON lines (``.json`` or ``.json.gz``).

Field names of the 2014 and 2018 releases (``reviewerID``, ``asin``, ``overall``, ``reviewText``,
``unixReviewTime``) and of the 2023 release (``user_id``, ``parent_asin``, ``rating``, ``text``,
``timestamp`` in milliseconds) are accepted.

Steps, each counted in the dataset's metadata:

1. parse every line (a malformed line or one without user/item/time raises :class:`DataFormatError` with
   file and line);
2. deduplicate repeated reviews of one user-item pair (Amazon repeats a review for every product style):
   the earliest is kept (ties: the first line), the others are counted as ``duplicate_user_item``;
3. order each user's items by time (ties: file order) and drop users with fewer than ``min_interactions``
   distinct items (``user_too_short``; default 3, the least a leave-one-out split needs);
4. number users in order of their first review and items in order of first appearance walking users in
   that order (the P5 numbering), then apply the indexing scheme;
5. keep, per interaction with text, the review and one **explanation sentence** chosen by
   :func:`choose_explanation`; interactions whose review has no text stay in the sequences but get no
   review record (``review_without_text``; a text field that is not a string, such as a number or a list, is
   also counted as ``review_text_not_string`` and treated as no text).

Negatives: All_Beauty has only 83 items (after the filter above), so most users have fewer than 99 items they
have not reviewed; their negatives are then *all* those items (fewer than 99), never repeats or invented ids. The metadata
count ``users_with_fewer_negatives`` says how many users this concerns.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from .schema import (
    DEFAULT_INDEXING,
    DEFAULT_NUM_NEGATIVES,
    MIN_SEQUENCE_LENGTH,
    DataFormatError,
    DEFAULT_MAX_CLUSTER_SIZE,
    DEFAULT_NUM_CLUSTERS,
    ItemIndexing,
    RecDatasetMetadata,
    SourceUser,
    assemble_rec_dataset,
    check_num_negatives,
)

FIELD_ALIASES = {
    "user": ("reviewerID", "user_id"),
    "item": ("asin", "parent_asin"),
    "rating": ("overall", "rating"),
    "text": ("reviewText", "text"),
    "time": ("unixReviewTime", "timestamp"),
}
MILLISECONDS_THRESHOLD = 10**11  # 2023 timestamps are in ms; seconds stay below this until year 5138
EXPLANATION_MIN_WORDS, EXPLANATION_MAX_WORDS = 4, 30
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def choose_explanation(review: str) -> str:
    """The explanation sentence of a review (the target of the explanation task).

    Rule: split the review into sentences at ``.``, ``!`` or ``?`` followed by white space; take the first
    sentence with at least 4 and at most 30 words (a short reason, not "Love it!"); if none qualifies,
    take the longest sentence, cut to its first 30 words. White space is collapsed. Deterministic.
    """
    sentences = [" ".join(s.split()) for s in _SENTENCE_END.split(review.strip()) if s.strip()]
    for sentence in sentences:
        if EXPLANATION_MIN_WORDS <= len(sentence.split()) <= EXPLANATION_MAX_WORDS:
            return sentence
    longest = max(sentences, key=lambda s: len(s.split()))
    return " ".join(longest.split()[:EXPLANATION_MAX_WORDS])


def _field(record: dict, name: str):
    return next((record[key] for key in FIELD_ALIASES[name] if record.get(key) is not None), None)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a JSON-lines file, plain or gzip; bytes that are not UTF-8 and a gzip file cut
    short are a :class:`DataFormatError` naming the line."""
    opener = gzip.open if path.suffix == ".gz" else open
    line_number = 0
    with opener(path, "rb") as handle:
        try:
            for line_number, raw in enumerate(handle, start=1):
                try:
                    yield line_number, raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise DataFormatError(path, line_number, f"not UTF-8 text (byte {error.start}: "
                                          f"{raw[error.start:error.start + 1]!r}); re-encode the file as UTF-8") from None
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise DataFormatError(path, line_number + 1, f"the gzip file is cut short or damaged ({error}); "
                                  "download or copy it again") from None


def _read_reviews(path: Path) -> list[dict]:
    rows = []
    for line_number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError(path, line_number, f"invalid JSON: {error.msg}") from None
        if not isinstance(record, dict):
            raise DataFormatError(path, line_number, "expected a JSON object")
        user, item, time = _field(record, "user"), _field(record, "item"), _field(record, "time")
        if user is None or item is None or time is None:
            raise DataFormatError(
                path, line_number, "needs a user, an item and a time field "
                f"({', '.join(f'{k}: {v}' for k, v in FIELD_ALIASES.items() if k != 'rating')})")
        try:
            time = int(time)
        except (TypeError, ValueError):
            raise DataFormatError(path, line_number, f"non-integer time {time!r}") from None
        rating = _field(record, "rating")
        try:
            rating = float(rating) if rating is not None else None
        except (TypeError, ValueError):
            raise DataFormatError(path, line_number, f"non-numeric rating {rating!r}") from None
        rows.append(
            {
                "line": line_number,
                "user": str(user),
                "item": str(item),
                "time": time // 1000 if time > MILLISECONDS_THRESHOLD else time,
                "rating": rating,
                "text": _field(record, "text"),
            }
        )
    return rows


def _review_text(row: dict, skipped: Counter) -> str:
    """A review's stripped text; ``""`` when there is none, or when it is not a string (counted)."""
    text = row["text"]
    if text is not None and not isinstance(text, str):
        skipped["review_text_not_string"] += 1
        return ""
    return (text or "").strip()


def load_amazon_reviews(
    path: str | Path,
    min_interactions: int = MIN_SEQUENCE_LENGTH,
    indexing: ItemIndexing | str = DEFAULT_INDEXING,
    seed: int = 0,
    num_clusters: int = DEFAULT_NUM_CLUSTERS,
    max_cluster_size: int = DEFAULT_MAX_CLUSTER_SIZE,
    num_negatives: int = DEFAULT_NUM_NEGATIVES,
):
    """Load raw Amazon review JSON lines into the project schema (see the module docstring for the rules).

    ``min_interactions`` below 3 is rejected: a user needs a training, a validation and a test item.
    """
    path = Path(path)
    check_num_negatives(num_negatives)
    if min_interactions < MIN_SEQUENCE_LENGTH:
        raise ValueError(f"min_interactions must be >= {MIN_SEQUENCE_LENGTH} for a leave-one-out split")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    rows = _read_reviews(path)
    skipped = Counter()
    first_of_pair: dict[tuple[str, str], dict] = {}
    for row in sorted(rows, key=lambda r: (r["time"], r["line"])):
        pair = (row["user"], row["item"])
        if pair in first_of_pair:
            skipped["duplicate_user_item"] += 1
        else:
            first_of_pair[pair] = row
    by_user: dict[str, list[dict]] = {}
    for row in first_of_pair.values():  # time order, so users come in order of their first review
        by_user.setdefault(row["user"], []).append(row)
    kept = {user: rows for user, rows in by_user.items() if len(rows) >= min_interactions}
    item_number: dict[str, int] = {}
    for user_rows in kept.values():
        for row in user_rows:
            item_number.setdefault(row["item"], len(item_number) + 1)

    skipped["user_too_short"] = len(by_user) - len(kept)
    users, reviews = [], []
    for user_number, (user, user_rows) in enumerate(kept.items(), start=1):
        user_id = str(user_number)
        users.append(SourceUser(user_id, user, [item_number[r["item"]] for r in user_rows]))
        for row in user_rows:
            text = _review_text(row, skipped)
            if not text:
                skipped["review_without_text"] += 1
                continue
            reviews.append(
                {
                    "user_id": user_id,
                    "item": item_number[row["item"]],
                    "timestamp": row["time"],
                    "rating": row["rating"],
                    "review": text,
                    "explanation": choose_explanation(text),
                }
            )
    metadata = RecDatasetMetadata(
        source=str(path),
        source_format="amazon-reviews",
        indexing=ItemIndexing(indexing),
        seed=seed,
        num_clusters=num_clusters,
        max_cluster_size=max_cluster_size,
        num_negatives=num_negatives,
        options={"min_interactions": min_interactions},
        counts={"raw_reviews": len(rows), "raw_users": len(by_user), "raw_items": len({r["item"] for r in rows})},
        skipped=dict(skipped),
    )
    return assemble_rec_dataset(users, list(item_number), reviews, metadata)
