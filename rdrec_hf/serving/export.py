"""Folders to put on the Hub: an endpoint-ready model folder and a Gradio Space.

- :func:`export_model`: the student (LoRA adapters merged) with its code, tokenizer, catalog, card and the
  Inference Endpoints ``handler.py``; with a dataset, also ``user_histories.json`` so requests may name a user.
- :func:`write_space`: ``app.py``, ``requirements.txt`` and a README card that run ``rdrec_hf.serving.app`` on a Hub
  model id (and dataset id).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..data.schema import numbering_of
from .handler import USER_HISTORIES_FILE

HANDLER_SOURCE = Path(__file__).with_name("handler.py")
MODEL_FOLDER_EXTRAS = ("README.md", "training_curves.png")  # the card and what it shows
SPACE_TEMPLATE = '''"""Gradio Space of an RDRec student, written by `rdrec-hf export space`."""

import os

from rdrec_hf.serving.app import CSS, build_app

MODEL = os.environ.get("RDREC_MODEL", {model!r})
DATASET = os.environ.get("RDREC_DATASET", {dataset!r}) or None

# Spaces set GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; launch() reads them.
build_app(MODEL, DATASET).launch(css=CSS)
'''
SPACE_CARD = """---
title: RDRec recommender
emoji: 🛍️
sdk: gradio
sdk_version: {gradio_version}
app_file: app.py
models:
- {model}
{datasets}---

# RDRec recommender

Pick a user and see the student's recommendations, explanations and rationales beside popularity and the leak
rule, or rank top-N candidates exactly. Model: `{model}`. Written by `rdrec-hf export space`.
"""


def _prepare_output(output: str | Path, overwrite: bool) -> Path:
    folder = Path(output)
    if folder.exists() and any(folder.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{folder} is not empty; choose another folder or pass --overwrite")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_user_histories(data, folder: str | Path) -> Path:
    """``user_histories.json``: every user's items (oldest first) and the numbering they are written in."""
    users = data["users"]
    payload = {**numbering_of(data), "users": dict(zip(users["user_id"], users["items"]))}
    path = Path(folder) / USER_HISTORIES_FILE
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def export_model(model_path: str | Path, output: str | Path, dataset=None, overwrite: bool = False) -> Path:
    """Write the endpoint-ready folder of a trained student into ``output`` and return it.

    ``dataset``: a project ``DatasetDict`` whose users the endpoint should know by id (optional).
    """
    from ..checkpoints import load_trained_student

    model, tokenizer = load_trained_student(str(model_path))  # merges LoRA adapters, checks the model type
    folder = _prepare_output(output, overwrite)
    model.save_pretrained(folder)  # weights, config, the Hub code files and item_index.json
    tokenizer.save_pretrained(folder)
    for name in MODEL_FOLDER_EXTRAS:
        if (Path(model_path) / name).is_file():
            shutil.copy2(Path(model_path) / name, folder / name)
    shutil.copy2(HANDLER_SOURCE, folder / "handler.py")
    if dataset is not None:
        write_user_histories(dataset, folder)
    return folder


def write_space(output: str | Path, model: str, dataset: str | None = None, requirement: str | None = None,
                overwrite: bool = False) -> Path:
    """Write a Gradio Space folder that opens the app on ``model`` (a Hub id, or a path for a local run)."""
    from importlib.metadata import version

    import gradio

    folder = _prepare_output(output, overwrite)
    (folder / "app.py").write_text(SPACE_TEMPLATE.format(model=str(model), dataset=dataset or ""), encoding="utf-8")
    requirement = requirement or f"rdrec-hf[app]=={version('rdrec-hf')}"
    (folder / "requirements.txt").write_text(requirement + "\n", encoding="utf-8")
    datasets = f"datasets:\n- {dataset}\n" if dataset else ""
    (folder / "README.md").write_text(
        SPACE_CARD.format(gradio_version=gradio.__version__, model=model, datasets=datasets), encoding="utf-8"
    )
    return folder
