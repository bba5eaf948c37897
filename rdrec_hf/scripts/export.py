"""Write an endpoint-ready model folder (``rdrec-hf export model PATH --output DIR``: handler.py, optionally
user_histories.json) or a Gradio Space folder (``rdrec-hf export space --model_name_or_path ID --output DIR``:
app.py, requirements.txt). Options: `ExportConfig` (below)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import CommandParser, UserError, configure_logging, option


@dataclass
class ExportConfig:
    """What to write and where."""

    kind: Literal["model", "space"] = option(..., help="What to write (also the first word: export model PATH).")
    output: str = option(..., help="Folder to write (must be empty unless --overwrite).")
    path: str | None = option(None, help="model: the trained student folder (also the second word).")
    model_name_or_path: str | None = option(
        None, aliases=("--model",), help="space: the model id (or folder) the Space opens."
    )
    dataset: str | None = option(
        None, help="model: project dataset for user_histories.json; space: the dataset id (or folder) of the user "
        "picker.",
    )  # fmt: skip
    requirement: str | None = option(
        None, help="space: the requirements.txt line that installs rdrec-hf (default: rdrec-hf[app]==<this version>)."
    )
    overwrite: bool = option(False, help="Replace a non-empty --output folder.")

    def __post_init__(self):
        if self.kind == "model":
            if self.path is None:
                raise ValueError("export model needs the model folder: rdrec-hf export model PATH --output DIR")
            if self.model_name_or_path is not None or self.requirement is not None:
                raise ValueError("--model_name_or_path and --requirement go with `export space`")
        else:
            if self.model_name_or_path is None:
                raise ValueError("export space needs --model_name_or_path (the Hub model id the Space opens)")
            if self.path is not None:
                raise ValueError("export space takes no model folder: give it as --model_name_or_path")


def make_parser(prog: str | None = None) -> CommandParser:
    """The parser of this program's options."""
    return CommandParser(ExportConfig, prog=prog, positionals=("kind", "path"),
                         usage="%(prog)s {model,space} [PATH] --output DIR [options]",
                         description="Write an endpoint-ready model folder or a Gradio Space folder.")  # fmt: skip


def main(config: ExportConfig) -> int:
    from ..serving.export import export_model, write_space

    configure_logging(results_on_stdout=True)
    try:
        if config.kind == "model":
            dataset = None
            if config.dataset is not None:
                from ..data import load_rec_dataset

                dataset = load_rec_dataset(config.dataset)
            folder = export_model(config.path, config.output, dataset, overwrite=config.overwrite)
            print(f"endpoint-ready model folder (handler.py{', user_histories.json' if config.dataset else ''}): {folder}")
        else:
            folder = write_space(config.output, config.model_name_or_path, config.dataset, config.requirement,
                                 overwrite=config.overwrite)  # fmt: skip
            print(f"Space folder: {folder} (run it here with: cd {folder} && python app.py)")
    except ImportError as error:
        raise UserError(str(error)) from None
    return 0
