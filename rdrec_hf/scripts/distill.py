"""Distil reviews into RDRec rationales with a teacher LM (``rdrec-hf distill``, ``recipes/distill.py``).

Options come from `DistillScriptArguments` (below) and `DistillationConfig` (rdrec_hf.teacher). A run stopped
part-way continues when started again with the same arguments (see ``output_dir``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from accelerate import PartialState
from datasets import load_from_disk
from trl import TrlParser

from ..data.sources import load_source
from ..teacher import DistillationConfig, RationaleGenerator
from ..teacher.card import push_rationale_dataset, save_rationale_dataset
from ..paths import resolve_shared
from . import configure_logging


@dataclass
class DistillScriptArguments:
    """Input and output of the run (the run itself is configured by ``DistillationConfig``)."""

    dataset_path: str = field(
        metadata={"help": "Reviews: Amazon review JSON lines (.json or .json.gz) or a P5 folder (read by "
                          "rdrec_hf.data.load_source), or a folder written by save_to_disk "
                          "(e.g. by `rdrec-hf prepare`)."}
    )
    save_path: str | None = field(
        default=None, metadata={"help": "Where the distilled dataset and its card go; default <output_dir>/dataset."}
    )
    push_to_hub: str | None = field(default=None, metadata={"help": "Hub dataset repository id to push to."})
    private: bool = field(default=False, metadata={"help": "Create the Hub repository as private."})


def load_reviews(path: str):
    """A folder written by ``save_to_disk`` (a project dataset or a plain ``Dataset`` of reviews), or a raw
    source (Amazon JSON lines, a P5 folder) loaded into the project schema."""
    path = resolve_shared(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"dataset_path {path} does not exist")
    if (Path(path) / "state.json").is_file() or (Path(path) / "dataset_dict.json").is_file():
        return load_from_disk(path)
    return load_source(path)


def make_parser(prog: str | None = None) -> TrlParser:
    """The parser of this program's options (also used by the tests to check every distillation YAML)."""
    return TrlParser((DistillScriptArguments, DistillationConfig), prog=prog)


def main(script_args: DistillScriptArguments, config: DistillationConfig) -> None:
    configure_logging()
    dataset = load_reviews(script_args.dataset_path)
    result = RationaleGenerator(config=config).generate(dataset, source=script_args.dataset_path)
    if PartialState().is_main_process:
        save_path = save_rationale_dataset(result, script_args.save_path or Path(config.output_dir) / "dataset")
        print(f"saved to {save_path}")
        if script_args.push_to_hub:
            print(f"pushed to {push_rationale_dataset(result, script_args.push_to_hub, script_args.private)}")
