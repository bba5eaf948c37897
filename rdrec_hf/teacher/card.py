"""Dataset card of a rationale dataset, rendered from ``hub_cards/rationale_dataset_card.md``; save, export, push.

A project ``DatasetDict`` (with a ``metadata`` split) is saved and exported through the data layer
(``save_rec_dataset`` / ``export_hub_folder``: one Hub config per split), its README replaced by this card,
which declares the same configs. A lone ``Dataset`` is one Parquet file under ``data/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Dataset, DatasetDict
from huggingface_hub import DatasetCard, DatasetCardData

from ..data.schema import METADATA
from ..data.storage import HUB_SPLIT, export_hub_folder, save_rec_dataset, upload_hub_folder
from ..paths import hub_card_template
from .generator import RATIONALE_COLUMNS, read_provenance
from .prompts import prompt_text_for_card

CARD_TEMPLATE = hub_card_template("rationale_dataset_card.md")
# The reviews' terms (research use only), which the rationales inherit; the model card carries the same file.
DATA_LICENSE = json.loads(hub_card_template("data_license.json").read_text(encoding="utf-8"))
_COLUMN_HELP = {
    "user_preference": "teacher sentence: what the user prefers (null when failed)",
    "item_attribute": "teacher sentence: what the item's attributes are (null when failed)",
    "rationale_status": "`ok`, `repaired` (fixed by a parser rule) or `failed`",
    "review": "the review text given to the teacher",
}
_EXAMPLE_CHARS = 300


def _is_project_dataset(dataset: Dataset | DatasetDict) -> bool:
    return isinstance(dataset, DatasetDict) and METADATA in dataset


def _rationale_table(dataset: Dataset | DatasetDict) -> Dataset:
    """The table holding the rationale columns."""
    if isinstance(dataset, Dataset):
        return dataset
    for split in dataset.values():
        if set(RATIONALE_COLUMNS) <= set(split.column_names):
            return split
    raise ValueError(f"no split has the rationale columns {RATIONALE_COLUMNS} (splits: {list(dataset)})")


def rationale_card_data(configs: list[str]) -> DatasetCardData:
    """The card's metadata: the reviews' licence, the task, and one Hub config per split of a project dataset."""
    return DatasetCardData(
        language=["en"],
        **DATA_LICENSE,
        task_categories=["text-generation"],
        tags=["recommendation", "rationale-distillation", "rdrec"],
        pretty_name="RDRec rationales",
        configs=[{"config_name": name, "data_files": [{"split": HUB_SPLIT, "path": f"{name}/*.parquet"}]}
                 for name in configs] or None,
    )


def render_rationale_card(dataset: Dataset | DatasetDict, num_examples: int = 5) -> str:
    """The dataset card (markdown with YAML metadata) of a dataset made by ``RationaleGenerator``."""
    from jinja2 import Environment, StrictUndefined

    from .._version import __version__

    provenance = read_provenance(dataset)
    if provenance is None:
        raise ValueError("the dataset carries no rationale provenance: make it with RationaleGenerator.generate")
    table = _rationale_table(dataset)
    examples = []
    for row in table.select(range(min(num_examples, len(table)))):
        text = " ".join((row.get("review") or "").split())
        examples.append({**row, "review": text[:_EXAMPLE_CHARS] + ("…" if len(text) > _EXAMPLE_CHARS else "")})
    card_data = rationale_card_data(list(dataset) if _is_project_dataset(dataset) else [])
    template = Environment(undefined=StrictUndefined, keep_trailing_newline=True).from_string(
        CARD_TEMPLATE.read_text(encoding="utf-8")
    )
    content = template.render(
        card_data=card_data.to_yaml(), **DATA_LICENSE, provenance=provenance, counts=provenance["counts"],
        source=provenance["source"], examples=examples, columns=table.column_names, column_help=_COLUMN_HELP,
        prompts=prompt_text_for_card(), library_version=__version__,
    )
    return str(DatasetCard(content))  # parses the metadata back: a card whose YAML does not load fails here


def save_rationale_dataset(dataset: Dataset | DatasetDict, path: str | Path) -> Path:
    """Save with ``save_to_disk`` (a project dataset validated first), plus ``README.md`` (the card) and
    ``provenance.json``."""
    path = Path(path)
    card = render_rationale_card(dataset)
    if _is_project_dataset(dataset):
        save_rec_dataset(dataset, path)
    else:
        dataset.save_to_disk(str(path))
    (path / "README.md").write_text(card, encoding="utf-8")
    (path / "provenance.json").write_text(json.dumps(read_provenance(dataset), indent=2), encoding="utf-8")
    return path


def export_rationale_hub_folder(dataset: Dataset | DatasetDict, folder: str | Path) -> Path:
    """Write the Hub repository layout (Parquet files and the card as README) into ``folder``."""
    folder = Path(folder)
    card = render_rationale_card(dataset)
    if _is_project_dataset(dataset):
        export_hub_folder(dataset, folder)
    else:
        (folder / "data").mkdir(parents=True, exist_ok=True)
        _rationale_table(dataset).to_parquet(str(folder / "data" / f"{HUB_SPLIT}-00000-of-00001.parquet"))
    (folder / "README.md").write_text(card, encoding="utf-8")
    return folder


def push_rationale_dataset(dataset: Dataset | DatasetDict, repo_id: str, private: bool = False,
                           token: str | None = None) -> str:
    """Upload the layout of :func:`export_rationale_hub_folder` to the Hub dataset ``repo_id``; its URL."""
    return upload_hub_folder(lambda folder: export_rationale_hub_folder(dataset, folder), repo_id, private, token)
