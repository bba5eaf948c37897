"""Helpers shared by the model tests (no tests here): seeded tiny models and real-vocabulary prompt batches."""

from __future__ import annotations

import torch

from rdrec_hf.models import RDRecConfig, RDRecForConditionalGeneration


def seeded_model(seed: int = 0, preset: str = "tiny", **overrides) -> RDRecForConditionalGeneration:
    """A randomly initialised student in eval mode; weights come from `seed` without touching the global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return RDRecForConditionalGeneration(RDRecConfig.from_preset(preset, **overrides)).eval()


def prompt_batch(tokenizer, prompts: list[str], task_ids: list[int]) -> dict[str, torch.Tensor]:
    """Tokenise whitespace-split prompts; every sub-token of the k-th `user_*`/`item_*` word gets whole-word id k."""
    words = [prompt.split() for prompt in prompts]
    encoding = tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")
    whole_word_ids = torch.zeros_like(encoding.input_ids)
    for row, row_words in enumerate(words):
        mention_number = {}
        for position, word_index in enumerate(encoding.word_ids(row)):
            if word_index is not None and row_words[word_index].startswith(("user_", "item_")):
                mention_number.setdefault(word_index, len(mention_number) + 1)
                whole_word_ids[row, position] = mention_number[word_index]
    return {
        "input_ids": encoding.input_ids,
        "attention_mask": encoding.attention_mask,
        "whole_word_ids": whole_word_ids,
        "task_id": torch.tensor(task_ids),
    }
