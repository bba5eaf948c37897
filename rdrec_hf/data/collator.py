"""Collator turning tokenised examples (any mix of tasks and lengths) into the model batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..models.prompting import pad_sequences

MODEL_SEQUENCE_COLUMNS = ("input_ids", "attention_mask", "whole_word_ids", "labels")
MODEL_COLUMNS = (*MODEL_SEQUENCE_COLUMNS, "task_id")  # what a tokenised example feeds the model


@dataclass
class RDRecDataCollator:
    """Pads and stacks examples into the batch ``RDRecForConditionalGeneration.forward`` takes.

    Input: examples with ``input_ids``, ``attention_mask``, ``whole_word_ids`` (lists of ints), ``task_id``
    (int) and optionally ``labels``; any other column (``user_id``, ``candidates``, ...) is dropped.
    Output: ``input_ids`` / ``attention_mask`` / ``whole_word_ids`` ``LongTensor [B, L]`` (L = longest,
    rounded up to ``pad_to_multiple_of``), ``task_id`` ``LongTensor [B]``, ``labels`` ``LongTensor [B, T]``
    with ``label_pad_token_id`` on padding (only when the examples have labels).
    """

    pad_token_id: int = 0
    label_pad_token_id: int = -100
    pad_to_multiple_of: int | None = None

    def __post_init__(self):
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be >= 1, got {self.pad_to_multiple_of}")

    def __call__(self, examples: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("cannot collate an empty batch")
        pad_values = {
            "input_ids": self.pad_token_id,
            "attention_mask": 0,
            "whole_word_ids": 0,
            "labels": self.label_pad_token_id,
        }
        batch = {}
        for name in MODEL_SEQUENCE_COLUMNS:
            if name not in examples[0]:
                if name == "labels":
                    continue
                raise KeyError(f"examples lack the '{name}' column")
            rows = [example[name] for example in examples]
            batch[name] = pad_sequences(rows, pad_values[name], self.pad_to_multiple_of)
        batch["task_id"] = torch.tensor([int(example["task_id"]) for example in examples], dtype=torch.long)
        return batch
