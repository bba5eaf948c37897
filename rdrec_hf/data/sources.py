"""Which loader reads a path: the one registry behind `rdrec-hf prepare`, training's ``dataset:`` and
``distill``'s ``dataset_path``.

Formats (:class:`SourceFormat`): a P5/POD/RDRec folder (``sequential.txt``), Amazon review JSON lines
(``.json``, ``.json.gz``, ``.jsonl``, ``.jsonl.gz``) and a project dataset (a ``save_rec_dataset`` folder with
``dataset_dict.json``, or a folder in Hub layout with ``README.md``).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from datasets import DatasetDict

from .amazon import load_amazon_reviews
from .p5 import SEQUENTIAL_FILE, load_p5_dataset
from .storage import load_rec_dataset

AMAZON_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")


class SourceFormat(str, Enum):
    AUTO = "auto"  # detected from the path (`detect_source_format`)
    P5 = "p5"  # a folder with sequential.txt and datamaps.json
    AMAZON = "amazon"  # Amazon review JSON lines
    SAVED = "saved"  # a project dataset (already in the schema)


def detect_source_format(path: str | Path) -> SourceFormat:
    """The format of local ``path``; ``ValueError`` naming the known formats when it is none of them,
    ``FileNotFoundError`` when nothing is there."""
    source = Path(path)
    if source.is_dir():
        if (source / SEQUENTIAL_FILE).is_file():
            return SourceFormat.P5
        if (source / "dataset_dict.json").is_file() or (source / "README.md").is_file():
            return SourceFormat.SAVED
        raise ValueError(
            f"{source}: not a known data folder (a P5 folder has {SEQUENTIAL_FILE} and datamaps.json; "
            "a project dataset has dataset_dict.json)"
        )
    if source.is_file():
        if source.name.endswith(AMAZON_SUFFIXES):
            return SourceFormat.AMAZON
        raise ValueError(f"{source}: not a known data file (Amazon review JSON lines: .json or .json.gz)")
    raise FileNotFoundError(f"{source}: no such file or folder")


def load_source(path: str | Path, format: SourceFormat | str = SourceFormat.AUTO, **options) -> DatasetDict:
    """The project dataset read from ``path`` by the loader of ``format`` (detected when ``auto``).

    ``options`` go to the raw loaders (``indexing``, ``seed``, ``num_negatives``, ...; see
    :func:`load_p5_dataset` and :func:`load_amazon_reviews`); a project dataset is already numbered, so it takes
    none.
    """
    fmt = SourceFormat(format)
    if fmt is SourceFormat.AUTO:
        fmt = detect_source_format(path)
    if fmt is SourceFormat.SAVED:
        if options:
            raise ValueError(f"{path} is a project dataset, already numbered: it takes no {sorted(options)}")
        return load_rec_dataset(path)
    loader = {SourceFormat.P5: load_p5_dataset, SourceFormat.AMAZON: load_amazon_reviews}[fmt]
    return loader(path, **options)


__all__ = ["AMAZON_SUFFIXES", "SourceFormat", "detect_source_format", "load_source"]
