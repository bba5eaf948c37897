"""RDRecConfig and the forward pass: whole-word embeddings, per-task soft prompts, loss, input errors."""

from __future__ import annotations

import pytest
import torch
from helpers import prompt_batch, seeded_model

from rdrec_hf import Task
from rdrec_hf.models import SIZE_PRESETS, RDRecConfig

PROMPTS = ["user_12 bought item_5 item_1234 next", "user_3 item_9"]


@pytest.fixture(scope="module")
def model():
    return seeded_model()


@pytest.fixture(scope="module")
def batch(t5_tokenizer):
    return prompt_batch(t5_tokenizer, PROMPTS, [Task.SEQUENTIAL, Task.RATIONALE])


def test_presets_and_defaults(tmp_path):
    assert set(SIZE_PRESETS) == {"tiny", "mini", "small", "t5-small"}
    tiny = RDRecConfig.from_preset("tiny", num_tasks=5)
    assert (tiny.d_model, tiny.d_ff, tiny.num_heads, tiny.d_kv, tiny.num_layers, tiny.num_decoder_layers) == (
        32, 64, 2, 16, 2, 2)  # fmt: skip
    assert (tiny.vocab_size, tiny.pad_token_id, tiny.eos_token_id, tiny.decoder_start_token_id) == (32100, 0, 1, 0)
    assert (tiny.num_tasks, tiny.prompts_per_task, tiny.max_whole_words) == (5, 3, 512)
    assert RDRecConfig().num_tasks == len(Task)
    big = RDRecConfig.from_preset("t5-small")
    assert (big.d_model, big.d_ff, big.num_heads, big.d_kv, big.num_layers) == (512, 2048, 8, 64, 6)
    tiny.save_pretrained(tmp_path)
    reloaded = RDRecConfig.from_pretrained(tmp_path)
    assert reloaded.to_dict() == tiny.to_dict() and reloaded.model_type == "rdrec"


@pytest.mark.parametrize("field,value", [("num_tasks", 0), ("prompts_per_task", -1), ("max_whole_words", 0)])
def test_config_rejects_bad_sizes(field, value):
    with pytest.raises(ValueError, match=field):
        RDRecConfig(**{field: value})


def test_unknown_preset():
    with pytest.raises(ValueError, match="t5-small"):
        RDRecConfig.from_preset("huge")


def test_encoder_inputs_add_whole_words_and_prepend_task_prompts(model, batch):
    embeds, mask = model.embed_encoder_inputs(**batch)
    prompts = model.config.prompts_per_task
    batch_size, length = batch["input_ids"].shape
    assert embeds.shape == (batch_size, prompts + length, model.config.d_model)
    assert mask.shape == (batch_size, prompts + length)
    assert mask[:, :prompts].eq(1).all() and mask[:, prompts:].equal(batch["attention_mask"])
    expected_tokens = model.shared(batch["input_ids"]) + model.whole_word_embeddings(batch["whole_word_ids"])
    torch.testing.assert_close(embeds[:, prompts:], expected_tokens)
    for row, task in enumerate(batch["task_id"].tolist()):
        rows = torch.arange(task * prompts, (task + 1) * prompts)
        torch.testing.assert_close(embeds[row, :prompts], model.task_prompt_embeddings.weight[rows])
    # Tokens outside mentions get no whole-word vector.
    outside = batch["whole_word_ids"] == 0
    torch.testing.assert_close(embeds[:, prompts:][outside], model.shared(batch["input_ids"])[outside])


def test_mixed_tasks_in_one_batch_match_single_examples(model, batch):
    labels = torch.tensor([[586, 3710, 1], [209, 1, -100]])
    together = model(**batch, labels=labels).logits
    for row in range(2):
        alone = model(**{key: value[row : row + 1] for key, value in batch.items()}, labels=labels[row : row + 1])
        valid = labels[row] != -100
        torch.testing.assert_close(together[row, valid], alone.logits[0, valid], atol=1e-5, rtol=1e-5)


def test_task_and_whole_word_ids_change_the_output(model, batch):
    labels = torch.tensor([[586, 3710, 1], [209, 1, -100]])
    reference = model(**batch, labels=labels).logits
    other_task = dict(batch, task_id=torch.tensor([Task.TOPN, Task.TOPN]))
    no_mentions = dict(batch, whole_word_ids=torch.zeros_like(batch["whole_word_ids"]))
    assert not torch.allclose(model(**other_task, labels=labels).logits, reference)
    assert not torch.allclose(model(**no_mentions, labels=labels).logits, reference)


def test_loss_trains_new_embeddings(batch):
    model = seeded_model(seed=1).train()
    labels = torch.tensor([[586, 3710, 1], [209, 1, -100]])
    output = model(**batch, labels=labels)
    assert output.loss.isfinite()
    output.loss.backward()
    prompt_grad = model.task_prompt_embeddings.weight.grad.view(model.config.num_tasks, -1).abs().sum(1)
    used = {int(task) for task in batch["task_id"]}
    assert all((prompt_grad[task] > 0) == (task in used) for task in range(model.config.num_tasks))
    word_grad = model.whole_word_embeddings.weight.grad.abs().sum(1)
    assert word_grad[0] == 0 and (word_grad[1:4] > 0).all() and word_grad[4:].eq(0).all()


def test_precomputed_encoder_outputs_accept_the_prompt_free_mask(model, batch):
    decoder_input_ids = torch.tensor([[0, 586], [0, 209]])
    full = model(**batch, decoder_input_ids=decoder_input_ids)
    embeds, extended_mask = model.embed_encoder_inputs(**batch)
    encoder_outputs = model.encoder(inputs_embeds=embeds, attention_mask=extended_mask)
    reused = model(
        encoder_outputs=encoder_outputs, attention_mask=batch["attention_mask"], decoder_input_ids=decoder_input_ids
    )
    torch.testing.assert_close(reused.logits, full.logits)
    with pytest.raises(ValueError, match="encoder_outputs"):
        model(encoder_outputs=encoder_outputs, attention_mask=batch["attention_mask"][:, 1:],
              decoder_input_ids=decoder_input_ids)  # fmt: skip


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda b: dict(b, whole_word_ids=b["whole_word_ids"] + 600), "max_whole_words"),
        (lambda b: dict(b, whole_word_ids=b["whole_word_ids"] - 1), r"\[0, 512\)"),
        (lambda b: dict(b, whole_word_ids=b["whole_word_ids"][:, 1:]), "match token for token"),
        (lambda b: dict(b, task_id=torch.tensor([0, 4])), r"unknown task id.*got \[4\]"),
        (lambda b: dict(b, task_id=torch.tensor([-1, 0])), r"unknown task id.*got \[-1\]"),
        (lambda b: dict(b, task_id=torch.tensor([0, 1, 2])), r"shape \[2\]"),
        (lambda b: dict(b, task_id=None), "task_id is required"),
        (lambda b: dict(b, attention_mask=b["attention_mask"][:, 1:]), "attention_mask has shape"),
    ],
)
def test_bad_inputs_raise_clear_errors(model, batch, change, message):
    with pytest.raises(ValueError, match=message):
        model(**change(batch), decoder_input_ids=torch.zeros(2, 1, dtype=torch.long))


def test_without_soft_prompts_task_id_is_optional(batch):
    model = seeded_model(prompts_per_task=0)
    embeds, mask = model.embed_encoder_inputs(**dict(batch, task_id=None))
    assert embeds.shape[1] == batch["input_ids"].shape[1] and mask.equal(batch["attention_mask"])


def test_without_whole_word_embeddings_the_mention_numbers_are_ignored(batch, tmp_path):
    """`use_whole_word_embeddings=False` (one-token ids): no table, the mention numbers change nothing, and the
    choice survives save and load."""
    model = seeded_model(use_whole_word_embeddings=False)
    assert model.whole_word_embeddings is None
    labels = torch.tensor([[586, 3710, 1], [209, 1, -100]])
    renumbered = dict(batch, whole_word_ids=torch.zeros_like(batch["whole_word_ids"]))
    torch.testing.assert_close(model(**renumbered, labels=labels).logits, model(**batch, labels=labels).logits)
    model.save_pretrained(tmp_path)
    assert type(model).from_pretrained(tmp_path).whole_word_embeddings is None
