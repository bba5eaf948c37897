"""LoRA through PEFT: what trains, what is saved, constrained generation through the wrapper, merging."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel, get_peft_model
from safetensors.torch import load_file
from helpers import fit, prompt_batch, seeded_model

from rdrec_hf import Task
from rdrec_hf.models import ItemIndex, RDRecForConditionalGeneration
from rdrec_hf.training.lora import rdrec_lora_config

CATALOG = [str(item) for item in range(1, 301)]


@pytest.fixture(scope="module")
def batch(t5_tokenizer):
    prompts = ["user_1 item_5 item_17", "user_2 item_3", "user_3 item_250 item_9"]
    batch = prompt_batch(t5_tokenizer, prompts, [Task.SEQUENTIAL, Task.TOPN, Task.EXPLANATION])
    targets = t5_tokenizer(["17", "42", "a fine lipstick"], padding=True, return_tensors="pt")
    return batch, targets.input_ids.masked_fill(targets.attention_mask == 0, -100)


@pytest.fixture(scope="module")
def trained(batch, t5_tokenizer):
    """A LoRA-wrapped tiny student after a few optimiser steps, with the base weights captured before."""
    inputs, labels = batch
    base = seeded_model(seed=21)
    base.set_item_index(ItemIndex.from_catalog(CATALOG, t5_tokenizer))
    before = {name: value.clone() for name, value in base.state_dict().items()}
    model = get_peft_model(base, rdrec_lora_config(r=4, alpha=8, dropout=0.0))
    model.train()
    fit(model, inputs, labels, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2), 4)
    return model.eval(), before


def test_lora_config_defaults():
    config = rdrec_lora_config()
    assert (config.task_type, config.r, config.lora_alpha, config.lora_dropout) == ("SEQ_2_SEQ_LM", 8, 16, 0.05)
    assert set(config.target_modules) == {"q", "v"}
    assert set(config.modules_to_save) == {"whole_word_embeddings", "task_prompt_embeddings"}
    with pytest.raises(ValueError, match="target_modules is empty"):
        rdrec_lora_config(target_modules=())


def test_only_adapters_and_saved_modules_train(trained):
    model, before = trained
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable and all(
        "lora_" in name or "modules_to_save" in name for name in trainable
    ), sorted(trainable)
    assert any("whole_word_embeddings.modules_to_save" in name for name in trainable)
    assert any("task_prompt_embeddings.modules_to_save" in name for name in trainable)
    base = model.get_base_model()
    state = base.state_dict()
    for name, value in before.items():  # original weights of every base module, incl. the wrapped originals
        key = name.replace("whole_word_embeddings.", "whole_word_embeddings.original_module.").replace(
            "task_prompt_embeddings.", "task_prompt_embeddings.original_module.")  # fmt: skip
        key = key.replace(".q.weight", ".q.base_layer.weight").replace(".v.weight", ".v.base_layer.weight")
        assert torch.equal(state[key], value), name
    trained_prompts = state["task_prompt_embeddings.modules_to_save.default.weight"]
    assert not torch.equal(trained_prompts, before["task_prompt_embeddings.weight"])
    assert any(not torch.equal(state[k], torch.zeros_like(state[k])) for k in state if "lora_B" in k)


def test_constrained_generation_through_the_wrapper(trained, batch):
    model, _ = trained
    inputs, _ = batch
    output = model.generate(**inputs, item_index=model.get_base_model().item_index, num_beams=8, num_return_sequences=8,
                            exclude_items=[["1"], ["2"], ["3"]])  # fmt: skip
    for items, banned in zip(output.item_ids, ["1", "2", "3"]):
        assert len(items) == 8 == len(set(items)) and set(items) <= set(CATALOG) and banned not in items


def test_adapter_round_trip_and_merge(trained, batch, tmp_path):
    model, _ = trained
    inputs, labels = batch
    expected = model(**inputs, labels=labels).logits
    model.save_pretrained(tmp_path)
    saved_keys = load_file(tmp_path / "adapter_model.safetensors").keys()
    assert any("whole_word_embeddings" in key for key in saved_keys)
    assert any("task_prompt_embeddings" in key for key in saved_keys)
    reloaded = PeftModel.from_pretrained(seeded_model(seed=21), tmp_path).eval()
    torch.testing.assert_close(reloaded(**inputs, labels=labels).logits, expected, atol=1e-5, rtol=1e-5)
    merged = reloaded.merge_and_unload()
    assert type(merged) is RDRecForConditionalGeneration
    assert not any("lora_" in name or "modules_to_save" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(merged(**inputs, labels=labels).logits, expected, atol=1e-4, rtol=1e-4)
