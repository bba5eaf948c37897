"""How the free-text tasks (explanations, rationales) are decoded: one home for evaluation, the app,
``rdrec-hf recommend --explain`` and the Inference Endpoints handler (through ``recommending.generate_texts``).

A small student decoded greedily loops ("I I I I ...", "it's made with love and it's made with love"):
`TextGenerationSettings` blocks repeated 3-grams (which also rules out a token four times in a row) and keeps
a length range. The paper's protocol keeps the reference scripts' own settings (`PAPER_TEXT_GENERATION`).

Hub custom code: this file imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The reference script's settings (exp.py): 7 beams (its 21 beams in 3 groups at diversity 0 are the same
# search), 10 to 50 tokens, no repetition blocking.
PAPER_TEXT_GENERATION = dict(num_beams=7, min_length=10, max_length=50, do_sample=False)


@dataclass(frozen=True)
class TextGenerationSettings:
    """This project's decoding of explanations and rationales: deterministic (greedy or beam), without loops."""

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

    def __post_init__(self):
        if not 0 <= self.min_new_tokens <= self.max_new_tokens or self.max_new_tokens < 1:
            raise ValueError(f"need 0 <= min_new_tokens <= max_new_tokens and max_new_tokens >= 1, got "
                             f"{self.min_new_tokens} and {self.max_new_tokens}")
        if self.no_repeat_ngram_size < 0 or self.num_beams < 1 or self.repetition_penalty <= 0:
            raise ValueError(f"need no_repeat_ngram_size >= 0, num_beams >= 1 and repetition_penalty > 0, got "
                             f"{self.no_repeat_ngram_size}, {self.num_beams} and {self.repetition_penalty}")

    @classmethod
    def up_to(cls, max_new_tokens: int) -> "TextGenerationSettings":
        """The default settings with another longest text (the shortest lowered to it when above)."""
        return cls(max_new_tokens=max_new_tokens, min_new_tokens=min(cls.min_new_tokens, max_new_tokens))

    def generate_kwargs(self) -> dict:
        """The arguments of ``model.generate`` for these settings."""
        return dict(
            max_new_tokens=self.max_new_tokens, min_new_tokens=self.min_new_tokens, num_beams=self.num_beams,
            no_repeat_ngram_size=self.no_repeat_ngram_size, repetition_penalty=self.repetition_penalty,
            do_sample=False,
        )

    def describe(self) -> str:
        """The settings in words, for reports."""
        search = "greedy generation" if self.num_beams == 1 else f"beam search with {self.num_beams} beams"
        penalty = f", repetition penalty {self.repetition_penalty:g}" if self.repetition_penalty != 1.0 else ""
        blocking = f", no {self.no_repeat_ngram_size}-gram repeated" if self.no_repeat_ngram_size else ""
        return f"{search.capitalize()} of {self.min_new_tokens} to {self.max_new_tokens} tokens{blocking}{penalty}"


__all__ = ["PAPER_TEXT_GENERATION", "TextGenerationSettings"]
