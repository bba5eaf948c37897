"""Load raw data into a project dataset saved to disk (``rdrec-hf prepare``).

Options come from `PrepareConfig` (below) and `DataArguments` (rdrec_hf.data: the data options of ``train``
and ``evaluate``, with the same names and defaults); ``--source`` and ``--seed`` are the old spellings of
``--dataset`` and ``--dataset_seed``, kept for one release.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..data.loading import DataArguments
from ..data.schema import DEFAULT_NUM_NEGATIVES
from . import CommandParser, UserError, check_positive, configure_logging, option

DATA_ALIASES = {"--dataset": ["--source"], "--dataset_seed": ["--seed"]}  # in train, --seed is the training seed


@dataclass
class PrepareConfig:
    """Where the prepared dataset goes and what it stores."""

    output: str = option(..., help="Folder to save the dataset in.")
    format: Literal["auto", "p5", "amazon"] = option("auto", help="Format of a raw source (auto: detected).")
    num_stored_negatives: int = option(
        DEFAULT_NUM_NEGATIVES, aliases=("--num_negatives", "--num-negatives"),
        help="Stored top-N negatives per user and split (training's `num_negatives` is the prompt's, drawn from "
        "these).",
    )  # fmt: skip
    min_interactions: int | None = option(
        None, help="Amazon reviews: fewest distinct items a user needs (default: the loader's, 3: one training, one "
        "validation and one test item).",
    )  # fmt: skip
    overwrite: bool = option(False, help="Replace the project dataset already in --output.")

    def __post_init__(self):
        check_positive(self.num_stored_negatives, "--num_stored_negatives")
        check_positive(self.min_interactions, "--min_interactions")


def make_parser(prog: str | None = None) -> CommandParser:
    """The parser of this program's options."""
    return CommandParser((PrepareConfig, DataArguments), prog=prog, aliases=DATA_ALIASES,
                         description="Load raw data into a project dataset (saved to disk).")  # fmt: skip


def main(config: PrepareConfig, data_args: DataArguments) -> int:
    from ..data import save_rec_dataset
    from ..data.loading import load_training_data, resolve_source
    from ..data.schema import count_summary, get_metadata
    from ..data.sources import SourceFormat

    configure_logging(results_on_stdout=True)
    output = Path(config.output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        if not (output / "dataset_dict.json").is_file():
            raise UserError(f"{output} already exists and is not a project dataset; choose another --output")
        if not config.overwrite:
            raise UserError(f"{output} already holds a dataset; pass --overwrite to replace it")
    source, fmt = resolve_source(data_args.dataset, config.format)
    if fmt is SourceFormat.SAVED:
        raise UserError(f"{source} is already a project dataset: use it as it is")
    options = {"num_negatives": config.num_stored_negatives}
    if config.min_interactions is not None:
        if fmt is not SourceFormat.AMAZON:
            raise UserError(f"--min_interactions applies to Amazon reviews; {source} is a {fmt.value} source")
        options["min_interactions"] = config.min_interactions
    data = load_training_data(data_args, fmt, **options)
    if output.exists():
        shutil.rmtree(output)  # a project dataset, replaced as --overwrite asked
    save_rec_dataset(data, config.output)
    metadata = get_metadata(data)
    print(count_summary(data))
    if metadata.skipped:
        print("skipped: " + ", ".join(f"{reason} {count}" for reason, count in sorted(metadata.skipped.items())))
    print(f"saved ({metadata.indexing.value} indexing, seed {metadata.seed}) to {config.output}")
    return 0


__all__ = ["PrepareConfig", "main", "make_parser"]
