"""How the free-text tasks (explanations, rationales) are decoded: one home for evaluation, the app,
``rdrec-hf recommend --explain`` and the Inference Endpoints handler (through ``recommending.generate_texts``).

A small student decoded greedily loops ("I I I I ...", "it's made with love and it's made with love"):
`TextGenerationSettings` blocks repeated 3-grams (which also rules out a token four times in a row) and keeps
a length range. The paper's protocol keeps the reference scripts' own settings (`PAPER_TEXT_GENERATION`).

Greedy or beam search gives a maximum-likelihood student's single most likely text, which for explanations is
the same generic sentence for every user ("I have been using this product for years."); seeded nucleus
sampling (``sample_seed``) makes texts vary, from an explicit seed: what the app, ``recommend --explain`` and the
handler show (``DEFAULT_TEXT_SAMPLE_SEED``, the demo report's), and an evaluation option (``text_sample_seed``).

Hub custom code: this file imports only torch and the standard library.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

# The reference script's settings (exp.py): 7 beams (its 21 beams in 3 groups at diversity 0 are the same
# search), 10 to 50 tokens, no repetition blocking.
PAPER_TEXT_GENERATION = dict(num_beams=7, min_length=10, max_length=50, do_sample=False)
# The seed of the texts the app, `recommend --explain` and the handler show: the demo report's (`text_sample_seed`),
# so that they show what the report measured. Greedy decoding gives a briefly trained student one sentence for
# every user.
DEFAULT_TEXT_SAMPLE_SEED = 42


@dataclass(frozen=True)
class TextGenerationSettings:
    """This project's decoding of explanations and rationales: greedy (or beam search) without loops, or
    seeded nucleus sampling when ``sample_seed`` is set."""

    max_new_tokens: int = field(default=48, metadata={"help": "Longest generated text, in tokens."})
    min_new_tokens: int = field(
        default=4, metadata={"help": "Shortest generated text, in tokens (no empty or one-word answers)."}
    )
    no_repeat_ngram_size: int = field(
        default=3,
        metadata={"help": "No n-gram of this many tokens appears twice (0: no blocking); 3 also rules out a "
                  "token repeated 4 times in a row."},
    )
    repetition_penalty: float = field(
        default=1.0, metadata={"help": "Divides the scores of tokens already generated (1.0: none)."}
    )
    num_beams: int = field(default=1, metadata={"help": "Beams of the search (1: greedy)."})
    sample_seed: int | None = field(
        default=None,
        metadata={"help": "Sample (nucleus, top_p and temperature) from this seed instead of searching "
                  "(None: greedy or beam search); the same prompts in the same batches give the same texts."},
    )
    top_p: float = field(default=0.9, metadata={"help": "Sampling: the smallest set of tokens of this probability."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling: divides the logits (below 1: sharper)."})

    def __post_init__(self):
        if not 0 <= self.min_new_tokens <= self.max_new_tokens or self.max_new_tokens < 1:
            raise ValueError(f"need 0 <= min_new_tokens <= max_new_tokens and max_new_tokens >= 1, got "
                             f"{self.min_new_tokens} and {self.max_new_tokens}")
        if self.no_repeat_ngram_size < 0 or self.num_beams < 1 or self.repetition_penalty <= 0:
            raise ValueError(f"need no_repeat_ngram_size >= 0, num_beams >= 1 and repetition_penalty > 0, got "
                             f"{self.no_repeat_ngram_size}, {self.num_beams} and {self.repetition_penalty}")
        if not 0 < self.top_p <= 1 or self.temperature <= 0:
            raise ValueError(f"need 0 < top_p <= 1 and temperature > 0, got {self.top_p} and {self.temperature}")

    @classmethod
    def up_to(cls, max_new_tokens: int, **options) -> "TextGenerationSettings":
        """The default settings (or ``options``) with another longest text (the shortest lowered to it when above)."""
        return cls(max_new_tokens=max_new_tokens, min_new_tokens=min(cls.min_new_tokens, max_new_tokens), **options)

    def generate_kwargs(self) -> dict:
        """The arguments of ``model.generate`` for these settings."""
        return dict(
            max_new_tokens=self.max_new_tokens, min_new_tokens=self.min_new_tokens, num_beams=self.num_beams,
            no_repeat_ngram_size=self.no_repeat_ngram_size, repetition_penalty=self.repetition_penalty,
            do_sample=self.sample_seed is not None,
            **(dict(top_p=self.top_p, temperature=self.temperature) if self.sample_seed is not None else {}),
        )

    @contextmanager
    def seeded(self, device: torch.device | str = "cpu") -> Iterator[None]:
        """Inside, sampling draws from ``sample_seed`` on a forked random state (the caller's random numbers are
        left as they were); wrap a whole loop of ``generate`` calls so that batches draw different numbers."""
        if self.sample_seed is None:
            yield
            return
        with torch.random.fork_rng(devices=[device] if torch.device(device).type == "cuda" else []):
            torch.manual_seed(self.sample_seed)
            yield

    def describe(self) -> str:
        """The settings in words, for reports."""
        search = "greedy generation" if self.num_beams == 1 else f"beam search with {self.num_beams} beams"
        if self.sample_seed is not None:
            search = f"nucleus sampling (top-p {self.top_p:g}, temperature {self.temperature:g}, seed {self.sample_seed})"
        penalty = f", repetition penalty {self.repetition_penalty:g}" if self.repetition_penalty != 1.0 else ""
        blocking = f", no {self.no_repeat_ngram_size}-gram repeated" if self.no_repeat_ngram_size else ""
        return f"{search.capitalize()} of {self.min_new_tokens} to {self.max_new_tokens} tokens{blocking}{penalty}"


__all__ = ["DEFAULT_TEXT_SAMPLE_SEED", "PAPER_TEXT_GENERATION", "TextGenerationSettings"]
