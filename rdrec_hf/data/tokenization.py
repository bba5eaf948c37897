"""Tokenizer loading (prompts and their whole-word ids are encoded by :mod:`rdrec_hf.models.prompting`)."""

from __future__ import annotations

from pathlib import Path

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
