"""The rationale parser (pure functions) and the distillation config's validation."""

from __future__ import annotations

import pytest

from rdrec_hf.teacher import DistillationConfig, Quantization, RationaleField, RationaleStatus, parse_answer
from rdrec_hf.teacher.parsing import longest_shared_word_run, worst_status

USER, ITEM = RationaleField.USER_PREFERENCE, RationaleField.ITEM_ATTRIBUTE
OK, REPAIRED, FAILED = RationaleStatus.OK, RationaleStatus.REPAIRED, RationaleStatus.FAILED
REVIEW = "I bought this to smell nice after I shave. When I put it on I smelled awful and old."

PARSED = [
    # (answer, field, status, rationale, repairs)
    ("The user prefers floral scents.", USER, OK, "The user prefers floral scents.", ()),
    ("The user prefers floral scents. It is also cheap!", USER, OK, "The user prefers floral scents.", ()),
    ("The user prefers 3.5 oz bottles.", USER, OK, "The user prefers 3.5 oz bottles.", ()),
    ("The customer likes mild soaps.\n", USER, OK, "The customer likes mild soaps.", ()),
    ("1. The user prefers floral scents.", USER, REPAIRED, "The user prefers floral scents.", ("list_marker",)),
    ("**User preference:** floral scents.", USER, REPAIRED, "The user prefers floral scents.", ("label",)),
    ("Sure! Based on the review, the user prefers a mild shampoo.", USER, REPAIRED,
     "The user prefers a mild shampoo.", ("leading_text",)),
    ("Here is my answer:\n\nThe user prefers a mild shampoo.", USER, REPAIRED,
     "The user prefers a mild shampoo.", ("leading_text",)),
    ("The user prefers a shampoo that is gentle and", USER, REPAIRED,
     "The user prefers a shampoo that is gentle.", ("unterminated",)),
    ("The item's attributes are a fresh scent and a light texture.", ITEM, OK,
     "The item's attributes are a fresh scent and a light texture.", ()),
    ("Item attributes - Fresh scent, light texture", ITEM, REPAIRED,
     "The item's attributes are fresh scent, light texture.", ("label", "unterminated")),
    ("1. The user prefers cheap soap.\n2. The item's attributes are a strong smell.", ITEM, REPAIRED,
     "The item's attributes are a strong smell.", ("list_marker", "leading_text")),
    ("The user prefers cheap soap. The product features include a pump.", ITEM, REPAIRED,
     "The product features include a pump.", ("leading_text",)),
    # SmolLM2 lists item attributes one per line after a colon, cut by the token budget ("4.")
    ("The item's attributes are:\n1. Natural and scented\n2. Combination skin\n3. Moisturizing\n4.", ITEM,
     REPAIRED, "The item's attributes are natural and scented, combination skin, moisturizing.",
     ("list_marker", "list_joined")),
    ("The item's attributes are:\n- Soft\n- UV filter\nUser preference: cheap", ITEM, REPAIRED,
     "The item's attributes are soft, UV filter.", ("list_marker", "list_joined")),
    ("The item's attributes are: 1. It's a high-end product. 2. It's expensive", ITEM, REPAIRED,
     "The item's attributes are it's a high-end product, it's expensive.", ("colon", "list_joined", "unterminated")),
    ("The item's attributes are: It's non-alcohol-based and mild.", ITEM, REPAIRED,
     "The item's attributes are it's non-alcohol-based and mild.", ("colon",)),
]


@pytest.mark.parametrize("answer, field, status, rationale, repairs", PARSED)
def test_parse_accepts_real_formats(answer, field, status, rationale, repairs):
    parsed = parse_answer(answer, field, REVIEW)
    assert (parsed.status, parsed.text, parsed.repairs, parsed.failure) == (status, rationale, repairs, None)


FAILURES = [
    ("", "empty_output"),
    ("   \n ", "empty_output"),
    (None, "empty_output"),
    ("I cannot help with that.", "no_answer"),
    ("The item's attributes are nice.", "no_answer"),  # asked for the user's preference
    ("The user prefers.", "no_content"),
    ("The user prefers ### $$$ 1234 !!! %%%", "garbage"),
    ("The user prefers soap, soap, soap, soap, soap, soap.", "repetitive"),
    ("The user prefers this to smell nice after I shave when I put it on.", "copies_review"),
]


@pytest.mark.parametrize("answer, reason", FAILURES)
def test_parse_marks_unusable_answers_failed_with_no_text(answer, reason):
    parsed = parse_answer(answer, USER, REVIEW)
    assert (parsed.status, parsed.text, parsed.failure) == (FAILED, None, reason)


def test_copy_detection_counts_consecutive_words_only():
    assert longest_shared_word_run("smell nice after I shave", REVIEW) == 5
    assert longest_shared_word_run("shave after nice smell", REVIEW) == 1
    assert longest_shared_word_run("", REVIEW) == 0


def test_row_status_is_the_worst_answer_status():
    assert worst_status(OK, OK) is OK
    assert worst_status(OK, REPAIRED) is REPAIRED
    assert worst_status(REPAIRED, FAILED) is FAILED


def test_config_defaults_are_greedy_and_parse_enum_strings():
    config = DistillationConfig(quantization="4bit", backend="transformers")
    assert config.quantization is Quantization.INT4 and config.do_sample is False
    assert config.generation_settings()["quantization"] == "4bit"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"limit": 0}, "limit"),
        ({"temperature": 0.7}, "do_sample"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"dtype": "float8"}, "dtype"),
        ({"backend": "openai"}, "base_url"),
        ({"backend": "openai", "base_url": "http://x/v1", "endpoint_model": "m", "quantization": "8bit"},
         "quantization"),
        ({"backend": "openai", "base_url": "http://x/v1", "endpoint_model": "m", "teacher": "gpt2"}, "teacher"),
        ({"base_url": "http://x/v1"}, "backend 'openai'"),
        ({"gguf_file": "model.gguf"}, "set teacher"),
        ({"teacher": "repo", "gguf_file": "model.gguf", "quantization": "8bit"}, "cannot be loaded with bitsandbytes"),
        ({"backend": "vllm"}, "vllm"),
    ],
)
def test_config_rejects_bad_combinations(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DistillationConfig(**kwargs)
