"""Configuration of SASRec (Kang & McAuley, ICDM 2018), the sequential recommender the project trains as a
baseline, as the student's item start and as its teacher."""

from __future__ import annotations

from transformers import PretrainedConfig

# The fields that define the architecture: what a cached model's fingerprint and a results file record.
ARCHITECTURE_FIELDS = ("num_items", "max_history_length", "hidden_size", "num_blocks", "num_heads", "dropout",
                       "init_seed")


class SASRecConfig(PretrainedConfig):
    r"""Architecture of [`SASRecModel`]. Items are contiguous indices ``1..num_items``; 0 pads.

    Args:
        num_items (`int`): catalog size.
        max_history_length (`int`, defaults to 50): the longest history the model reads (its most recent items).
        hidden_size (`int`, defaults to 64): width of the item and position embeddings and of the blocks.
        num_blocks (`int`, defaults to 2): causal self-attention blocks.
        num_heads (`int`, defaults to 1): attention heads per block.
        dropout (`float`, defaults to 0.5): dropout on embeddings, attention and feed-forward.
        init_seed (`int`, defaults to 0): seed of the weight initialisation.
    """

    model_type = "sasrec"

    def __init__(self, num_items: int = 1, max_history_length: int = 50, hidden_size: int = 64, num_blocks: int = 2,
                 num_heads: int = 1, dropout: float = 0.5, init_seed: int = 0, **kwargs):
        if num_items < 1:
            raise ValueError(f"num_items must be positive, got {num_items}")
        if max_history_length < 1:
            raise ValueError(f"max_history_length must be positive, got {max_history_length}")
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.num_items, self.max_history_length, self.hidden_size = num_items, max_history_length, hidden_size
        self.num_blocks, self.num_heads, self.dropout, self.init_seed = num_blocks, num_heads, dropout, init_seed
        super().__init__(**kwargs)

    def architecture(self) -> dict:
        """The architecture's fields alone (no transformers bookkeeping): ``{field: value}``."""
        return {name: getattr(self, name) for name in ARCHITECTURE_FIELDS}
