"""Recovery of an interrupted training run: which ``checkpoint-N`` folders are complete, and which one a run
resumes from."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..integrity import safetensors_problem
from .rdrec_config import RDRecTrainingArguments

logger = logging.getLogger(__name__)


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why a ``checkpoint-N`` folder cannot be resumed from, or None. The Trainer writes
    ``trainer_state.json`` last, so a save killed half way leaves a folder without it; a cut weight file is
    caught by its size."""
    folder = Path(folder)
    state = folder / TRAINER_STATE_NAME
    if not state.is_file():
        return f"no {TRAINER_STATE_NAME} (the save did not finish)"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"{TRAINER_STATE_NAME} is cut short"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "no weights (*.safetensors)"
    for path in weights:
        problem = safetensors_problem(path)
        if problem is not None:
            return f"{path.name} is {problem}"
    return None


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest ``checkpoint-N`` of ``output_dir`` that can be resumed from; each newer incomplete one is
    skipped with a warning naming it."""
    folders = [path for path in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*") if path.is_dir()]
    for folder in sorted(folders, key=lambda path: int(path.name.rpartition("-")[2] or -1), reverse=True):
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        logger.warning("skipping the incomplete checkpoint %s: %s", folder, problem)
    return None


def resolve_checkpoint(training_args: RDRecTrainingArguments) -> str | None:
    """The checkpoint to resume from: ``resume_from_checkpoint`` (a folder, or ``"true"`` / ``"last"`` for the
    last complete one), else the last complete checkpoint already in ``output_dir`` (said in the log), unless
    ``overwrite_output_dir``, which removes those checkpoints and starts at step 0."""
    requested, output_dir = training_args.resume_from_checkpoint, Path(training_args.output_dir)
    if requested is not None and str(requested).lower() not in ("", "false"):
        if str(requested).lower() in ("true", "last"):
            last = last_complete_checkpoint(output_dir) if output_dir.is_dir() else None
            if last is None:
                raise ValueError(f"resume requested but {output_dir} holds no complete checkpoint-* folder")
            return last
        if not Path(requested).is_dir():
            raise ValueError(f"checkpoint {requested} not found")
        problem = checkpoint_problem(requested)
        if problem is not None:
            raise ValueError(f"checkpoint {requested} cannot be resumed from: {problem}")
        return str(requested)
    existing = sorted(output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*")) if output_dir.is_dir() else []
    if not existing:
        return None
    if training_args.overwrite_output_dir:
        logger.warning("overwrite_output_dir: removing %d checkpoints of %s and starting at step 0", len(existing), output_dir)
        for folder in existing:
            shutil.rmtree(folder)
        return None
    last = last_complete_checkpoint(output_dir)
    if last is None:
        logger.warning("%s holds no complete checkpoint: starting at step 0", output_dir)
    else:
        logger.warning("%s holds checkpoints: resuming from %s (pass --overwrite_output_dir to start over)", output_dir, last)
    return last
