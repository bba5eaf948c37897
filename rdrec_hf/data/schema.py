"""The project's dataset schema, its metadata, item indexing, leave-one-out splits and negative sampling.

Every loader (P5 folders, raw Amazon reviews, saved datasets) ends in :func:`assemble_rec_dataset`, so the
schema of ``CONTRIBUTING.md`` ("Project dataset schema") is produced in exactly one place:

- ``users``: ``user_id``, ``original_id``, ``items`` (time-ordered), ``valid_negatives``, ``test_negatives``;
- ``items``: ``item_id``, ``original_id``;
- ``reviews`` (only when the source has review text): ``user_id``, ``item_id``, ``split``, ``timestamp``,
  ``rating``, ``review``, ``explanation``, ``feature``, ``user_preference``, ``item_attribute``,
  ``rationale_status``;
- ``metadata``: one row, one column ``metadata_json`` holding :class:`RecDatasetMetadata` as JSON.

How metadata travels: it is a one-row split of the ``DatasetDict`` itself, so ``save_to_disk`` /
``load_from_disk``, ``push_to_hub`` / ``load_dataset`` and any copy of the folder carry it with no side
file to forget. Read it with :func:`get_metadata`. It records the source, the indexing scheme, the seed,
the number of negatives, the loader options, the final counts and the count of every skipped record by
reason (see :data:`SKIP_REASONS`).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, Features, Sequence as SequenceFeature, Value

from ..models.item_ids import ItemIdScheme, ItemIndexing, as_list
from .ragged import Ragged, empty_rows, row_of_values

logger = logging.getLogger(__name__)

USERS, ITEMS, REVIEWS, METADATA = "users", "items", "reviews", "metadata"
TRAIN, VALIDATION, TEST = "train", "validation", "test"
EVAL_SPLITS = (VALIDATION, TEST)
MIN_SEQUENCE_LENGTH = 3  # leave-one-out needs one training item, one validation and one test item
DEFAULT_NUM_NEGATIVES = 99
# Every public loader's item numbering: leak-free (the P5 numbering leaks the test item; opt-in, warned about).
DEFAULT_INDEXING = ItemIndexing.INDEPENDENT
# Collaborative ids (Hua et al. 2023): clusters per level, and the size above which a cluster is split again.
DEFAULT_NUM_CLUSTERS = 20
DEFAULT_MAX_CLUSTER_SIZE = 500

USER_FEATURES = Features(
    {
        "user_id": Value("string"),
        "original_id": Value("string"),
        "items": SequenceFeature(Value("string")),
        "valid_negatives": SequenceFeature(Value("string")),
        "test_negatives": SequenceFeature(Value("string")),
    }
)
ITEM_FEATURES = Features({"item_id": Value("string"), "original_id": Value("string")})
REVIEW_FEATURES = Features(
    {
        "user_id": Value("string"),
        "item_id": Value("string"),
        "split": Value("string"),
        "timestamp": Value("int64"),
        "rating": Value("float64"),
        "review": Value("string"),
        "explanation": Value("string"),
        "feature": Value("string"),
        "user_preference": Value("string"),
        "item_attribute": Value("string"),
        "rationale_status": Value("string"),
    }
)
METADATA_FEATURES = Features({"metadata_json": Value("string")})

SKIP_REASONS = {
    "user_too_short": f"user with fewer than {MIN_SEQUENCE_LENGTH} distinct items (or below min_interactions)",
    "duplicate_user_item": "repeated review of the same user-item pair (the earliest is kept)",
    "review_without_text": "review (or explanation record) with empty text: the interaction is kept, the record is not",
    "review_text_not_string": "review whose text field is not a string (a number, a list): read as no text",
    "repeated_item_in_sequence": "an item repeated in one user's P5 sequence (the first occurrence is kept)",
    "review_of_skipped_user": "review record of a user dropped for being too short",
    "review_not_in_sequence": "review record whose user-item interaction is in no sequence",
}


# How items are numbered: one enum for the data and the model's catalog. ``sequential`` is the source's
# numbering (order of first appearance, as in P5/POD/RDRec); it leaks, as the test item is often
# ``max(history) + 1``, and is kept to compare with published numbers. ``random`` is a permutation of those
# numbers drawn from the seed: leak-free.


class DataFormatError(ValueError):
    """Malformed input, always naming the file and the line (or record) at fault."""

    def __init__(self, path, line: int | str | None, message: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass
class RecDatasetMetadata:
    """What a dataset was built from and how; stored in the ``metadata`` split.

    Fields: ``source`` (the file or folder read), ``source_format`` (``p5`` / ``amazon-reviews``),
    ``indexing`` (the item-id scheme), ``seed`` (item permutation, negatives, clustering), ``num_negatives``
    (asked per user and split), ``num_clusters`` / ``max_cluster_size`` and ``item_codes`` (collaborative
    schemes: the clustering's settings and each item's cluster path, see :func:`item_id_scheme`),
    ``options`` (other loader options), ``counts`` (``users``, ``items``, ``interactions``, ``reviews``,
    ``users_with_fewer_negatives`` and ``raw_*`` counts before filtering) and ``skipped`` (records skipped
    per reason of :data:`SKIP_REASONS`).
    """

    source: str
    source_format: str
    indexing: ItemIndexing
    seed: int
    num_negatives: int
    options: dict = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    num_clusters: int = DEFAULT_NUM_CLUSTERS
    max_cluster_size: int = DEFAULT_MAX_CLUSTER_SIZE
    item_codes: dict[str, list[int]] | None = None

    def __post_init__(self):
        self.indexing = ItemIndexing(self.indexing)
        unknown = set(self.skipped) - set(SKIP_REASONS)
        if unknown:
            raise ValueError(f"unknown skip reasons {sorted(unknown)}; documented ones: {sorted(SKIP_REASONS)}")

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "indexing": self.indexing.value}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RecDatasetMetadata":
        return cls(**json.loads(text))


def table_dataset(columns: Mapping[str, list], features: Features) -> Dataset:
    """A Dataset of plain-Python columns built straight as an Arrow table (``from_dict`` re-encodes every
    nested value, several times slower on 4.6 million negatives)."""
    return Dataset(pa.table(dict(columns), schema=features.arrow_schema))


def get_metadata(data: DatasetDict) -> RecDatasetMetadata:
    """The :class:`RecDatasetMetadata` of a project dataset (``ValueError`` when the split is missing)."""
    if METADATA not in data or data[METADATA].num_rows != 1:
        raise ValueError(f"not a project dataset: it needs a one-row '{METADATA}' split (has {list(data)})")
    return RecDatasetMetadata.from_json(data[METADATA][0]["metadata_json"])


def numbering_of(data: DatasetDict) -> dict:
    """How the dataset numbers its items (indexing, seed, source): stored in a model's catalog
    (``ItemIndex.numbering``) so that a dataset numbered otherwise can be named when they meet."""
    metadata = get_metadata(data)
    return {"indexing": metadata.indexing.value, "seed": metadata.seed, "source": metadata.source}


def _describe_numbering(numbering: Mapping | None, fallback: str) -> str:
    if not numbering:
        return fallback
    return f"{numbering['indexing']} indexing, seed {numbering['seed']}, from {numbering['source']}"


def check_numbering(item_index, data: DatasetDict, model_name: str = "the model", data_name: str = "the dataset") -> None:
    """``ValueError`` naming both numberings unless every item id of the model's catalog (``ItemIndex``) stands
    for the same original id (e.g. asin) as in ``data``: a model and a dataset numbered with other seeds or
    schemes would otherwise give metrics and recommendations for the wrong items, without a word. A model
    without a catalog (``item_index`` None) has no numbering to compare."""
    if item_index is None:
        return
    items = data[ITEMS]
    in_data = dict(zip(as_list(items["item_id"]), as_list(items["original_id"])))  # one read per column: 16 s at 1M
    in_model = dict(zip(item_index.item_ids, item_index.original_ids))
    if in_data == in_model:
        return
    differing = sorted((item for item in in_model.keys() & in_data.keys() if in_model[item] != in_data[item]), key=str)
    example = (f"item {differing[0]} is {in_model[differing[0]]} in the model but {in_data[differing[0]]} in the "
               f"dataset; {len(differing):,} of {len(in_model):,} ids differ" if differing
               else f"the model has {len(in_model):,} items, the dataset {len(in_data):,}")  # fmt: skip
    raise ValueError(
        f"{model_name} and {data_name} number items differently ({example}). Model: "
        f"{_describe_numbering(item_index.numbering, f'{item_index.indexing.value} ids (numbering not recorded)')}; "
        f"dataset: {_describe_numbering(numbering_of(data), '')}. Use the dataset the model was trained on, or "
        "prepare it again with the model's --indexing and --dataset_seed."
    )


def validate_rec_dataset(data: DatasetDict) -> RecDatasetMetadata:
    """Check splits and columns against the schema; return the metadata. Raises ``ValueError`` naming the gap."""
    expected = {USERS: USER_FEATURES, ITEMS: ITEM_FEATURES, REVIEWS: REVIEW_FEATURES, METADATA: METADATA_FEATURES}
    for split in (USERS, ITEMS, METADATA):
        if split not in data:
            raise ValueError(f"project dataset lacks the '{split}' split (has {list(data)})")
    for split, dataset in data.items():
        if split not in expected:
            raise ValueError(f"unexpected split '{split}'; the schema has {list(expected)}")
        missing = set(expected[split]) - set(dataset.column_names)
        if missing:
            raise ValueError(f"split '{split}' lacks columns {sorted(missing)}")
    return get_metadata(data)


def leave_one_out_split(position: int, sequence_length: int) -> str:
    """Split of the interaction at ``position`` of a user's sequence: last = test, second last = validation."""
    if position == sequence_length - 1:
        return TEST
    if position == sequence_length - 2:
        return VALIDATION
    return TRAIN


def check_num_negatives(num_negatives: int) -> None:
    """Top-N ranks the held-out item among the stored negatives: none would make HR@1 = 1 for every system."""
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be at least 1 (top-N ranks the held-out item among them), got {num_negatives}")


def item_permutation(num_items: int, indexing: ItemIndexing, seed: int) -> list[int]:
    """``new_id = permutation[old_id - 1]`` for ids ``1..num_items``; identity for ``sequential``, the same
    seeded permutation for every other scheme (so schemes compared at one seed share ids and negatives)."""
    permutation = list(range(1, num_items + 1))
    if ItemIndexing(indexing) is not ItemIndexing.SEQUENTIAL:  # every leak-free scheme numbers items at random
        random.Random(seed).shuffle(permutation)
    return permutation


def sample_negatives(
    rng: np.random.Generator, num_items: int, excludes: Sequence[Collection[int]] | Ragged, k: int
) -> list[np.ndarray]:
    """For every exclusion set, ``k`` distinct ids from ``1..num_items`` outside it (int64 array, draw order).

    ``excludes``: one collection of ids per row, or their :class:`Ragged` rows (what the training data path keeps).
    When fewer than ``k`` such ids exist, all of them are returned in a random order (documented: a small
    catalog such as All_Beauty's 83 items cannot give 99 negatives; nothing is repeated or invented).
    """
    rows = excludes if isinstance(excludes, Ragged) else Ragged.from_rows([list(exclude) for exclude in excludes])
    negatives = sample_negative_rows(rng, num_items, rows, k)
    return [negatives.row(index) for index in range(len(negatives))]


def sample_negative_rows(rng: np.random.Generator, num_items: int, excludes: Ragged, k: int) -> Ragged:
    """:func:`sample_negatives` as ragged rows, vectorised: one draw of ``2k + 8`` ids per row, duplicates and
    excluded ids masked out with sorted-key look-ups; the rare row left short draws again (a loop over those only)."""
    if not len(excludes):
        return empty_rows(0)
    width = 2 * k + 8
    draws = rng.integers(1, num_items + 1, size=(len(excludes), width))
    keys = np.repeat(np.arange(len(excludes), dtype=np.int64), width) * (num_items + 1) + draws.ravel()
    usable = np.zeros(keys.size, dtype=bool)
    usable[np.unique(keys, return_index=True)[1]] = True  # first draw of each id in its row
    excluded_keys = row_of_values(excludes.lengths) * (num_items + 1) + excludes.values.astype(np.int64)
    usable &= ~np.isin(keys, excluded_keys)
    usable = usable.reshape(draws.shape)
    usable &= np.cumsum(usable, axis=1) <= k
    counts = usable.sum(axis=1)
    short = np.flatnonzero(counts < k)
    if not len(short):
        return Ragged(draws[usable], counts)
    rows = np.split(draws[usable], np.cumsum(counts)[:-1])
    for row in short:
        exclude = set(excludes.row(row).tolist())
        if num_items - len(exclude) <= k:
            pool = np.array([i for i in range(1, num_items + 1) if i not in exclude], dtype=np.int64)
            rows[row] = rng.permutation(pool)
        else:
            chosen = rows[row]
            more = sample_negatives(rng, num_items, [exclude | set(chosen.tolist())], k - len(chosen))[0]
            rows[row] = np.concatenate([chosen, more])
    return Ragged.from_rows(rows)


@dataclass
class SourceUser:
    """One user as read from a source, items as 1-based source (sequential) item numbers."""

    user_id: str
    original_id: str
    items: list[int]
    test_negatives: list[int] | None = None  # fixed by the source (P5 negative.txt)


def assemble_rec_dataset(
    users: Sequence[SourceUser],
    item_original_ids: Sequence[str],
    reviews: Iterable[dict] | None,
    metadata: RecDatasetMetadata,
) -> DatasetDict:
    """Build the schema's ``DatasetDict`` from parsed source records.

    ``item_original_ids[i]`` is the original id of source item ``i + 1``. Review dicts carry ``user_id``
    (final), ``item`` (source item number) and the text columns; their split follows the user's
    leave-one-out split. Users shorter than :data:`MIN_SEQUENCE_LENGTH` and their reviews are skipped and
    counted into ``metadata.skipped``. Negatives are drawn in the source numbering (so both indexing schemes
    see the same candidate items for a seed), then renamed with the item permutation.
    """
    skipped = Counter(metadata.skipped)
    kept_users = []
    for user in users:
        if len(user.items) < max(MIN_SEQUENCE_LENGTH, metadata.options.get("min_interactions", 0)):
            skipped["user_too_short"] += 1
        else:
            kept_users.append(user)
    if not kept_users:
        minimum = max(MIN_SEQUENCE_LENGTH, metadata.options.get("min_interactions", 0))
        raise ValueError(f"{metadata.source}: no user has {minimum} or more distinct items ({len(users):,} users read"
                         + (", the input is empty" if not users else "") + "); a leave-one-out split needs a training, "
                         "a validation and a test item per user")
    num_items = len(item_original_ids)
    permutation = item_permutation(num_items, metadata.indexing, metadata.seed)

    names = pa.array(["0"] + [str(new_id) for new_id in permutation])  # names[source number] = final id

    def id_lists(lists: Sequence[Sequence[int]]) -> pa.ListArray:
        """Per-user lists of source numbers as a list<string> column of final ids, renamed in Arrow."""
        offsets = np.zeros(len(lists) + 1, dtype=np.int32)
        np.cumsum([len(values) for values in lists], out=offsets[1:])
        flat = np.concatenate([np.asarray(values, dtype=np.int64) for values in lists])
        return pa.ListArray.from_arrays(pa.array(offsets), names.take(pa.array(flat)))

    rng = np.random.default_rng(metadata.seed)
    excludes = [user.items for user in kept_users]
    valid_negatives = sample_negatives(rng, num_items, excludes, metadata.num_negatives)
    sampled_test = sample_negatives(rng, num_items, excludes, metadata.num_negatives)
    user_columns = {
        "user_id": [user.user_id for user in kept_users],
        "original_id": [user.original_id for user in kept_users],
        "items": id_lists(excludes),
        "valid_negatives": id_lists(valid_negatives),
        "test_negatives": id_lists(
            [user.test_negatives or sampled for user, sampled in zip(kept_users, sampled_test)]
        ),
    }
    users_with_fewer_negatives = sum(len(negatives) < metadata.num_negatives for negatives in valid_negatives)

    def rename(source_items: Sequence[int]) -> list[str]:
        return names.take(pa.array(source_items, type=pa.int64())).to_pylist()

    item_ids = rename(list(range(1, num_items + 1)))
    order = sorted(range(num_items), key=lambda i: int(item_ids[i]))
    splits = {
        USERS: table_dataset(user_columns, USER_FEATURES),
        ITEMS: table_dataset(
            {"item_id": [item_ids[i] for i in order], "original_id": [item_original_ids[i] for i in order]},
            ITEM_FEATURES,
        ),
    }
    if reviews is not None:
        splits[REVIEWS] = _split_reviews(reviews, kept_users, {u.user_id for u in users}, rename, skipped)

    if metadata.indexing.is_collaborative:
        metadata.item_codes = _collaborative_item_codes(kept_users, num_items, item_ids, metadata)
    metadata.skipped = dict(sorted(skipped.items()))
    metadata.counts = {
        "users": len(kept_users),
        "items": num_items,
        "interactions": sum(len(u.items) for u in kept_users),
        "users_with_fewer_negatives": users_with_fewer_negatives,
        **({"reviews": splits[REVIEWS].num_rows} if REVIEWS in splits else {}),
        **metadata.counts,
    }
    splits[METADATA] = table_dataset({"metadata_json": [metadata.to_json()]}, METADATA_FEATURES)
    logger.info("%s (%s indexing): %s", metadata.source, metadata.indexing.value, metadata.counts)
    if metadata.skipped:
        logger.warning("%s: skipped %s (%s)", metadata.source, metadata.skipped, "; ".join(
            f"{reason}: {SKIP_REASONS[reason]}" for reason in metadata.skipped))
    return DatasetDict(splits)


def _collaborative_item_codes(users, num_items: int, item_ids: Sequence[str], metadata) -> dict[str, list[int]]:
    """Cluster path of every item (final id -> code) from the training interactions only: each user's
    validation and test items never enter the co-occurrence graph. Graph nodes are in catalog order (the
    ``items`` split), so the codes can be recomputed from the saved dataset alone."""
    from .item_graph import collaborative_codes, cooccurrence_graph

    catalog = sorted(item_ids, key=int)
    position = {item_id: node for node, item_id in enumerate(catalog)}
    node_of_source = [position[item_id] for item_id in item_ids]  # source number - 1 -> graph node
    histories = [[node_of_source[item - 1] for item in training_history(user.items)] for user in users]
    codes = collaborative_codes(
        cooccurrence_graph(histories, num_items), metadata.num_clusters, metadata.max_cluster_size, metadata.seed
    )
    return {item_id: code for item_id, code in zip(catalog, codes)}


def item_id_scheme(data_or_metadata: "DatasetDict | RecDatasetMetadata") -> ItemIdScheme:
    """The item-id rule of a project dataset (its indexing, with the cluster codes of collaborative schemes)."""
    metadata = data_or_metadata if isinstance(data_or_metadata, RecDatasetMetadata) else get_metadata(data_or_metadata)
    return ItemIdScheme(metadata.indexing, metadata.item_codes)


def _split_reviews(reviews, kept_users, all_user_ids, rename, skipped: Counter) -> Dataset:
    """Review records as a Dataset, each labelled with its interaction's leave-one-out split."""
    position_of = {u.user_id: {item: pos for pos, item in enumerate(u.items)} for u in kept_users}
    length_of = {u.user_id: len(u.items) for u in kept_users}
    columns: dict[str, list] = {name: [] for name in REVIEW_FEATURES}
    for record in reviews:
        positions = position_of.get(record["user_id"])
        if positions is None and record["user_id"] in all_user_ids:
            skipped["review_of_skipped_user"] += 1
            continue
        if positions is None or record["item"] not in positions:
            skipped["review_not_in_sequence"] += 1
            continue
        row = {name: record.get(name) for name in REVIEW_FEATURES}
        row.update(item_id=record["item"], split=leave_one_out_split(positions[record["item"]], length_of[record["user_id"]]))
        for name, value in row.items():
            columns[name].append(value)
    columns["item_id"] = rename(columns["item_id"])
    return table_dataset(columns, REVIEW_FEATURES)


def training_history(items: Sequence[str]) -> list[str]:
    """Items a model may see in training: all but the validation and test targets."""
    return list(items[:-2])


def split_target(items: Sequence[str], split: str) -> tuple[list[str], str]:
    """``(history before the target, target)`` of a user for ``validation`` or ``test``."""
    if split == VALIDATION:
        return list(items[:-2]), items[-2]
    if split == TEST:
        return list(items[:-1]), items[-1]
    raise ValueError(f"split must be one of {EVAL_SPLITS}, got {split!r}")


def count_summary(data: Mapping[str, Dataset]) -> str:
    """One line with the row count of every split, for logs and reports."""
    return ", ".join(f"{name}: {dataset.num_rows:,}" for name, dataset in data.items())
