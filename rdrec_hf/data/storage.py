"""Saving, loading and sharing project datasets (the schema of :mod:`rdrec_hf.data.schema`).

Two on-disk forms, both carrying the ``metadata`` split:

- ``save_rec_dataset`` / ``load_from_disk`` folders (``dataset_dict.json`` + Arrow files);
- Hub repositories: each split is its own *config* (``users``, ``items``, ``reviews``, ``metadata``) with one
  ``train`` split of Parquet files, because the splits have different columns and one config cannot hold
  them. :func:`export_hub_folder` writes exactly that layout (Parquet + a README whose YAML declares the
  configs) to a local folder, :func:`push_rec_dataset` uploads such a folder, and :func:`load_rec_dataset`
  reads a Hub id or a local copy of one through ``datasets.load_dataset``, the same code path.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from datasets import DatasetDict, get_dataset_config_names, load_dataset, load_from_disk

from .schema import ITEMS, METADATA, REVIEWS, USERS, validate_rec_dataset

HUB_SPLIT = "train"
SCHEMA_SPLITS = (USERS, ITEMS, REVIEWS, METADATA)


def save_rec_dataset(data: DatasetDict, path: str | Path) -> None:
    """Validate ``data`` against the schema and ``save_to_disk`` it (metadata included)."""
    validate_rec_dataset(data)
    data.save_to_disk(str(path))


def _readme(data: DatasetDict) -> str:
    metadata = validate_rec_dataset(data)
    configs = "".join(
        f"- config_name: {name}\n  data_files:\n  - split: {HUB_SPLIT}\n    path: {name}/*.parquet\n"
        for name in data
    )
    return (
        f"---\nconfigs:\n{configs}---\n\n# rdrec-hf recommendation dataset\n\n"
        f"Built by `rdrec_hf` from `{Path(metadata.source).name}` ({metadata.source_format}), "
        f"indexing `{metadata.indexing.value}`, seed {metadata.seed}.\n\nCounts: {metadata.counts}. "
        f"Skipped records: {metadata.skipped or 'none'}.\n\n"
        "Load it with `rdrec_hf.data.load_rec_dataset(repo_id)`; each table is a config "
        f"({', '.join(data)}), each with one `{HUB_SPLIT}` split.\n"
    )


def export_hub_folder(data: DatasetDict, folder: str | Path) -> Path:
    """Write the Hub repository layout of ``data`` (Parquet per config + README) into ``folder``."""
    folder = Path(folder)
    readme = _readme(data)
    for name, dataset in data.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        dataset.to_parquet(str(folder / name / f"{HUB_SPLIT}-00000-of-00001.parquet"))
    (folder / "README.md").write_text(readme, encoding="utf-8")
    return folder


HUB_URL_PREFIX = {"dataset": "https://huggingface.co/datasets/", "model": "https://huggingface.co/",
                  "space": "https://huggingface.co/spaces/"}


def upload_hub_folder(
    write_folder: Callable[[str], object],
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    repo_type: str = "dataset",
) -> str:
    """Create the Hub repository ``repo_id`` of ``repo_type`` (``dataset``, ``model`` or ``space``; a Space runs
    Gradio) if needed, let ``write_folder(tmp_dir)`` fill a temporary folder and upload it; returns the
    repository URL. Shared by every ``push_*`` helper of the project."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    space_sdk = {"space_sdk": "gradio"} if repo_type == "space" else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **space_sdk)
    with tempfile.TemporaryDirectory() as folder:
        write_folder(folder)
        api.upload_folder(repo_id=repo_id, repo_type=repo_type, folder_path=folder)
    return HUB_URL_PREFIX[repo_type] + repo_id


def push_rec_dataset(data: DatasetDict, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload ``data`` to a Hub dataset repository in the layout of :func:`export_hub_folder`; returns its URL."""
    validate_rec_dataset(data)
    return upload_hub_folder(lambda folder: export_hub_folder(data, folder), repo_id, private, token)


def load_rec_dataset(path_or_hub_id: str | Path) -> DatasetDict:
    """Load a project dataset: a ``save_rec_dataset`` folder, a folder in Hub layout, or a Hub dataset id.

    The result is validated against the schema (``ValueError`` naming what is missing).
    """
    path = Path(path_or_hub_id)
    if (path / "dataset_dict.json").is_file():
        data = load_from_disk(str(path))
    else:
        if path.exists() and not (path / "README.md").is_file():
            raise FileNotFoundError(f"{path}: neither a saved dataset (dataset_dict.json) nor a Hub layout (README.md)")
        source = str(path) if path.exists() else str(path_or_hub_id)
        configs = set(get_dataset_config_names(source))
        # datasets keys its cache of a local folder by the folder's name, not its content: two folders called
        # `hub/` would share one cache entry, so a local folder is always read afresh.
        mode = "force_redownload" if path.exists() else None
        data = DatasetDict(
            {
                name: load_dataset(source, name, split=HUB_SPLIT, download_mode=mode)
                for name in SCHEMA_SPLITS
                if name in configs
            }
        )
    validate_rec_dataset(data)
    return data
