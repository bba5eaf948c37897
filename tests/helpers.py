"""Helpers shared by the tests (no tests here): the repository's root, loading its scripts, seeded tiny models,
real-vocabulary prompt batches and running code without rdrec_hf installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import importlib.util
from pathlib import Path

import torch

from rdrec_hf.models.prompting import encode_prompts
from rdrec_hf.models import RDRecConfig, RDRecForConditionalGeneration
from rdrec_hf.models.tasks import Task

REPOSITORY = Path(__file__).resolve().parents[1]


def load_script(path: str | Path, name: str | None = None):
    """A script of the repository (``benchmarks/x.py``, ``recipes/x.py``; these folders are not packages) loaded as a
    module named ``name`` (default: its file name); benchmarks/ is on pytest's ``pythonpath`` for their siblings."""
    path = REPOSITORY / path
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def seeded_model(seed: int = 0, preset: str = "tiny", **overrides) -> RDRecForConditionalGeneration:
    """A randomly initialised student in eval mode; weights come from `seed` without touching the global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return RDRecForConditionalGeneration(RDRecConfig.from_preset(preset, **overrides)).eval()


def fit(model, batch: dict[str, torch.Tensor], labels: torch.Tensor, optimizer, steps: int, schedule=None) -> float:
    """``steps`` optimiser steps of ``model`` on one batch (``schedule`` stepped after each); the last loss."""
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
    return loss.item()


def prompt_batch(tokenizer, prompts: list[str], task_ids: list[int]) -> dict[str, torch.Tensor]:
    """Encode prompts as the data layer does (whole-word ids from offsets) and add one task id per prompt."""
    return {**encode_prompts(tokenizer, prompts, max_length=128, return_tensors="pt"), "task_id": torch.tensor(task_ids)}


WITHOUT_RDREC_HF = """
import json, sys
sys.path.append(sys.argv[1])  # site-packages without its .pth files: the editable rdrec_hf stays invisible
try:
    import rdrec_hf
except ImportError:
    pass
else:
    raise SystemExit("rdrec_hf is importable; this check would prove nothing")
"""
LOAD_AS_REMOTE_CODE = """
import torch
from transformers import AutoModelForSeq2SeqLM
model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[2], trust_remote_code=True)
batch = {key: torch.tensor(value) for key, value in json.loads(sys.argv[3]).items()}
"""


def run_without_rdrec_hf(script: str, args: list[str], tmp_path) -> dict:
    """Run `script` in a `python -I -S` where rdrec_hf cannot be imported (`args` follow as `sys.argv[2:]`, with
    `json` and `sys` imported); return the JSON of its last output line."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HF_HOME": str(tmp_path / "hf_home"),  # fresh modules cache for the copied code
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", WITHOUT_RDREC_HF + textwrap.dedent(script),
         sysconfig.get_paths()["purelib"], *args],  # fmt: skip
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_as_remote_code(script: str, directory, batch: dict[str, torch.Tensor], tmp_path, extra_args=()) -> dict:
    """Run `script` where rdrec_hf cannot be imported, after `model` (loaded from `directory` with
    `trust_remote_code=True`) and `batch` are defined (`extra_args` follow as `sys.argv[4:]`); return the JSON
    of its last output line."""
    serialised_batch = json.dumps({key: value.tolist() for key, value in batch.items()})
    return run_without_rdrec_hf(LOAD_AS_REMOTE_CODE + textwrap.dedent(script),
                                [str(directory), serialised_batch, *extra_args], tmp_path)  # fmt: skip


def memorised_model(tokenizer, targets: list[str], steps: int = 36):
    """A tiny student trained (seeded, no dropout) to map user_i -> targets[i] on the sequential task."""
    model = seeded_model(seed=7, dropout_rate=0.0).train()
    prompts = [f"user_{user} history item_{user * 3}" for user in range(len(targets))]
    batch = prompt_batch(tokenizer, prompts, [Task.SEQUENTIAL] * len(targets))
    encoded_targets = tokenizer(targets, padding=True, return_tensors="pt")
    labels = encoded_targets.input_ids.masked_fill(encoded_targets.attention_mask == 0, -100)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    # Linear decay lets the large learning rate settle instead of oscillating at the end.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    return model.eval(), batch, fit(model, batch, labels, optimizer, steps, schedule)
