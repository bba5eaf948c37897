"""Loader of the P5 / POD / RDRec data folder format.

A folder holds ``sequential.txt`` (``user item1 item2 ...`` per line, 1-based integer ids, time order) and
``datamaps.json`` (``{"id2user": {...}, "id2item": {...}}``), and optionally:

- ``negative.txt``: ``user neg1 neg2 ...``, the fixed top-N test negatives (validation negatives are then
  still sampled from the seed);
- ``explanation_rationale.json`` (preferred; the reference writes it as ``explanation_rational.json`` and reads
  it as ``explanation_rationale.json``, so both names are read) or ``explanation.json``: ``{"train": [...], "val": [...],
  "test": [...]}`` of records with ``user``, ``item``, ``explanation``, ``feature`` and, in the rationale
  file, ``user_preference`` and ``item_attribution``. ``user``/``item`` may be index numbers or original
  ids (reviewerID / asin). The file's own train/val/test lists are NOT trusted: every record is re-labelled
  with the leave-one-out split of its interaction, so no test interaction reaches training (the reference
  split let some last items into explanation training).

Parsing is plain Python (the 198,502 beauty interactions load in about a second), then ``Dataset.from_dict``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from .schema import (
    DEFAULT_INDEXING,
    DEFAULT_NUM_NEGATIVES,
    DataFormatError,
    DEFAULT_MAX_CLUSTER_SIZE,
    DEFAULT_NUM_CLUSTERS,
    ItemIndexing,
    RecDatasetMetadata,
    SourceUser,
    assemble_rec_dataset,
    check_num_negatives,
)

SEQUENTIAL_FILE, DATAMAPS_FILE, NEGATIVE_FILE = "sequential.txt", "datamaps.json", "negative.txt"
# In order of preference; the first present is read, and the log and the metadata say which.
REVIEW_FILES = ("explanation_rationale.json", "explanation_rational.json", "explanation.json")
REVIEW_FILE_SPLITS = ("train", "val", "test")

logger = logging.getLogger(__name__)


def _parse_id_line(path: Path, line_number: int, line: str, known: dict[str, str], what: str) -> list[int]:
    """Integer ids of one whitespace-separated line, each checked against ``known`` (datamaps keys)."""
    tokens = line.split()
    for token in (t for t in tokens if t not in known):  # datamaps keys are digit strings: one check suffices
        if not token.isdigit():
            raise DataFormatError(path, line_number, f"non-integer {what} id {token!r}")
        raise DataFormatError(path, line_number, f"{what} id {token} is not in {DATAMAPS_FILE}")
    return list(map(int, tokens))


def _read_user_lines(path: Path, id2user: dict, id2item: dict, expected_length: int | None = None):
    """Yield ``(line_number, user_id, item ids)`` of ``sequential.txt`` / ``negative.txt``."""
    seen = set()
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if "\t" in line:
                raise DataFormatError(path, line_number, f"ids separated by tabs; {path.name} separates them with "
                                      "single spaces (replace the tabs, e.g. sed -i 's/\\t/ /g')")
            user, _, rest = line.strip().partition(" ")
            if not user.isdigit():
                raise DataFormatError(path, line_number, f"non-integer user id {user!r}")
            if user not in id2user:
                raise DataFormatError(path, line_number, f"user id {user} is not in {DATAMAPS_FILE}")
            if user in seen:
                raise DataFormatError(path, line_number, f"user {user} appears twice")
            seen.add(user)
            items = _parse_id_line(path, line_number, rest, id2item, "item")
            if not items:
                raise DataFormatError(path, line_number, f"user {user} has no items")
            if expected_length is not None and len(items) != expected_length:
                raise DataFormatError(
                    path, line_number, f"{len(items)} negatives, expected num_negatives={expected_length}"
                )
            yield line_number, user, items


def _load_datamaps(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    try:
        with open(path, encoding="utf-8") as handle:
            datamaps = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"invalid JSON: {error.msg}") from None
    if not isinstance(datamaps, dict):
        raise DataFormatError(path, None, f"expected a JSON object with 'id2user' and 'id2item', got a "
                              f"{type(datamaps).__name__}")
    for key in ("id2user", "id2item"):
        if not isinstance(datamaps.get(key), dict):
            raise DataFormatError(path, None, f"missing the '{key}' mapping")
    id2item = datamaps["id2item"]
    expected = {str(i) for i in range(1, len(id2item) + 1)}
    if set(id2item) != expected:
        raise DataFormatError(path, None, "id2item keys must be the integers 1..N")
    return datamaps["id2user"], id2item


def _load_review_records(path: Path, id2user: dict, id2item: dict, skipped: Counter) -> list[dict]:
    """Review records of an explanation file, with ``user_id`` (index string) and ``item`` (int); records
    without explanation text are counted into ``skipped``."""
    with open(path, encoding="utf-8") as handle:
        try:
            content = json.load(handle)
        except json.JSONDecodeError as error:
            raise DataFormatError(path, error.lineno, f"invalid JSON: {error.msg}") from None
    if not isinstance(content, dict) or not all(isinstance(content.get(s), list) for s in REVIEW_FILE_SPLITS):
        raise DataFormatError(path, None, f"expected an object with lists {REVIEW_FILE_SPLITS}")
    user_of = {original: index for index, original in id2user.items()}
    item_of = {original: index for index, original in id2item.items()}
    records = []
    for file_split in REVIEW_FILE_SPLITS:
        for position, record in enumerate(content[file_split]):
            where = f"{file_split}[{position}]"
            user = str(record.get("user", ""))
            item = str(record.get("item", ""))
            user = user if user in id2user else user_of.get(user)
            item = item if item in id2item else item_of.get(item)
            if user is None or item is None:
                raise DataFormatError(path, where, f"user {record.get('user')!r} / item {record.get('item')!r} "
                                                   f"not in {DATAMAPS_FILE}")
            explanation = record.get("explanation")
            if not isinstance(explanation, str) or not explanation.strip():
                skipped["review_without_text"] += 1
                continue
            preference, attribute = record.get("user_preference"), record.get("item_attribution")
            has_rationale = bool(preference and attribute)
            records.append(
                {
                    "user_id": user,
                    "item": int(item),
                    "timestamp": int(record.get("timestamp", -1)),
                    "rating": record.get("rating"),
                    "review": record.get("review", explanation),
                    "explanation": explanation,
                    "feature": record.get("feature"),
                    "user_preference": preference,
                    "item_attribute": attribute,
                    "rationale_status": ("ok" if has_rationale else "failed") if "user_preference" in record else None,
                }
            )
    return records


def load_p5_dataset(
    folder: str | Path,
    indexing: ItemIndexing | str = DEFAULT_INDEXING,
    seed: int = 0,
    num_clusters: int = DEFAULT_NUM_CLUSTERS,
    max_cluster_size: int = DEFAULT_MAX_CLUSTER_SIZE,
    num_negatives: int = DEFAULT_NUM_NEGATIVES,
):
    """Load a P5/POD/RDRec data folder into the project schema (see :mod:`rdrec_hf.data.schema`).

    Users keep their numbers; items keep theirs under ``sequential`` indexing or are renamed by a seeded
    permutation under ``random``, consistently in sequences, negatives and reviews. Review records (when an
    explanation file exists) have ``timestamp`` -1 and ``review`` equal to the explanation unless the file
    gives them. Raises ``FileNotFoundError`` for a missing required file and :class:`DataFormatError`
    (file:line, or file:split[index] for JSON records) for malformed content; users shorter than 3 items,
    records without text and records outside the kept sequences are skipped and counted; an item repeated in
    a sequence keeps its first position (``repeated_item_in_sequence``).
    """
    folder = Path(folder)
    check_num_negatives(num_negatives)
    for required in (SEQUENTIAL_FILE, DATAMAPS_FILE):
        if not (folder / required).is_file():
            raise FileNotFoundError(f"{folder / required} not found: a P5 data folder needs {required}")
    id2user, id2item = _load_datamaps(folder / DATAMAPS_FILE)
    negative_lines = {}
    if (folder / NEGATIVE_FILE).is_file():
        for line_number, user, negatives in _read_user_lines(folder / NEGATIVE_FILE, id2user, id2item, num_negatives):
            negative_lines[user] = (line_number, negatives)
    users, skipped = [], Counter()
    for _, user, items in _read_user_lines(folder / SEQUENTIAL_FILE, id2user, id2item):
        distinct = list(dict.fromkeys(items))  # a repeat keeps its first position, as a repeated review does
        skipped["repeated_item_in_sequence"] += len(items) - len(distinct)
        items = distinct
        line_number, negatives = negative_lines.get(user, (None, None))
        if negatives is not None and set(negatives) & set(items):
            raise DataFormatError(folder / NEGATIVE_FILE, line_number, f"negatives of user {user} include their items")
        users.append(SourceUser(user, id2user[user], items, negatives))
    present = [folder / name for name in REVIEW_FILES if (folder / name).is_file()]
    review_file = present[0] if present else None
    reviews = _load_review_records(review_file, id2user, id2item, skipped) if review_file else None
    if review_file is not None:
        logger.info("read %s (%d records with text; the file's train/val/test lists are re-labelled by the "
                    "leave-one-out split)%s", review_file, len(reviews),
                    f"; ignored {', '.join(p.name for p in present[1:])}" if present[1:] else "")
    metadata = RecDatasetMetadata(
        source=str(folder),
        source_format="p5",
        indexing=ItemIndexing(indexing),
        seed=seed,
        num_clusters=num_clusters,
        max_cluster_size=max_cluster_size,
        num_negatives=num_negatives,
        options={
            "negative_file": NEGATIVE_FILE if negative_lines else None,
            "review_file": review_file.name if review_file else None,
        },
        skipped={reason: count for reason, count in skipped.items() if count},
    )
    return assemble_rec_dataset(users, [id2item[str(i)] for i in range(1, len(id2item) + 1)], reviews, metadata)
