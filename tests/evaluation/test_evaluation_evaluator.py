"""The evaluation loop: its configuration, the seeded user sample, exact candidate ranking, and the loop
itself with a tiny random student on the real data."""

from __future__ import annotations

import pytest
from datasets import DatasetDict

from rdrec_hf.data.builders import DEFAULT_MAX_TARGET_LENGTH
from rdrec_hf.evaluation.evaluator import EvaluationConfig, sample_users
from rdrec_hf.evaluation.ranking import rank_by_score
from rdrec_hf.evaluation.text_metrics import TEXT_METRIC_NAMES
from rdrec_hf.models.tasks import Task


def test_config_defaults_follow_the_paper():
    config = EvaluationConfig()
    assert config.tasks == [Task.SEQUENTIAL, Task.TOPN, Task.EXPLANATION, Task.RATIONALE]
    assert (config.split, config.ks, config.num_beams) == ("test", [1, 5, 10], 20)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tasks": ["sequential", "bogus"]}, "unknown task 'bogus'"),
        ({"tasks": ["topn", "TopN"]}, "listed twice"),
        ({"split": "train"}, "split must be one of"),
        ({"ks": [0, 5]}, "distinct positive"),
        ({"num_beams": 5}, "num_beams >= max"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"max_users": 0}, "max_users must be >= 1"),
        ({"protocols": []}, "protocols must be distinct and not empty"),
        ({"protocols": ["paper", "paper"]}, "protocols must be distinct"),
        ({"protocols": ["p5"]}, "not a valid EvalProtocol"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        EvaluationConfig(**overrides)


def test_few_beams_are_fine_without_the_sequential_task():
    assert EvaluationConfig(tasks=["topn"], num_beams=1).num_beams == 1


def test_sample_users_is_seeded_and_keeps_dataset_order():
    users = [str(u) for u in range(1, 101)]
    sample = sample_users(users, 10, seed=3)
    assert sample == sample_users(users, 10, seed=3)
    assert sample != sample_users(users, 10, seed=4)
    assert len(set(sample)) == 10 and sample == sorted(sample, key=int)
    assert sample_users(users, None, seed=3) == users
    assert sample_users(users, 1000, seed=3) == users


def test_rank_by_score_sorts_by_score_and_breaks_ties_against_the_target():
    assert rank_by_score(["a", "b", "c"], [0.1, 0.9, 0.5], target="a") == ["b", "c", "a"]
    # "t" ties with "x": it goes after it, whatever the stored order.
    assert rank_by_score(["t", "x", "y"], [0.5, 0.5, 0.1], target="t") == ["x", "t", "y"]
    with pytest.raises(ValueError, match="2 candidates but 1 scores"):
        rank_by_score(["a", "b"], [0.1], target="a")


# ----------------------------------------------------------------------------- the loop on real data
# A tiny random student (d_model 32, 2 layers) on the real All_Beauty reviews: the metrics of an untrained
# model mean nothing, so these tests check validity, consistency with the baselines and determinism.


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread():
    """Tiny matrices gain nothing from threads, and on a loaded 2-core machine extra threads cost 5x."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def all_beauty():
    from rdrec_hf.data import load_amazon_reviews
    from rdrec_hf.paths import all_beauty_reviews

    return load_amazon_reviews(all_beauty_reviews(), indexing="random")  # numbers as text: no item tokens


def _tiny_student(tokenizer, item_ids):
    import torch

    from rdrec_hf.models import ItemIndex, RDRecConfig, RDRecForConditionalGeneration

    torch.manual_seed(0)  # weights only; evaluation itself draws nothing at random
    model = RDRecForConditionalGeneration(RDRecConfig.from_preset("tiny"))
    model.set_item_index(ItemIndex.from_catalog(item_ids, tokenizer))
    return model


@pytest.fixture(scope="module")
def all_beauty_results(all_beauty, t5_tokenizer):
    from rdrec_hf.evaluation.evaluator import evaluate_model

    model = _tiny_student(t5_tokenizer, all_beauty["items"]["item_id"])
    config = EvaluationConfig(max_users=6, num_samples=6, batch_size=4, num_beams=10, max_new_tokens=8, seed=1)
    return [evaluate_model(model, all_beauty, t5_tokenizer, config, show_progress=shown) for shown in (True, False)]


def test_evaluation_is_deterministic(all_beauty_results):
    first, second = all_beauty_results
    assert first == second


def test_ranking_results_are_valid_and_on_the_same_users(all_beauty, all_beauty_results):
    from rdrec_hf.evaluation.ranking import ranking_metrics

    results = all_beauty_results[0]
    catalog = set(all_beauty["items"]["item_id"])
    items_of = dict(zip(all_beauty["users"]["user_id"], all_beauty["users"]["items"]))
    sampled = sample_users(all_beauty["users"]["user_id"], 6, seed=1)
    for task in ("sequential", "topn"):
        task_results = results[task]
        assert task_results["num_examples"] == 6
        assert [sample["user_id"] for sample in task_results["samples"]] == sampled
        for sample in task_results["samples"]:
            history, target = items_of[sample["user_id"]][:-1], items_of[sample["user_id"]][-1]
            assert sample["target"] == target
            for system in ("model", "leak_rule", "popularity"):
                ranked = sample[f"{system}_top_10"]
                assert len(ranked) == 10 and len(set(ranked)) == 10
                assert set(ranked) <= catalog and not set(ranked) & set(history)
        # Every system's metrics come from these very rankings (the samples cover all six users).
        targets = [sample["target"] for sample in task_results["samples"]]
        for system in ("model", "leak_rule", "popularity"):
            rankings = [sample[f"{system}_top_10"] for sample in task_results["samples"]]
            assert task_results[system] == ranking_metrics(rankings, targets, (1, 5, 10))
    assert results["sequential"]["missing_ids"] == 0
    # 83 items: every unseen item is a candidate, and the protocol says so.
    assert "all items the user has not interacted with" in results["topn"]["protocol"]


def test_text_tasks_score_generated_text_or_say_why_they_are_missing(all_beauty, all_beauty_results, t5_tokenizer):
    explanation, rationale = all_beauty_results[0]["explanation"], all_beauty_results[0]["rationale"]
    assert 1 <= explanation["num_examples"] <= 6
    assert tuple(explanation["model"]) == TEXT_METRIC_NAMES and explanation["evaluation_protocol"] == "project"
    assert all(0 <= value <= 100 for value in explanation["model"].values())
    reviews = all_beauty["reviews"]
    test_explanation = {
        (user, item): text
        for user, item, split, text in zip(
            reviews["user_id"], reviews["item_id"], reviews["split"], reviews["explanation"]
        )
        if split == "test"
    }
    for sample in explanation["samples"]:
        assert isinstance(sample["generated"], str)
        # The reference is the real explanation as the tokenizer spells it (the paper's scripts do the same).
        original = test_explanation[sample["user_id"], sample["item_id"]]
        spelled = t5_tokenizer(original, truncation=True, max_length=DEFAULT_MAX_TARGET_LENGTH)["input_ids"]
        assert sample["reference"] == t5_tokenizer.decode(spelled, skip_special_tokens=True)
    # The raw reviews carry no teacher rationales yet: the task is reported as skipped, not scored on nothing.
    assert rationale["num_examples"] == 0 and "rationale" in rationale["skipped"]


@pytest.fixture(scope="module")
def collapsed_student(tmp_path_factory):
    """A tiny student trained 40 steps on the ranking tasks of 40 All_Beauty users: enough to write catalog ids
    (popular ones, some in the user's history) in free beam search, as the paper protocol needs."""
    from rdrec_hf.training import DataArguments, ModelArguments, RDRecTrainingArguments, train_rdrec

    output_dir = tmp_path_factory.mktemp("collapsed")
    training_args = RDRecTrainingArguments(
        output_dir=str(output_dir), max_steps=40, per_device_train_batch_size=8, learning_rate=2e-2,
        save_strategy="no", rank_eval=False, task_mixture="0:1:0:1", max_source_length=128, use_cpu=True,
        report_to="none", seed=0, logging_steps=40,
    )
    data_args = DataArguments(dataset="all_beauty", user_limit=40, indexing="sequential")  # the paper's numbering: its protocol
    trainer, _ = train_rdrec(ModelArguments(model_preset="tiny", config_overrides="dropout_rate=0.0"), data_args,
                             training_args)
    return trainer.model, trainer.processing_class, trainer.rec_data


def test_paper_protocol_ranks_the_free_beams_as_the_reference_scripts(collapsed_student):
    """Free beams decoded to text and read as ids (the reference's parse), the history removed (sequential),
    invalid and out-of-candidate outputs kept as misses: the evaluator's numbers, recomputed here."""
    import torch

    from rdrec_hf.data import RDRecDataCollator, build_eval_dataset
    from rdrec_hf.evaluation.evaluator import PAPER_SEQUENTIAL_GENERATION, PAPER_TOPN_GENERATION, evaluate_model
    from rdrec_hf.evaluation.ranking import ranking_metrics

    model, tokenizer, data = collapsed_student
    config = EvaluationConfig(tasks=["sequential", "topn"], max_users=12, batch_size=6, seed=2, protocols=["paper"])
    results = evaluate_model(model, data, tokenizer, config, show_progress=False)
    catalog = set(data["items"]["item_id"])
    collator = RDRecDataCollator(pad_token_id=tokenizer.pad_token_id)
    for task, generation in (("sequential", PAPER_SEQUENTIAL_GENERATION), ("topn", PAPER_TOPN_GENERATION)):
        rows = build_eval_dataset(data, task, "test", tokenizer, max_examples=12, seed=2).to_list()
        batch = {name: tensor for name, tensor in collator(rows).items() if name != "labels"}
        with torch.no_grad():
            sequences = model.generate(**batch, **generation)
        texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
        returned = generation["num_return_sequences"]
        rankings, invalid = [], 0
        for index, row in enumerate(rows):
            ranked = []
            for text in texts[index * returned:(index + 1) * returned]:
                word = text.split(" ")[0]  # seq.py / topn.py: int(p.split(' ')[0])
                item = word if word in catalog else None
                invalid += item is None
                if task == "topn" and item not in row["candidates"]:
                    item = None
                if task == "sequential" and item in row["history"]:
                    continue
                ranked.append(item)
            rankings.append(ranked[:10])
        task_results = results[task]
        assert task_results["evaluation_protocol"] == "paper" and "free beam search" in task_results["protocol"]
        assert task_results["model"] == ranking_metrics(rankings, [row["target_item"] for row in rows], (1, 5, 10))
        assert task_results["invalid_share"] == pytest.approx(invalid / (returned * len(rows)))
        assert task_results["invalid_share"] < 0.8  # the trained student writes catalog ids (untrained: none)
    assert results["sequential"]["history_share"] > 0  # popular items of the history were generated, then removed


def test_paper_protocol_decodes_explanations_with_the_references_beams(collapsed_student):
    from rdrec_hf.evaluation.evaluator import PAPER_REFERENCE_MAX_TOKENS, evaluate_model

    model, tokenizer, data = collapsed_student
    config = EvaluationConfig(tasks=["explanation"], max_users=4, num_samples=4, seed=2, protocols=["paper"])
    explanation = evaluate_model(model, data, tokenizer, config, show_progress=False)["explanation"]
    assert explanation["evaluation_protocol"] == "paper" and "7 beams" in explanation["protocol"]
    reviews = {(r["user_id"], r["item_id"]): r["explanation"] for r in data["reviews"] if r["split"] == "test"}
    for sample in explanation["samples"]:
        # min_length=10 counts the decoder start token: at least 9 generated tokens
        assert len(tokenizer(sample["generated"], add_special_tokens=False)["input_ids"]) >= 9, sample
        spelled = tokenizer(reviews[sample["user_id"], sample["item_id"]], truncation=True,
                            max_length=PAPER_REFERENCE_MAX_TOKENS)["input_ids"]
        assert sample["reference"] == tokenizer.decode(spelled, skip_special_tokens=True)


def test_ranking_tasks_need_a_catalog(all_beauty, t5_tokenizer):
    from rdrec_hf.evaluation.evaluator import evaluate_model
    from rdrec_hf.models import RDRecConfig, RDRecForConditionalGeneration

    model = RDRecForConditionalGeneration(RDRecConfig.from_preset("tiny"))
    with pytest.raises(ValueError, match="need an item catalog"):
        evaluate_model(model, all_beauty, t5_tokenizer, EvaluationConfig(tasks=["topn"], max_users=2))


@pytest.mark.slow  # loading the 22,363 users takes most of ~17 s on a loaded 2-core machine
def test_full_catalog_evaluation_on_p5_beauty(t5_tokenizer):
    """The paper's benchmark data (12,101 items, no reviews) on a handful of users, the paper's 20 beams."""
    from rdrec_hf.data import load_p5_dataset
    from rdrec_hf.evaluation.evaluator import evaluate_model
    from rdrec_hf.paths import p5_dataset_dir

    beauty = load_p5_dataset(p5_dataset_dir("beauty"), indexing="random")
    model = _tiny_student(t5_tokenizer, beauty["items"]["item_id"])
    results = evaluate_model(model, beauty, t5_tokenizer, EvaluationConfig(max_users=3, batch_size=3, seed=0))
    assert results["sequential"]["num_examples"] == results["topn"]["num_examples"] == 3
    assert "12,101-item catalog" in results["sequential"]["protocol"]
    assert "100 candidates (it and the split's stored negatives)" in results["topn"]["protocol"]
    assert results["sequential"]["missing_ids"] == 0
    for sample in results["sequential"]["samples"] + results["topn"]["samples"]:
        assert len(set(sample["model_top_10"])) == 10
    for task in ("explanation", "rationale"):
        assert results[task]["num_examples"] == 0
        assert results[task]["skipped"] == "the dataset has no reviews (its source has no review text)"


def test_rationale_task_scores_both_prompt_kinds(all_beauty, t5_tokenizer):
    """Rationales as the distillation stage stores them; their text here is taken from the real reviews
    (the teacher is exercised in the teacher tests), enough to run the rationale path end to end."""
    from rdrec_hf.evaluation.evaluator import evaluate_model

    def with_rationale(review):
        return {
            "user_preference": f"The user prefers {review['explanation']}",
            "item_attribute": f"The item's attributes are {review['feature'] or review['explanation']}",
            "rationale_status": "ok",
        }

    data = dict(all_beauty)
    data["reviews"] = all_beauty["reviews"].map(with_rationale)
    model = _tiny_student(t5_tokenizer, all_beauty["items"]["item_id"])
    config = EvaluationConfig(tasks=["rationale"], max_users=3, num_samples=10, max_new_tokens=4, seed=5)
    rationale = evaluate_model(model, DatasetDict(data), t5_tokenizer, config, show_progress=False)["rationale"]
    kinds = [sample["rationale_kind"] for sample in rationale["samples"]]
    assert rationale["num_examples"] == len(kinds) and sorted(set(kinds)) == ["item", "user"]
    assert kinds.count("user") == kinds.count("item")  # one prompt of each kind per test review
    assert "teacher rationales" in rationale["protocol"]


def test_config_parses_from_the_command_line():
    from transformers import HfArgumentParser

    argv = ["--tasks", "sequential", "topn", "--ks", "1", "5", "--max_users", "7", "--split", "validation"]
    (config,) = HfArgumentParser(EvaluationConfig).parse_args_into_dataclasses(argv)
    assert config.tasks == [Task.SEQUENTIAL, Task.TOPN]
    assert (config.ks, config.max_users, config.split) == ([1, 5], 7, "validation")
