"""Configuration of the RDRec student: a T5 with whole-word embeddings and per-task soft prompts.

Hub custom code: this file imports only ``transformers`` and its sibling ``tasks.py`` (it is copied beside saved
checkpoints).
"""

from __future__ import annotations

from transformers import T5Config

from .tasks import Task

# Architecture presets. "t5-small" has the dimensions of the checkpoint the paper starts from.
SIZE_PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(d_model=32, d_ff=64, num_heads=2, d_kv=16, num_layers=2, num_decoder_layers=2),
    "mini": dict(d_model=128, d_ff=512, num_heads=4, d_kv=32, num_layers=2, num_decoder_layers=2),
    "small": dict(d_model=256, d_ff=1024, num_heads=4, d_kv=64, num_layers=4, num_decoder_layers=4),
    "t5-small": dict(d_model=512, d_ff=2048, num_heads=8, d_kv=64, num_layers=6, num_decoder_layers=6),
}

T5_VOCAB_SIZE = 32100  # the T5 SentencePiece vocabulary (32,000 pieces + 100 sentinels)


class RDRecConfig(T5Config):
    r"""Configuration of [`RDRecForConditionalGeneration`]: every `T5Config` field plus

    Args:
        num_tasks (`int`, defaults to the number of `Task`s, 4):
            Number of tasks with their own soft prompts; the model's `task_id` lies in `[0, num_tasks)`
            (`rdrec_hf.Task` values: sequential, top-N, explanation, rationale).
        prompts_per_task (`int`, defaults to 3):
            Soft-prompt vectors prepended to the encoder input of each example (RDRec uses 3). 0 disables them.
        max_whole_words (`int`, defaults to 512):
            Rows of the whole-word embedding table; `whole_word_ids` lie in `[0, max_whole_words)`,
            0 meaning "not part of a user/item mention" (a zero vector).
        use_whole_word_embeddings (`bool`, defaults to True):
            Add whole-word embedding k to the tokens of the k-th mention (POD). They group the tokens of a
            multi-token id; with one token per item (independent ids) they only number the mentions from the
            prompt's start, which ties an item to its position in the history: a student trained on short
            training histories then fails on the longer test history (BENCHMARKS.md, section 7).
        trained_tasks (`list[str]`, *optional*):
            The tasks the checkpoint was trained on (`Task` names, lower case), written by the trainer; text is
            generated only for those (an untrained decoder's tokens are not an explanation). None: unknown
            (checkpoints from before this field), every task allowed.

    Defaults follow the T5 vocabulary: `vocab_size=32100`, pad 0, EOS 1, decoder start 0.
    Use [`RDRecConfig.from_preset`] for the sizes of `SIZE_PRESETS`.
    """

    model_type = "rdrec"

    def __init__(
        self,
        num_tasks: int = len(Task),
        prompts_per_task: int = 3,
        max_whole_words: int = 512,
        use_whole_word_embeddings: bool = True,
        trained_tasks: list[str] | None = None,
        vocab_size: int = T5_VOCAB_SIZE,
        decoder_start_token_id: int = 0,
        **kwargs,
    ):
        for name, value, minimum in (
            ("num_tasks", num_tasks, 1),
            ("prompts_per_task", prompts_per_task, 0),
            ("max_whole_words", max_whole_words, 1),
        ):
            if not isinstance(value, int) or value < minimum:
                raise ValueError(f"RDRecConfig.{name} must be an integer >= {minimum}, got {value!r}")
        self.num_tasks = num_tasks
        self.prompts_per_task = prompts_per_task
        self.max_whole_words = max_whole_words
        self.use_whole_word_embeddings = bool(use_whole_word_embeddings)
        self.trained_tasks = None if trained_tasks is None else [Task.parse(task).name.lower() for task in trained_tasks]
        super().__init__(vocab_size=vocab_size, decoder_start_token_id=decoder_start_token_id, **kwargs)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "RDRecConfig":
        """Build a config from a size preset (`"tiny"`, `"mini"`, `"small"`, `"t5-small"`); `overrides` win."""
        if name not in SIZE_PRESETS:
            raise ValueError(f"unknown RDRec size preset {name!r}; choose from {sorted(SIZE_PRESETS)}")
        return cls(**{**SIZE_PRESETS[name], **overrides})


__all__ = ["RDRecConfig", "SIZE_PRESETS", "T5_VOCAB_SIZE"]
