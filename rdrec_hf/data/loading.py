"""Loading a dataset by name: the shared datasets (``all_beauty``, ``beauty``, ``sports``), a prepared folder or
a raw source (read through :func:`rdrec_hf.data.sources.load_source`), with the options of `DataArguments`: the
one home of the data options of ``rdrec-hf prepare`` and of the training, evaluation and benchmark programs
(same names, same defaults).

The default item ids are ``independent`` (one new token per item: the best leak-free scheme of BENCHMARKS.md).
The paper's ``sequential`` numbering leaks the test item (a model-free "largest id + 1" rule beats the published
students), so it is opt-in and every load of such a dataset logs a warning saying so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from datasets import DatasetDict

from ..models.item_ids import ItemIndexing
from ..paths import all_beauty_reviews, p5_dataset_dir, resolve_shared
from .schema import DEFAULT_INDEXING, DEFAULT_MAX_CLUSTER_SIZE, DEFAULT_NUM_CLUSTERS, get_metadata
from .sources import SourceFormat, detect_source_format, load_source

logger = logging.getLogger(__name__)

SHARED_DATASETS = ("all_beauty", "beauty", "sports")
LEAK_WARNING = (
    "%s numbers items sequentially (the paper's numbering): it leaks the test item, which is often the largest id "
    "of the history + 1, so a model-free rule scores well and its metrics are not leak-free. Use indexing "
    "`independent` (the default) or another leak-free scheme for honest numbers."
)


@dataclass
class DataArguments:
    """Which data to load: the data options of ``rdrec-hf prepare``, ``train`` and ``evaluate`` (their parsers
    are built from these fields: ``--dataset_seed`` or ``--dataset-seed`` everywhere)."""

    dataset: str = field(
        default="all_beauty",
        metadata={
            "help": "`all_beauty`, `beauty`, `sports` (the shared data), the folder of a prepared/distilled "
            "dataset (`rdrec-hf prepare` / `rdrec-hf distill`), or a raw source (a P5 folder, Amazon review JSON "
            "lines) read with the options below."
        },
    )
    indexing: ItemIndexing = field(
        default=DEFAULT_INDEXING,
        metadata={"help": "Item-id scheme when loading raw data: `independent` (the default: one new token per "
                  "item, leak-free), `random` (leak-free numbers), `collaborative` or `collaborative+independent` "
                  "(spectral-clustering ids, Hua et al. 2023), or `sequential` (the paper's numbers as P5/RDRec: "
                  "LEAKS the test item, opt-in, warned about). A prepared dataset folder keeps its own."},
    )
    num_clusters: int = field(
        default=DEFAULT_NUM_CLUSTERS,
        metadata={"help": "Collaborative schemes: clusters per level of the spectral clustering (Hua et al.'s "
                  "best on beauty: 10)."},
    )
    max_cluster_size: int = field(
        default=DEFAULT_MAX_CLUSTER_SIZE,
        metadata={"help": "Collaborative schemes: a cluster with more items than this is clustered again."},
    )
    dataset_seed: int = field(
        default=0,
        metadata={"help": "Seed of the data (item permutation, sampled negatives, clustering) when loading raw "
                  "data; fixed across training seeds so runs differ only in training (prepare's old --seed)."},
    )
    user_limit: int | None = field(
        default=None, metadata={"help": "Keep only the first N users (and their reviews): quick runs."}
    )

    def __post_init__(self):
        self.indexing = ItemIndexing(self.indexing)
        self.dataset = resolve_shared(self.dataset)  # a recipe's ../shared/... follows $RDREC_SHARED
        if self.num_clusters < 2 or self.max_cluster_size < 1:
            raise ValueError(f"need num_clusters >= 2 and max_cluster_size >= 1, got {self.num_clusters}, "
                             f"{self.max_cluster_size}")
        if self.user_limit is not None and self.user_limit <= 0:
            raise ValueError(f"user_limit must be positive, got {self.user_limit}")


def resolve_source(name: str, source_format: SourceFormat | str = SourceFormat.AUTO) -> tuple[str, SourceFormat]:
    """``(path, format)`` of a dataset name: the raw file or folder of a shared dataset, or ``name`` itself
    with its format (detected when ``auto``). A missing path raises ``FileNotFoundError``, a bare name that is
    no shared dataset ``ValueError`` naming the choices."""
    if name in SHARED_DATASETS:
        path = all_beauty_reviews() if name == "all_beauty" else p5_dataset_dir(name)
        return str(path), detect_source_format(path)
    fmt = SourceFormat(source_format)
    if fmt is SourceFormat.AUTO:
        try:
            fmt = detect_source_format(name)
        except FileNotFoundError:
            if "/" in name or "\\" in name:  # a path: say that nothing is there
                raise
            raise ValueError(f"unknown dataset {name!r}: use one of {', '.join(SHARED_DATASETS)}, a dataset "
                             "folder or a raw source (P5 folder, Amazon review JSON lines)") from None
    return name, fmt


def load_training_data(
    data_args: DataArguments, source_format: SourceFormat | str = SourceFormat.AUTO, **loader_options
) -> DatasetDict:
    """The project dataset named by ``data_args.dataset`` (a shared dataset, a prepared folder or a raw source
    of ``source_format``), cut to ``user_limit`` users when set. A raw source is read with the options of
    ``data_args`` and ``loader_options`` (further options of its loader, e.g. ``num_negatives``)."""
    path, fmt = resolve_source(data_args.dataset, source_format)
    if fmt is SourceFormat.SAVED:
        data = load_source(path, fmt, **loader_options)  # refuses options: a prepared dataset is numbered
        if data_args.indexing is not ItemIndexing(get_metadata(data).indexing):
            logger.info("dataset %s keeps its own indexing (%s)", path, get_metadata(data).indexing.value)
    else:
        data = load_source(
            path, fmt, indexing=data_args.indexing, seed=data_args.dataset_seed, num_clusters=data_args.num_clusters,
            max_cluster_size=data_args.max_cluster_size, **loader_options,
        )  # fmt: skip
    if get_metadata(data).indexing is ItemIndexing.SEQUENTIAL:
        logger.warning(LEAK_WARNING, f"dataset {data_args.dataset}")
    if data_args.user_limit is not None:
        data = first_users(data, data_args.user_limit)
    return data


def load_named_or_saved(dataset: str) -> DatasetDict:
    """A dataset a trained model's users come from: a shared dataset by name, built as `train` and `evaluate`
    build it (`DataArguments`' defaults), else a project dataset folder or Hub id (`load_rec_dataset`)."""
    from .storage import load_rec_dataset

    return load_training_data(DataArguments(dataset=dataset)) if dataset in SHARED_DATASETS else load_rec_dataset(dataset)


def first_users(data: DatasetDict, max_users: int) -> DatasetDict:
    """The first ``max_users`` users and their reviews; items (the catalog) and metadata unchanged."""
    users = data["users"].select(range(min(max_users, data["users"].num_rows)))
    kept = set(users["user_id"])
    subset = DatasetDict({**data, "users": users})
    if "reviews" in data:
        subset["reviews"] = data["reviews"].filter(lambda user_id: user_id in kept, input_columns="user_id")
    logger.info("kept the first %d of %d users", users.num_rows, data["users"].num_rows)
    return subset


__all__ = [
    "DEFAULT_INDEXING", "LEAK_WARNING", "SHARED_DATASETS", "DataArguments", "first_users", "load_training_data",
    "resolve_source",
]
