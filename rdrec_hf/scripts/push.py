"""Upload a trained student (endpoint-ready, with its card; optionally a Gradio Space on it) or a project
dataset to the Hub (``rdrec-hf push model|dataset PATH --repo_id ID``). Options: `PushConfig` (below)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import CommandParser, UserError, configure_logging, option


@dataclass
class PushConfig:
    """What to upload and where."""

    kind: Literal["model", "dataset"] = option(..., help="What PATH holds (also the first word: push model PATH).")
    path: str = option(..., help="Model folder or saved project dataset (also the second word).")
    repo_id: str = option(..., help="The Hub repository id to push to.")
    private: bool = option(False, help="Create the Hub repositories as private.")
    dataset: str | None = option(
        None, help="model: a project dataset whose users the endpoint knows by id (writes user_histories.json)."
    )
    space: str | None = option(None, help="model: also push a Gradio Space (this Space id) that opens the app on it.")
    space_dataset: str | None = option(None, help="With --space: the Hub dataset id the Space picks users from.")

    def __post_init__(self):
        if self.kind == "dataset" and (self.space is not None or self.dataset is not None):
            raise ValueError("--space and --dataset go with `push model`")
        if self.space_dataset is not None and self.space is None:
            raise ValueError("--space_dataset goes with --space")


def make_parser(prog: str | None = None) -> CommandParser:
    """The parser of this program's options."""
    return CommandParser(PushConfig, prog=prog, positionals=("kind", "path"),
                         usage="%(prog)s {model,dataset} PATH --repo_id ID [options]",
                         description="Upload a trained model or a project dataset to the Hub, with its card.")  # fmt: skip


def main(config: PushConfig) -> int:
    configure_logging(results_on_stdout=True)
    path = Path(config.path)
    if not path.exists():
        raise UserError(f"{path}: no such folder")
    if config.kind == "dataset":
        from ..data import load_rec_dataset, push_rec_dataset

        url = push_rec_dataset(load_rec_dataset(path), config.repo_id, private=config.private)
    else:
        from ..data import load_rec_dataset, upload_hub_folder
        from ..serving.export import export_model, write_space
        from .recommend import load_student

        load_student(str(path))  # a clear error before anything is uploaded
        dataset = None if config.dataset is None else load_rec_dataset(config.dataset)
        url = upload_hub_folder(lambda folder: export_model(path, folder, dataset, overwrite=True), config.repo_id,
                                private=config.private, repo_type="model")  # fmt: skip
        if config.space is not None:
            space_url = upload_hub_folder(
                lambda folder: write_space(folder, config.repo_id, config.space_dataset, overwrite=True), config.space,
                private=config.private, repo_type="space",
            )  # fmt: skip
            print(f"pushed the Space of {config.repo_id} to {space_url}")
    print(f"pushed {config.kind} {path} to {url}")
    return 0
