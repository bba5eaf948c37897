"""Saving and loading: safetensors round trips with the catalog, Auto classes, trust_remote_code without
rdrec_hf installed, plain T5 checkpoints, and 8-bit / 4-bit loading on CPU."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import prompt_batch, run_as_remote_code, seeded_model
from transformers import AutoConfig, AutoModelForSeq2SeqLM, T5Config, T5ForConditionalGeneration

from rdrec_hf import Task
from rdrec_hf.models import ITEM_INDEX_FILE, RDRecConfig, RDRecForConditionalGeneration, ItemIndex, ItemIndexing

CATALOG = [str(item) for item in range(1, 201)]


@pytest.fixture(scope="module")
def batch(t5_tokenizer):
    return prompt_batch(t5_tokenizer, ["user_1 item_5 item_17", "user_2 item_3"], [Task.SEQUENTIAL, Task.TOPN])


def save_with_catalog(directory, tokenizer, **overrides):
    """A tiny student with a catalog (random indexing, asin-like original ids), saved to `directory`."""
    model = seeded_model(seed=11, **overrides)
    index = ItemIndex.from_catalog(
        CATALOG, tokenizer, original_ids=[f"ASIN{item}" for item in CATALOG], scheme=ItemIndexing.RANDOM
    )
    model.set_item_index(index)
    model.save_pretrained(directory)
    return model, directory


@pytest.fixture(scope="module")
def saved(tmp_path_factory, t5_tokenizer):
    return save_with_catalog(tmp_path_factory.mktemp("rdrec"), t5_tokenizer)


def logits_of(model, batch):
    return model(**batch, decoder_input_ids=torch.tensor([[0, 209], [0, 586]])).logits


def test_round_trip_is_safetensors_with_identical_outputs_and_catalog(saved, batch):
    model, directory = saved
    files = sorted(path.name for path in directory.iterdir())
    assert "model.safetensors" in files and ITEM_INDEX_FILE in files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    reloaded = RDRecForConditionalGeneration.from_pretrained(directory)
    torch.testing.assert_close(logits_of(reloaded, batch), logits_of(model, batch), rtol=0, atol=0)
    assert reloaded.item_index.item_ids == CATALOG and reloaded.item_index.indexing is ItemIndexing.RANDOM
    assert reloaded.item_index.original_id("17") == "ASIN17"
    generated = reloaded.generate(**batch, item_index=reloaded.item_index, num_beams=5, num_return_sequences=5)
    expected = model.generate(**batch, item_index=model.item_index, num_beams=5, num_return_sequences=5)
    assert generated.item_ids == expected.item_ids


def test_checkpoint_without_catalog_loads_without_one(tmp_path):
    seeded_model().save_pretrained(tmp_path)
    assert not (tmp_path / ITEM_INDEX_FILE).exists()
    assert RDRecForConditionalGeneration.from_pretrained(tmp_path).item_index is None


def test_auto_classes_after_import(saved, batch):
    model, directory = saved
    assert isinstance(AutoConfig.from_pretrained(directory), RDRecConfig)
    auto = AutoModelForSeq2SeqLM.from_pretrained(directory)
    assert type(auto) is RDRecForConditionalGeneration and auto.item_index is not None
    torch.testing.assert_close(logits_of(auto, batch), logits_of(model, batch))
    config = json.loads((directory / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_rdrec.RDRecConfig",
        "AutoModelForSeq2SeqLM": "modeling_rdrec.RDRecForConditionalGeneration",
    }
    assert {"configuration_rdrec.py", "modeling_rdrec.py", "item_decoding.py", "item_index.py", "item_ids.py"} <= {
        p.name for p in directory.iterdir()
    }


REMOTE_CODE_SCRIPT = """
logits = model(**batch, decoder_input_ids=torch.tensor([[0, 209], [0, 586]])).logits
out = model.generate(**batch, item_index=model.item_index, num_beams=5, num_return_sequences=5)
print(json.dumps({"class": type(model).__module__, "logits": logits.flatten()[:50].tolist(),
                  "items": out.item_ids, "asin": model.item_index.original_id("17")}))
"""


def test_trust_remote_code_loads_where_rdrec_hf_is_not_installed(saved, batch, tmp_path):
    model, directory = saved
    report = run_as_remote_code(REMOTE_CODE_SCRIPT, directory, batch, tmp_path)
    assert report["class"].startswith("transformers_modules.")
    assert report["asin"] == "ASIN17"
    torch.testing.assert_close(torch.tensor(report["logits"]), logits_of(model, batch).flatten()[:50])
    expected = model.generate(**batch, item_index=model.item_index, num_beams=5, num_return_sequences=5)
    assert report["items"] == expected.item_ids


def test_plain_t5_checkpoint_initialises_only_the_new_embeddings(tmp_path, batch):
    with torch.random.fork_rng():
        torch.manual_seed(5)
        t5 = T5ForConditionalGeneration(T5Config(vocab_size=32100, d_model=32, d_ff=64, num_heads=2, d_kv=16,
                                                 num_layers=2, decoder_start_token_id=0))  # fmt: skip
    t5.save_pretrained(tmp_path)
    student, info = RDRecForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["task_prompt_embeddings.weight", "whole_word_embeddings.weight"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    student_state = student.state_dict()
    for name, value in t5.state_dict().items():
        assert torch.equal(student_state[name], value), name
    words, prompts = student.whole_word_embeddings.weight, student.task_prompt_embeddings.weight
    assert words[0].eq(0).all() and 0.5 < words[1:].std() < 1.5 and 0.5 < prompts.std() < 1.5
    assert student.config.num_tasks == len(Task) and student.config.prompts_per_task == 3
    assert logits_of(student, batch).isfinite().all()


@pytest.fixture(scope="module")
def saved_width_64(tmp_path_factory, t5_tokenizer):
    # 4-bit blocks hold 64 weights, so every linear layer needs a multiple of 64 input features.
    return save_with_catalog(tmp_path_factory.mktemp("rdrec64"), t5_tokenizer, d_model=64, d_kv=32, d_ff=128)


@pytest.mark.parametrize("bits", [8, 4])
def test_bitsandbytes_loading_on_cpu(saved_width_64, batch, bits):
    from transformers import BitsAndBytesConfig

    model, directory = saved_width_64
    quantization = (
        BitsAndBytesConfig(load_in_8bit=True) if bits == 8
        else BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    )  # fmt: skip
    quantized = RDRecForConditionalGeneration.from_pretrained(
        directory, quantization_config=quantization, device_map="cpu"
    )
    linear_classes = {type(module).__name__ for module in quantized.modules()}
    assert ("Linear8bitLt" if bits == 8 else "Linear4bit") in linear_classes
    assert quantized.item_index is not None
    reference = logits_of(model, batch)
    logits = logits_of(quantized, batch)
    assert logits.isfinite().all()
    # Quantisation perturbs but keeps the distribution close to the full-precision one.
    assert torch.nn.functional.cosine_similarity(logits.flatten(), reference.flatten(), dim=0) > 0.9
    output = quantized.generate(**batch, item_index=quantized.item_index, num_beams=5, num_return_sequences=5)
    assert all(len(items) == 5 and set(items) <= set(CATALOG) for items in output.item_ids)


# Hub metadata: what the Hub reads from the cards' YAML, parsed back as the Hub parses it.


def test_model_card_metadata_validates(saved, tmp_path):
    from huggingface_hub import ModelCard
    from transformers.pipelines import SUPPORTED_TASKS

    from rdrec_hf.training import RDRecTrainingArguments, render_model_card
    from rdrec_hf.training.model_card import model_card_data

    model, _ = saved
    card = ModelCard(render_model_card(model, RDRecTrainingArguments(output_dir=str(tmp_path)), tags=["rdrec"]))
    data = card.data.to_dict()
    assert data["pipeline_tag"] in SUPPORTED_TASKS  # a task of the installed transformers 5
    assert data["license"] == "other" and data["license_name"] and data["license_link"].startswith("https://")
    assert f"[`{data['license_name']}`]({data['license_link']})" in card.text and "research use" in card.text
    assert "datasets" not in data  # no training data recorded with this model
    # A recorded source: a Hub id as given, a local folder by its name.
    assert model_card_data("someone/beauty", None).datasets == ["someone/beauty"]
    assert model_card_data(str(tmp_path), None).datasets == [tmp_path.name]


def test_rationale_dataset_card_metadata_validates():
    from huggingface_hub import DatasetCard

    from rdrec_hf.teacher.card import rationale_card_data

    data = DatasetCard(f"---\n{rationale_card_data(['reviews', 'users']).to_yaml()}\n---\n").data.to_dict()
    assert data["license"] == "other" and data["license_name"] and data["license_link"].startswith("https://")
    assert data["task_categories"] == ["text-generation"] and data["language"] == ["en"]
    assert [config["config_name"] for config in data["configs"]] == ["reviews", "users"]
    assert "configs" not in rationale_card_data([]).to_dict()  # a lone table: one file under data/
