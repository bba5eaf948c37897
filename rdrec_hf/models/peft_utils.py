"""LoRA for the student through PEFT (not Hub custom code: it imports peft)."""

from __future__ import annotations

from collections.abc import Sequence

from peft import LoraConfig, TaskType

from .modeling_rdrec import RDRecForConditionalGeneration


def rdrec_lora_config(
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    target_modules: Sequence[str] = ("q", "v"),
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
