"""The RDRec student model. Importing this package registers it with the transformers Auto classes.

Typical use (shapes: B examples, L prompt tokens)::

    config = RDRecConfig.from_preset("small")                      # or from_pretrained("t5-small") below
    model = RDRecForConditionalGeneration(config)                   # plain T5 weights load too
    model.set_item_index(ItemIndex.from_catalog(item_ids, tokenizer, original_ids=asins, scheme="random"))
    loss = model(input_ids, attention_mask, whole_word_ids, task_id, labels=labels).loss
    top = model.generate(input_ids=..., attention_mask=..., whole_word_ids=..., task_id=...,
                         item_index=model.item_index, exclude_items=histories, num_beams=20, num_return_sequences=10)
    top.item_ids, top.scores                                        # list[list[str]], list[list[float]], best first
    scores = model.score_candidates(input_ids, attention_mask, whole_word_ids, task_id, candidates)  # [B, C]
    model.save_pretrained(folder)                                   # weights + config + code + item_index.json
"""

from transformers import AutoConfig, AutoModelForSeq2SeqLM

from .configuration_rdrec import SIZE_PRESETS, RDRecConfig
from .item_ids import MENTION_PATTERN, ItemIdScheme, ItemIndexing
from .item_decoding import ItemDecoding, ItemGenerationOutput
from .item_index import ITEM_INDEX_FILE, ItemIndex, ItemTrieLogitsProcessor
from .modeling_rdrec import RDRecForConditionalGeneration

AutoConfig.register(RDRecConfig.model_type, RDRecConfig, exist_ok=True)
AutoModelForSeq2SeqLM.register(RDRecConfig, RDRecForConditionalGeneration, exist_ok=True)
# Saved checkpoints carry `auto_map` and copies of configuration_rdrec.py, modeling_rdrec.py and the files it
# imports (item_decoding.py, item_index.py, item_ids.py, prompting.py, tasks.py), so `trust_remote_code=True` loads them where
# rdrec_hf is not installed.
RDRecConfig.register_for_auto_class()
RDRecForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")

__all__ = [
    "ITEM_INDEX_FILE",
    "MENTION_PATTERN",
    "SIZE_PRESETS",
    "ItemDecoding",
    "ItemGenerationOutput",
    "ItemIdScheme",
    "ItemIndex",
    "ItemIndexing",
    "ItemTrieLogitsProcessor",
    "RDRecConfig",
    "RDRecForConditionalGeneration",
]

