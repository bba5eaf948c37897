"""Helpers shared by the model tests (no tests here): seeded tiny models and real-vocabulary prompt batches."""

from __future__ import annotations

import torch

from rdrec_hf.data.tokenization import encode_prompts
from rdrec_hf.models import RDRecConfig, RDRecForConditionalGeneration


def seeded_model(seed: int = 0, preset: str = "tiny", **overrides) -> RDRecForConditionalGeneration:
    """A randomly initialised student in eval mode; weights come from `seed` without touching the global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return RDRecForConditionalGeneration(RDRecConfig.from_preset(preset, **overrides)).eval()


def prompt_batch(tokenizer, prompts: list[str], task_ids: list[int]) -> dict[str, torch.Tensor]:
    """Encode prompts as the data layer does (whole-word ids from offsets) and add one task id per prompt."""
    return {**encode_prompts(tokenizer, prompts, max_length=128, return_tensors="pt"), "task_id": torch.tensor(task_ids)}
