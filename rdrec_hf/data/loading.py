"""Loading a dataset by name: the shared datasets (``all_beauty``, ``beauty``, ``sports``), a prepared folder or
a raw source (read through :func:`rdrec_hf.data.sources.load_source`), with the options of `DataArguments` (one
home for the training, evaluation and benchmark programs)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from datasets import DatasetDict

from ..models.item_ids import ItemIndexing
from ..paths import all_beauty_reviews, p5_dataset_dir, resolve_shared
from .schema import DEFAULT_MAX_CLUSTER_SIZE, DEFAULT_NUM_CLUSTERS, get_metadata
from .sources import SourceFormat, detect_source_format, load_source

logger = logging.getLogger(__name__)

SHARED_DATASETS = ("all_beauty", "beauty", "sports")


@dataclass
class DataArguments:
    """Which data to train on."""

    dataset: str = field(
        default="all_beauty",
        metadata={
            "help": "`all_beauty`, `beauty`, `sports` (the shared data), the folder of a prepared/distilled "
            "dataset (`rdrec-hf prepare` / `rdrec-hf distill`), or a raw source (a P5 folder, Amazon review JSON "
            "lines) read with the options below."
        },
    )
    indexing: ItemIndexing = field(
        default=ItemIndexing.SEQUENTIAL,
        metadata={"help": "Item-id scheme when loading raw data: `sequential` (numbers as P5/RDRec; leaks the "
                  "test item), `random` (leak-free numbers), `independent` (one new token per item), "
                  "`collaborative` or `collaborative+independent` (spectral-clustering ids, Hua et al. 2023). "
                  "A prepared dataset folder keeps its own."},
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
        metadata={"help": "Seed of the data (random indexing, sampled negatives) when loading raw data; "
                  "fixed across training seeds so runs differ only in training."},
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


def load_training_data(data_args: DataArguments) -> DatasetDict:
    """The project dataset named by ``data_args.dataset`` (a shared dataset or a prepared folder), cut to
    ``user_limit`` users when set."""
    name = data_args.dataset
    options = {
        "indexing": data_args.indexing,
        "seed": data_args.dataset_seed,
        "num_clusters": data_args.num_clusters,
        "max_cluster_size": data_args.max_cluster_size,
    }
    if name in SHARED_DATASETS:
        data = load_source(all_beauty_reviews() if name == "all_beauty" else p5_dataset_dir(name), **options)
    else:
        try:
            fmt = detect_source_format(name)
        except FileNotFoundError:
            raise ValueError(f"unknown dataset {name!r}: use one of {', '.join(SHARED_DATASETS)}, a dataset "
                             "folder or a raw source (P5 folder, Amazon review JSON lines)") from None
        data = load_source(name, fmt, **({} if fmt is SourceFormat.SAVED else options))
        if fmt is SourceFormat.SAVED and data_args.indexing is not ItemIndexing(get_metadata(data).indexing):
            logger.info("dataset %s keeps its own indexing (%s)", name, get_metadata(data).indexing.value)
    if data_args.user_limit is not None:
        data = first_users(data, data_args.user_limit)
    return data


def first_users(data: DatasetDict, max_users: int) -> DatasetDict:
    """The first ``max_users`` users and their reviews; items (the catalog) and metadata unchanged."""
    users = data["users"].select(range(min(max_users, data["users"].num_rows)))
    kept = set(users["user_id"])
    subset = DatasetDict({**data, "users": users})
    if "reviews" in data:
        subset["reviews"] = data["reviews"].filter(lambda user_id: user_id in kept, input_columns="user_id")
    logger.info("kept the first %d of %d users", users.num_rows, data["users"].num_rows)
    return subset
