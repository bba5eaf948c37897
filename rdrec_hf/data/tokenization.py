"""Tokenizer loading, prompt encoding and whole-word ids from fast-tokenizer offsets.

Whole-word ids mark the tokens of each user / item mention (``user_<id>``, ``item_<id>``, or a run of new item
tokens; the pattern is the item-id scheme's :data:`rdrec_hf.models.item_ids.MENTION_PATTERN`): the k-th mention of a prompt
gets id k (1, 2, ...) on every token whose character span overlaps the mention, every other token gets 0
(special tokens included). Using character offsets instead of scanning token strings for ``_`` makes this
correct for any fast tokenizer, including ones that merge an id's last digit with the punctuation after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..models.item_ids import MENTION_PATTERN

SENTENCEPIECE_FILE = "spiece.model"


def load_tokenizer(name_or_path: str | Path):
    """A fast tokenizer: ``AutoTokenizer``, or ``T5Tokenizer`` for a bare folder holding only ``spiece.model``.

    Raises ``ValueError`` when only a slow tokenizer can be built (whole-word ids need offsets).
    """
    from transformers import AutoTokenizer, T5Tokenizer

    folder = Path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    except (OSError, ValueError):
        if not (folder / SENTENCEPIECE_FILE).is_file():
            raise
        # A bare SentencePiece folder has no config naming its class; T5Tokenizer is the fast one in v5.
        tokenizer = T5Tokenizer.from_pretrained(str(folder))
    if not tokenizer.is_fast:
        raise ValueError(f"{name_or_path}: a fast tokenizer is required (whole-word ids come from offsets)")
    return tokenizer


def mention_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the user and item mentions, in order."""
    return [match.span() for match in MENTION_PATTERN.finditer(text)]


def whole_word_ids(text: str, offsets: Sequence[Sequence[int]]) -> list[int]:
    """Whole-word ids of one encoded text, aligned with its tokens.

    ``offsets``: the tokenizer's ``offset_mapping`` for ``text`` (one ``(start, end)`` per token; empty
    spans such as ``</s>``'s ``(0, 0)`` get 0).
    """
    spans = mention_spans(text)
    ids = []
    mention = 0  # index into spans of the first mention that may still overlap a token
    for start, end in offsets:
        while mention < len(spans) and spans[mention][1] <= start:
            mention += 1
        inside = end > start and mention < len(spans) and spans[mention][0] < end
        ids.append(mention + 1 if inside else 0)
    return ids


def encode_prompts(tokenizer, texts: Sequence[str], max_length: int, return_tensors: str | None = None) -> dict:
    """Tokenise prompts with truncation to ``max_length`` tokens.

    Returns ``input_ids``, ``attention_mask`` and ``whole_word_ids``: lists of per-text lists, or with
    ``return_tensors="pt"`` right-padded ``LongTensor``s of shape ``[len(texts), longest]`` (whole-word ids
    padded with 0).
    """
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, return_offsets_mapping=True)
    batch = {
        "input_ids": encoded["input_ids"],
        "attention_mask": encoded["attention_mask"],
        "whole_word_ids": [whole_word_ids(t, o) for t, o in zip(texts, encoded["offset_mapping"])],
    }
    if return_tensors is None:
        return batch
    if return_tensors != "pt":
        raise ValueError(f"return_tensors must be None or 'pt', got {return_tensors!r}")
    pad_values = {"input_ids": tokenizer.pad_token_id, "attention_mask": 0, "whole_word_ids": 0}
    return {name: pad_sequences(rows, pad_values[name]) for name, rows in batch.items()}


def pad_sequences(rows: Sequence[Sequence[int]], value: int, pad_to_multiple_of: int | None = None) -> torch.Tensor:
    """Right-pad integer rows to the longest (rounded up to ``pad_to_multiple_of``): ``LongTensor [len(rows), L]``."""
    longest = max((len(row) for row in rows), default=0)
    if pad_to_multiple_of:
        longest = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    padded = torch.full((len(rows), longest), value, dtype=torch.long)
    for index, row in enumerate(rows):
        padded[index, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return padded
