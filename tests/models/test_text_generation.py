"""The decoding settings of explanations and rationales (`TextGenerationSettings`) on a real tiny student."""

from __future__ import annotations

import pytest
import torch

from rdrec_hf.evaluation.text_metrics import loops, ngram_counts
from rdrec_hf.checkpoints import load_trained_student
from rdrec_hf.models.recommending import explanations_for, rationales
from rdrec_hf.models.prompting import prompt_for
from rdrec_hf.models.tasks import Task
from rdrec_hf.models.text_generation import TextGenerationSettings


@pytest.mark.parametrize(
    "options, message",
    [({"max_new_tokens": 0}, "max_new_tokens >= 1"), ({"min_new_tokens": 50}, "min_new_tokens <= max_new_tokens"),
     ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size >= 0"), ({"num_beams": 0}, "num_beams >= 1"),
     ({"repetition_penalty": 0.0}, "repetition_penalty > 0")],
)  # fmt: skip
def test_settings_refuse_bad_values(options, message):
    with pytest.raises(ValueError, match=message):
        TextGenerationSettings(**options)


def test_up_to_lowers_the_shortest_length_with_the_longest():
    assert TextGenerationSettings.up_to(2) == TextGenerationSettings(max_new_tokens=2, min_new_tokens=2)
    assert TextGenerationSettings.up_to(64).min_new_tokens == TextGenerationSettings.min_new_tokens
    assert "no 3-gram repeated" in TextGenerationSettings().describe()


def test_a_tiny_student_loops_greedily_but_not_with_the_settings(trained_student):
    model, tokenizer = load_trained_student(str(trained_student[0]))
    items = model.item_index.item_ids[:6]
    prompts = [prompt_for(Task.EXPLANATION, user_id="12", item_id=item, scheme=model.item_index.scheme) for item in items]
    inputs = model.prepare_prompts(tokenizer, prompts, Task.EXPLANATION)
    plain = tokenizer.batch_decode(model.generate(**inputs, max_new_tokens=48, do_sample=False, num_beams=1),
                                   skip_special_tokens=True)  # fmt: skip
    assert any(loops(text) for text in plain), plain  # what the settings are for: a 6-step student repeats itself
    ids = model.generate(**inputs, **TextGenerationSettings().generate_kwargs())
    assert all(max(ngram_counts(row.tolist(), 3).values()) == 1 for row in ids)  # no token 3-gram twice
    user_text, item_texts = rationales(model, tokenizer, "12", items)
    for text in [*explanations_for(model, tokenizer, "12", items), user_text, *item_texts]:
        assert text.strip() and not loops(text)


def test_sampling_is_seeded_varies_across_batches_and_leaves_the_callers_random_state(trained_student):
    model, tokenizer = load_trained_student(str(trained_student[0]))
    prompts = [prompt_for(Task.EXPLANATION, user_id="12", item_id=item, scheme=model.item_index.scheme)
               for item in model.item_index.item_ids[:4]]  # fmt: skip
    inputs = model.prepare_prompts(tokenizer, prompts, Task.EXPLANATION)
    settings = TextGenerationSettings(max_new_tokens=12, sample_seed=7)
    assert settings.generate_kwargs()["do_sample"] and "seed 7" in settings.describe()

    def two_batches():
        with settings.seeded(model.device):
            return [model.generate(**inputs, **settings.generate_kwargs()).tolist() for _ in range(2)]

    torch.manual_seed(123)
    first = two_batches()
    after = torch.rand(1)
    torch.manual_seed(123)
    assert two_batches() == first and torch.equal(torch.rand(1), after)  # same texts; caller's stream untouched
    assert first[0] != first[1]  # one stream across batches, not the same draws again
