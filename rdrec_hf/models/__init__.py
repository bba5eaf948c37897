"""The RDRec student model. Importing this package registers it with the transformers Auto classes."""

from transformers import AutoConfig, AutoModelForSeq2SeqLM

from .configuration_rdrec import SIZE_PRESETS, RDRecConfig
from .item_index import ITEM_INDEX_FILE, ItemIndex, ItemIndexing, ItemTrieLogitsProcessor
from .modeling_rdrec import ItemGenerationOutput, RDRecForConditionalGeneration
from .peft_utils import rdrec_lora_config

AutoConfig.register(RDRecConfig.model_type, RDRecConfig, exist_ok=True)
AutoModelForSeq2SeqLM.register(RDRecConfig, RDRecForConditionalGeneration, exist_ok=True)
# Saved checkpoints carry `auto_map` and copies of configuration_rdrec.py, modeling_rdrec.py and item_index.py,
# so `trust_remote_code=True` loads them where rdrec_hf is not installed.
RDRecConfig.register_for_auto_class()
RDRecForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")

__all__ = [
    "ITEM_INDEX_FILE",
    "SIZE_PRESETS",
    "ItemGenerationOutput",
    "ItemIndex",
    "ItemIndexing",
    "ItemTrieLogitsProcessor",
    "RDRecConfig",
    "RDRecForConditionalGeneration",
    "rdrec_lora_config",
]
