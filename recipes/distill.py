"""Distil reviews into RDRec rationales with a teacher LM (thin layer over ``rdrec_hf.teacher``).

    python recipes/distill.py --config recipes/all_beauty/distill/config_smollm2.yaml [--limit 100 ...]
    accelerate launch --multi_gpu --num_processes 2 recipes/distill.py --config ...

Command-line flags override the YAML. A run stopped part-way continues when started again with the same
arguments (see ``output_dir``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from datasets import load_from_disk
from trl import TrlParser

from rdrec_hf.data import load_amazon_reviews
from rdrec_hf.teacher import DistillationConfig, RationaleGenerator
from rdrec_hf.teacher.card import push_rationale_dataset, save_rationale_dataset


@dataclass
class DistillScriptArguments:
    """Input and output of the recipe (the run itself is configured by ``DistillationConfig``)."""

    dataset_path: str = field(
        metadata={"help": "Reviews: Amazon review JSON lines (.json or .json.gz, read by "
                          "rdrec_hf.data.load_amazon_reviews) or a folder written by save_to_disk."}
    )
    save_path: str | None = field(
        default=None, metadata={"help": "Where the distilled dataset and its card go; default <output_dir>/dataset."}
    )
    push_to_hub: str | None = field(default=None, metadata={"help": "Hub dataset repository id to push to."})
    private: bool = field(default=False, metadata={"help": "Create the Hub repository as private."})


def load_reviews(path: str):
    """A saved dataset folder, or raw Amazon JSON lines loaded into the project schema."""
    if Path(path).is_dir():
        return load_from_disk(path)
    return load_amazon_reviews(path)


def main(script_args: DistillScriptArguments, config: DistillationConfig) -> None:
    if not Path(script_args.dataset_path).exists():
        raise FileNotFoundError(f"dataset_path {script_args.dataset_path} does not exist")
    dataset = load_reviews(script_args.dataset_path)
    generator = RationaleGenerator(config=config)
    result = generator.generate(dataset, source=script_args.dataset_path)
    if generator.state.is_main_process:
        save_path = save_rationale_dataset(result, script_args.save_path or Path(config.output_dir) / "dataset")
        print(f"saved to {save_path}")
        if script_args.push_to_hub:
            print(f"pushed to {push_rationale_dataset(result, script_args.push_to_hub, script_args.private)}")


if __name__ == "__main__":
    parser = TrlParser((DistillScriptArguments, DistillationConfig))
    # User errors (a rejected option combination, a missing file, column or split, the default teacher's
    # package not installed, an output_dir of another run) end with their message, not a traceback.
    try:
        main(*parser.parse_args_and_config())
    except (ValueError, KeyError, FileNotFoundError, ModuleNotFoundError) as error:
        sys.exit(f"error: {error}")
