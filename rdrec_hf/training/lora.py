"""LoRA for the student through PEFT: training code (it imports peft), so not in the Hub-copied model folder."""

from __future__ import annotations

from collections.abc import Sequence

from peft import LoraConfig, TaskType

from ..models.modeling_rdrec import RDRecForConditionalGeneration


# The LoRA defaults of the library (also those of `rdrec-hf train --use_peft`).
DEFAULT_LORA_R = 8
DEFAULT_LORA_ALPHA = 16
DEFAULT_LORA_DROPOUT = 0.05
DEFAULT_LORA_TARGET_MODULES = ("q", "v")


def rdrec_lora_config(
    r: int = DEFAULT_LORA_R,
    alpha: int = DEFAULT_LORA_ALPHA,
    dropout: float = DEFAULT_LORA_DROPOUT,
    target_modules: Sequence[str] = DEFAULT_LORA_TARGET_MODULES,
    new_token_ids: Sequence[int] = (),
    **kwargs,
) -> LoraConfig:
    """A `LoraConfig` for [`RDRecForConditionalGeneration`]: LoRA on the T5 attention projections named in
    `target_modules`, with the whole-word and task soft-prompt embeddings fully trained and saved in the
    adapter (`modules_to_save`), since a plain T5 base checkpoint does not contain them.

    `new_token_ids` (e.g. the new item tokens of an `ItemIdScheme`) are the vocabulary rows that train and
    are saved with the adapter, through PEFT's `trainable_token_indices` on the shared embedding (tied to the
    output layer, so it covers both).

    Extra `kwargs` go to `LoraConfig` (e.g. `bias`, `use_rslora`).
    """
    if not target_modules:
        raise ValueError("target_modules is empty: name at least one T5 projection (q, k, v, o, wi, wo)")
    return LoraConfig(
        task_type=TaskType.SEQ_2_SEQ_LM,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        modules_to_save=list(RDRecForConditionalGeneration.rdrec_embedding_modules),
        trainable_token_indices={"shared": list(new_token_ids)} if new_token_ids else None,
        **kwargs,
    )
