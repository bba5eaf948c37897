"""Collator turning tokenised examples (any mix of tasks and lengths) into the model batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .mixture import RaggedExamples
from .ragged import Ragged

MODEL_SEQUENCE_COLUMNS = ("input_ids", "attention_mask", "whole_word_ids", "labels")
MODEL_COLUMNS = (*MODEL_SEQUENCE_COLUMNS, "task_id")  # what a tokenised example feeds the model


@dataclass
class RDRecDataCollator:
    """Pads and stacks examples into the batch ``RDRecForConditionalGeneration.forward`` takes.

    Input: a training mixture's :class:`RaggedExamples` (what ``TrainingMixture.__getitems__`` returns), or
    examples with ``input_ids``, ``whole_word_ids`` (lists of ints), ``task_id`` (int) and optionally
    ``labels`` (evaluation sets); any other column (``user_id``, ``candidates``, ...) is dropped. Both are
    padded by one vectorised assignment per column.
    Output: ``input_ids`` / ``attention_mask`` / ``whole_word_ids`` ``LongTensor [B, L]`` (L = longest,
    rounded up to ``pad_to_multiple_of``), ``task_id`` ``LongTensor [B]``, ``labels`` ``LongTensor [B, T]``
    with ``label_pad_token_id`` on padding (only when the examples have labels). With ``history_items`` and a
    mixture's examples, also ``history_items`` ``LongTensor [B, H]``: each sequential prompt's history as
    catalog positions + 1, left-padded with 0 (what a SASRec teacher reads; all 0 for other tasks).
    """

    pad_token_id: int = 0
    label_pad_token_id: int = -100
    pad_to_multiple_of: int | None = None
    history_items: bool = False

    def __post_init__(self):
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be >= 1, got {self.pad_to_multiple_of}")

    def __call__(self, examples: RaggedExamples | Sequence[Mapping]) -> dict[str, torch.Tensor]:
        if not isinstance(examples, RaggedExamples):
            examples = self._ragged(examples)
        if not len(examples.task_id):
            raise ValueError("cannot collate an empty batch")
        input_ids = examples.input_ids.pad(self.pad_token_id, self.pad_to_multiple_of)
        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(
                np.arange(input_ids.shape[1]) < examples.input_ids.lengths[:, None]).long(),
            "whole_word_ids": torch.from_numpy(examples.whole_word_ids.pad(0, width=input_ids.shape[1])),
        }
        if examples.labels is not None:
            batch["labels"] = torch.from_numpy(examples.labels.pad(self.label_pad_token_id, self.pad_to_multiple_of))
        batch["task_id"] = torch.from_numpy(np.asarray(examples.task_id, dtype=np.int64))
        if self.history_items and examples.history_items is not None:
            shifted = Ragged(examples.history_items.values + 1, examples.history_items.lengths)
            batch["history_items"] = torch.from_numpy(shifted.pad(0, left=True))
        return batch

    @staticmethod
    def _ragged(examples: Sequence[Mapping]) -> RaggedExamples:
        if not examples:
            raise ValueError("cannot collate an empty batch")
        for name in ("input_ids", "whole_word_ids"):
            if name not in examples[0]:
                raise KeyError(f"examples lack the '{name}' column")
        rows = {name: Ragged.from_rows([example[name] for example in examples])
                for name in ("input_ids", "whole_word_ids", "labels") if name in examples[0]}
        return RaggedExamples(rows["input_ids"], rows["whole_word_ids"], rows.get("labels"),
                              np.array([int(example["task_id"]) for example in examples], dtype=np.int64))
