"""Fixtures shared by the whole suite: the real shared data (never skipped) and the T5 vocabulary."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rdrec_hf.paths import shared_dir, t5_tokenizer_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared():
    """The shared data folder. A missing folder fails the run: CI must not pass by skipping."""
    return shared_dir()


@pytest.fixture(scope="session")
def t5_tokenizer(shared):
    """The real T5 vocabulary (32,100 tokens) as a fast tokenizer."""
    # The folder holds only spiece.model, so AutoTokenizer cannot tell the class; T5Tokenizer is fast in v5.
    from transformers import T5Tokenizer

    return T5Tokenizer.from_pretrained(str(t5_tokenizer_dir()))
