"""Task builders, prompts, whole-word ids, collator and model-free baselines, on the real shared data."""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
import re

import numpy as np

import pytest
import torch

from rdrec_hf.data import (
    MixtureMode,
    RDRecDataCollator,
    RationaleKind,
    SegmentStart,
    build_eval_dataset,
    build_training_dataset,
    encode_prompts,
    load_amazon_reviews,
    load_p5_dataset,
    load_tokenizer,
    mixture_draws,
    prompt_for,
    sample_users,
    split_target,
    training_history,
    whole_word_ids,
)
from rdrec_hf.data.mixture import draw_segments
from rdrec_hf.models.item_ids import MENTION_PATTERN
from rdrec_hf.data.schema import item_id_scheme
from rdrec_hf.evaluation.baselines import item_popularity, leak_rule_ranking, popularity_ranking
from rdrec_hf.paths import all_beauty_reviews, p5_dataset_dir, t5_tokenizer_dir
from rdrec_hf.models.tasks import RANKING_TASKS, TASK_MIXTURE_ORDER, TASK_SPECS, PromptSpec, Task

USER_MENTION = re.compile(r"user_(\d+)")
ITEM_MENTION = re.compile(r"item_(\d+)")


def _built(*args, **kwargs):
    """``build_training_dataset``'s epoch-0 draw as a ``datasets.Dataset`` with its texts, and its tasks."""
    mixture, tasks = build_training_dataset(*args, **kwargs)
    return mixture.to_dataset(), tasks


@pytest.fixture(scope="session")
def beauty(shared):  # numbers as text (leak-free): the T5 tokenizer needs no item tokens
    return load_p5_dataset(p5_dataset_dir("beauty"), indexing="random")


def _with_rationales(data):
    """All_Beauty reviews with rationale columns filled as a distillation run would (one in ten failed).
    Each text names the review it came from, so a test can trace every target back to its split."""

    def add(row, index):
        failed = index % 10 == 0
        return {
            "user_preference": None if failed else f"preference of user {row['user_id']} from item {row['item_id']}",
            "item_attribute": None if failed else f"attribute of item {row['item_id']} from user {row['user_id']}",
            "rationale_status": "failed" if failed else ("repaired" if index % 10 == 1 else "ok"),
        }

    data = data.copy()
    data["reviews"] = data["reviews"].map(add, with_indices=True)
    return data


@pytest.fixture(scope="session")
def all_beauty(shared):
    return _with_rationales(load_amazon_reviews(all_beauty_reviews(), indexing="random"))


@pytest.fixture(scope="session")
def beauty_training(beauty, t5_tokenizer):
    dataset, used = _built(
        beauty, t5_tokenizer, {Task.SEQUENTIAL: 0.1, Task.TOPN: 0.1}, seed=3, mode="unit_counts"
    )
    assert used == [Task.SEQUENTIAL, Task.TOPN]
    return dataset


@pytest.fixture(scope="session")
def all_beauty_training(all_beauty, t5_tokenizer):
    dataset, used = _built(all_beauty, t5_tokenizer, {task: 1.0 for task in Task}, seed=0)
    assert used == list(Task)
    return dataset


# ---------------------------------------------------------------- training mixtures


def _assert_no_evaluation_interaction(dataset, data):
    """No validation/test interaction (user, item) reaches any training prompt or target."""
    sequences = dict(zip(data["users"]["user_id"], data["users"]["items"]))
    held_out = {user: set(items[-2:]) - set(training_history(items)) for user, items in sequences.items()}
    review_split = {}
    if "reviews" in data:
        review_split = {(r["user_id"], r["item_id"]): r["split"] for r in data["reviews"]}
    checked = dict.fromkeys(Task, 0)
    for source, target, task_id in zip(dataset["source_text"], dataset["target_text"], dataset["task_id"]):
        task = Task(task_id)
        users, items = USER_MENTION.findall(source), ITEM_MENTION.findall(source)
        if task in (Task.SEQUENTIAL, Task.TOPN):
            (user,) = users
            assert not (set(items) | {target}) & held_out[user], (source, target)
        elif task is Task.EXPLANATION:
            assert review_split[(users[0], items[0])] == "train"
        else:  # the rationale text names the review it was distilled from
            origin = re.fullmatch(r"(?:preference of user (\d+) from item (\d+))|(?:attribute of item (\d+) from user (\d+))",
                                  target)
            user, item = (origin[1], origin[2]) if origin[1] else (origin[4], origin[3])
            assert review_split[(user, item)] == "train"
            assert (users == [user]) if users else (items == [item])
        checked[task] += 1
    return checked


def test_no_test_interaction_in_beauty_training(beauty, beauty_training):
    checked = _assert_no_evaluation_interaction(beauty_training, beauty)
    assert checked[Task.SEQUENTIAL] == checked[Task.TOPN] == round(0.1 * 22_363)


def test_no_test_interaction_in_any_task_on_reviews(all_beauty, all_beauty_training):
    checked = _assert_no_evaluation_interaction(all_beauty_training, all_beauty)
    train_reviews = [r for r in all_beauty["reviews"] if r["split"] == "train"]
    usable = [r for r in train_reviews if r["rationale_status"] != "failed"]
    assert checked[Task.EXPLANATION] == len(train_reviews)
    # 1:1:1:1 as the paper: one rationale record drawn per training explanation, cycling over the usable
    # records; each gives a user prompt and an item prompt.
    assert checked[Task.RATIONALE] == 2 * len(train_reviews)
    drawn = {target for target, task in zip(all_beauty_training["target_text"], all_beauty_training["task_id"])
             if task == Task.RATIONALE}
    assert len(drawn) == 2 * len(usable)
    assert checked[Task.TOPN] == checked[Task.SEQUENTIAL] == len(train_reviews)  # users cycled over


def test_sequential_examples_are_contiguous_training_segments(beauty, beauty_training):
    sequences = dict(zip(beauty["users"]["user_id"], beauty["users"]["items"]))
    for row in beauty_training.filter(lambda t: t == Task.SEQUENTIAL, input_columns="task_id").select(range(500)):
        (user,) = USER_MENTION.findall(row["source_text"])
        segment = ITEM_MENTION.findall(row["source_text"]) + [row["target_text"]]
        history = training_history(sequences[user])
        assert 2 <= len(segment) <= 21
        starts = [i for i in range(len(history)) if history[i : i + len(segment)] == segment]
        assert starts, (segment, history)


def test_first_item_segments_are_prefixes_of_the_training_history(all_beauty, t5_tokenizer):
    """`segment_start=first`: each prompt holds the (up to 20) training items right before its target, from the
    history's first; the targets cover every position after the first, which uniform starts reach too."""
    prefixes, _ = _built(all_beauty, t5_tokenizer, {Task.SEQUENTIAL: 7.0}, seed=0,
                                         mode="unit_counts", segment_start=SegmentStart.FIRST)
    uniform, _ = _built(all_beauty, t5_tokenizer, {Task.SEQUENTIAL: 7.0}, seed=0, mode="unit_counts")
    sequences = dict(zip(all_beauty["users"]["user_id"], all_beauty["users"]["items"]))
    shorter = 0
    for prefix_row, uniform_row in zip(prefixes, uniform):
        (user,) = USER_MENTION.findall(prefix_row["source_text"])
        history = training_history(sequences[user])
        prompt = ITEM_MENTION.findall(prefix_row["source_text"])
        end = history.index(prefix_row["target_text"])
        assert end >= 1 and prompt == history[max(0, end - 20):end], (prompt, prefix_row["target_text"], history)
        (user,) = USER_MENTION.findall(uniform_row["source_text"])
        end = training_history(sequences[user]).index(uniform_row["target_text"])
        shorter += len(ITEM_MENTION.findall(uniform_row["source_text"])) < min(end, 20)
    assert shorter > 0  # uniform starts leave older items out of some prompts; prefixes never do
    assert prefixes.num_rows == uniform.num_rows
    with pytest.raises(ValueError, match="'last' is not a valid SegmentStart"):
        _built(all_beauty, t5_tokenizer, {Task.SEQUENTIAL: 1.0}, segment_start="last")


def test_sequential_targets_are_the_training_items_after_the_segment(t5_tokenizer):
    data = load_amazon_reviews(all_beauty_reviews(), indexing="independent")
    scheme = item_id_scheme(data)
    tokenizer = copy.deepcopy(t5_tokenizer)
    scheme.add_tokens(tokenizer, data["items"]["item_id"])
    dataset, _ = _built(
        data, tokenizer, {Task.SEQUENTIAL: 3.0}, seed=0, mode="unit_counts", sequential_targets=3
    )
    sequences = dict(zip(data["users"]["user_id"], data["users"]["items"]))
    lengths = set()
    for row in dataset:
        (user,) = USER_MENTION.findall(row["source_text"])
        segment = re.findall(r"<item_(\d+)>", row["source_text"])
        targets = row["target_text"].split(" ")
        history = training_history(sequences[user])
        ends = [i + len(segment) for i in range(len(history)) if history[i : i + len(segment)] == segment]
        assert any(history[end : end + 3] == targets for end in ends), (segment, targets, history)
        assert row["labels"] == [token for (token,) in scheme.target_token_ids(targets, tokenizer)]
        lengths.add(len(targets))
    assert lengths == {1, 2, 3}  # segments near the end of a history have fewer items after them
    with pytest.raises(ValueError, match="needs one-token item ids"):
        _built(load_p5_dataset(p5_dataset_dir("beauty"), indexing="random"), t5_tokenizer, {Task.SEQUENTIAL: 0.01},
                               mode="unit_counts", sequential_targets=2)


def test_topn_examples_hold_a_training_positive_and_99_negatives(beauty, beauty_training):
    sequences = dict(zip(beauty["users"]["user_id"], beauty["users"]["items"]))
    for row in beauty_training.filter(lambda t: t == Task.TOPN, input_columns="task_id").select(range(500)):
        (user,) = USER_MENTION.findall(row["source_text"])
        candidates = ITEM_MENTION.findall(row["source_text"])
        assert len(candidates) == len(set(candidates)) == 100
        assert row["target_text"] in candidates and row["target_text"] in training_history(sequences[user])
        assert set(candidates) & set(sequences[user]) == {row["target_text"]}


def test_training_examples_are_tokenised_prompts(beauty_training, t5_tokenizer):
    rows = beauty_training.select(range(20)).to_dict()
    expected = encode_prompts(t5_tokenizer, rows["source_text"], max_length=512)
    assert rows["input_ids"] == expected["input_ids"]
    assert rows["whole_word_ids"] == expected["whole_word_ids"]
    assert rows["labels"] == t5_tokenizer(rows["target_text"])["input_ids"]


@pytest.mark.parametrize("indexing", ["random", "independent", "collaborative+independent"])
def test_assembled_prompts_are_what_the_tokenizer_gives(indexing, t5_tokenizer):
    """The mixture writes prompts from words tokenised once; every template of every task, in every kind of
    item id, must give exactly the tokenizer's ids and whole-word ids of the prompt text, cut at the limit."""
    data = _with_rationales(load_amazon_reviews(all_beauty_reviews(), indexing=indexing))
    tokenizer = copy.deepcopy(t5_tokenizer)
    item_id_scheme(data).add_tokens(tokenizer, data["items"]["item_id"])
    for max_length in (512, 24):
        mixture, _ = build_training_dataset(data, tokenizer, {task: 1.0 for task in Task}, seed=0,
                                            max_source_length=max_length)
        for epoch in (0, 1):
            mixture.set_epoch(epoch)
            rows = mixture.to_dataset()
            expected = encode_prompts(tokenizer, rows["source_text"], max_length=max_length)
            assert rows["input_ids"] == expected["input_ids"]
            assert rows["whole_word_ids"] == expected["whole_word_ids"]
        templates = {" ".join(re.sub(r"user_\d+|item_\d+|<[^>]+>", "", source).split()) for source in rows["source_text"]}
        assert len(templates) == sum(len(prompt.templates) for spec in TASK_SPECS.values() for prompt in spec.prompts)


def test_arithmetic_item_tokens_give_every_task_the_ids_of_a_token_per_item(t5_tokenizer):
    """Independent ids on real All_Beauty prompts of every task (training mixture: every template, two epochs;
    evaluation sets of both splits; cut and uncut): a tokenizer holding the placeholder alone gives exactly the
    input ids, whole-word ids and labels of one holding a token per item (how earlier versions encoded), and the
    same catalog."""
    from rdrec_hf.models import ItemIndex
    from rdrec_hf.models.item_ids import item_token

    data = _with_rationales(load_amazon_reviews(all_beauty_reviews(), indexing="independent"))
    items = data["items"]["item_id"]
    scheme = item_id_scheme(data)
    per_item, arithmetic = copy.deepcopy(t5_tokenizer), copy.deepcopy(t5_tokenizer)
    per_item.add_tokens([item_token(item) for item in items])
    assert scheme.add_tokens(arithmetic, items) == 1 and len(per_item) == len(arithmetic) - 1 + len(items)
    columns = ["input_ids", "attention_mask", "whole_word_ids", "labels", "task_id"]
    for max_length in (512, 24):
        mixtures = [build_training_dataset(data, tokenizer, {task: 1.0 for task in Task}, seed=0,
                                           max_source_length=max_length)[0] for tokenizer in (per_item, arithmetic)]
        for epoch in (0, 1):
            rows = []
            for mixture in mixtures:
                mixture.set_epoch(epoch)
                rows.append([mixture[index] for index in range(len(mixture))])
            assert rows[0] == rows[1]
            assert {Task(row["task_id"]) for row in rows[0]} == set(Task)
        for task in Task:
            for split in ("validation", "test"):
                old, new = (build_eval_dataset(data, task, split, tokenizer, max_source_length=max_length)
                            for tokenizer in (per_item, arithmetic))
                assert old.num_rows > 0 and old.select_columns(columns).to_dict() == new.select_columns(columns).to_dict()
    old_index, new_index = (ItemIndex.from_catalog(items, tokenizer, scheme=scheme) for tokenizer in (per_item, arithmetic))
    assert (old_index.token_ids, old_index.vocab_size) == (new_index.token_ids, new_index.vocab_size)


def test_each_epoch_draws_afresh_from_the_same_tokens(beauty, t5_tokenizer):
    mixture, _ = build_training_dataset(beauty, t5_tokenizer, {Task.SEQUENTIAL: 0.05, Task.TOPN: 0.05}, seed=3,
                                        mode="unit_counts")
    first = mixture.to_dataset()
    mixture.set_epoch(1)
    second = mixture.to_dataset()
    mixture.set_epoch(0)
    assert mixture.to_dataset().to_dict() == first.to_dict()  # an epoch's draw is a function of the seed
    assert second["source_text"] != first["source_text"] and len(second) == len(first)
    unchanged, _ = build_training_dataset(beauty, t5_tokenizer, {Task.SEQUENTIAL: 0.05}, seed=3, mode="unit_counts",
                                          resample_each_epoch=False)
    before = unchanged.to_dataset()["source_text"]
    unchanged.set_epoch(1)
    assert unchanged.to_dataset()["source_text"] == before


def _reference_segments(lengths, seed=0):
    """The reference's draw (Python's stream, as the project drew it before the array path): start, end."""
    rng = random.Random(seed)
    starts = [rng.randrange(n - 1) for n in lengths]
    return np.array(starts), np.array([rng.randrange(start + 1, n) for start, n in zip(starts, lengths)])


def _segment_histograms(lengths, starts, ends):
    """Shares of prompt lengths (1..20 items) and of the target's relative position (10 bins)."""
    prompt = ends - np.maximum(starts, ends - 20)
    position = np.minimum((10 * ends / np.asarray(lengths)).astype(int), 9)
    return np.bincount(prompt, minlength=21) / len(prompt), np.bincount(position, minlength=10) / len(position)


def test_segment_starts_and_lengths_follow_the_reference_distribution(beauty):
    """The array path draws from numpy, not from the reference's Python stream: on beauty's training
    histories, seven draws a user as the item-id recipe, the prompt lengths and the targets' positions have the
    reference's distribution (total variation under 0.02; prefixes, another distribution, are far off)."""
    lengths = np.repeat([len(items) - 2 for items in beauty["users"]["items"]], 7)
    reference = _segment_histograms(lengths, *_reference_segments(lengths))
    for uniform_start, close in ((True, True), (False, False)):
        drawn = _segment_histograms(lengths, *draw_segments(np.random.default_rng(0), lengths, uniform_start))
        distances = [0.5 * np.abs(a - b).sum() for a, b in zip(drawn, reference)]
        assert all(d < 0.02 for d in distances) if close else max(distances) > 0.1, distances


def test_same_seed_same_mixture_other_seed_other_samples(all_beauty, t5_tokenizer, all_beauty_training):
    weights = {task: 1.0 for task in Task}
    again, _ = _built(all_beauty, t5_tokenizer, weights, seed=0)
    other, _ = _built(all_beauty, t5_tokenizer, weights, seed=1)
    assert again.to_dict() == all_beauty_training.to_dict()
    assert other["source_text"] != all_beauty_training["source_text"]
    assert sorted(other["task_id"]) == sorted(all_beauty_training["task_id"])


def test_unit_count_weights(all_beauty, beauty, t5_tokenizer, caplog):
    doubled, _ = _built(
        all_beauty, t5_tokenizer, {Task.EXPLANATION: 2.0, "topn": 0.5}, mode=MixtureMode.UNIT_COUNTS
    )
    train_reviews = sum(split == "train" for split in all_beauty["reviews"]["split"])
    assert doubled["task_id"].count(Task.EXPLANATION) == 2 * train_reviews
    assert doubled["task_id"].count(Task.TOPN) == round(0.5 * all_beauty["users"].num_rows)
    with caplog.at_level(logging.WARNING, logger="rdrec_hf.data.builders"):
        only_topn, used = _built(
            beauty, t5_tokenizer, {Task.EXPLANATION: 1, Task.RATIONALE: 1, Task.TOPN: 0.01}, mode="unit_counts"
        )
    assert used == [Task.TOPN] and set(only_topn["task_id"]) == {Task.TOPN}
    assert "explanation" in caplog.text and "rationale" in caplog.text
    for bad in ({Task.TOPN: 0}, {Task.TOPN: -1.0, Task.SEQUENTIAL: 1.0}):
        with pytest.raises(ValueError, match="task weights"):
            _built(all_beauty, t5_tokenizer, bad)
    with pytest.raises(ValueError, match="unknown task"):
        _built(all_beauty, t5_tokenizer, {"ranking": 1.0})


def test_paper_mixture_is_a_share_of_every_batch(all_beauty, all_beauty_training):
    """1:1:1:1 as the reference's AllBatchify: 20/20/40/20 % explanation/sequential/rationale/top-N in every
    batch, an epoch of one pass over the training explanations, a record's two rationale prompts together."""
    tasks = list(all_beauty_training["task_id"])
    train_explanations = sum(
        split == "train" and bool(text) for split, text in zip(all_beauty["reviews"]["split"], all_beauty["reviews"]["explanation"])
    )
    assert tasks.count(Task.EXPLANATION) == tasks.count(Task.SEQUENTIAL) == tasks.count(Task.TOPN) == train_explanations
    shares = {task: tasks.count(task) / len(tasks) for task in Task}
    expected = {Task.EXPLANATION: 0.2, Task.SEQUENTIAL: 0.2, Task.RATIONALE: 0.4, Task.TOPN: 0.2}
    assert all(abs(shares[task] - expected[task]) < 0.01 for task in Task), shares
    batch = 80  # the reference's batch of 64 records at 1:1:1:1: 16 + 16 + 16 + 2 x 16 examples
    for start in range(0, len(tasks) - batch + 1, batch):
        window = tasks[start:start + batch]
        for task, share in expected.items():  # up to one draw (two examples for a rationale record) off
            assert abs(window.count(task) - share * batch) <= (3 if task is Task.RATIONALE else 1.01), (start, task)
    sources, targets = all_beauty_training["source_text"], all_beauty_training["target_text"]
    rationale = [i for i, task in enumerate(tasks) if task == Task.RATIONALE]
    preferences = [i for i in rationale if targets[i].startswith("preference of user")]
    # Every user-preference prompt whose record also has an item attribute sits beside it.
    assert all(targets[i + 1].startswith("attribute of item") and tasks[i + 1] == Task.RATIONALE for i in preferences)


def test_mixture_draws():
    units = {Task.EXPLANATION: 100, Task.SEQUENTIAL: 40, Task.RATIONALE: 90, Task.TOPN: 40}
    weights = {Task.EXPLANATION: 1, Task.SEQUENTIAL: 2, Task.RATIONALE: 1, Task.TOPN: 0.5}
    assert mixture_draws(units, weights, MixtureMode.BATCH_SHARES) == {
        Task.EXPLANATION: 100, Task.SEQUENTIAL: 200, Task.RATIONALE: 100, Task.TOPN: 50}
    assert mixture_draws(units, weights, MixtureMode.UNIT_COUNTS) == {
        Task.EXPLANATION: 100, Task.SEQUENTIAL: 80, Task.RATIONALE: 90, Task.TOPN: 20}
    # Without explanations the rationale records set the epoch, then the users of sequential recommendation.
    no_text = {**weights, Task.EXPLANATION: 0}
    assert mixture_draws(units, no_text, MixtureMode.BATCH_SHARES)[Task.RATIONALE] == 90
    assert mixture_draws(units, {Task.SEQUENTIAL: 1, Task.TOPN: 3}, MixtureMode.BATCH_SHARES) == {
        Task.SEQUENTIAL: 40, Task.TOPN: 120}
    # A task without data is left out and the next one sets the epoch.
    assert mixture_draws({**units, Task.EXPLANATION: 0}, weights, MixtureMode.BATCH_SHARES) == {
        Task.SEQUENTIAL: 180, Task.RATIONALE: 90, Task.TOPN: 45}


def test_long_prompts_are_reported(all_beauty, t5_tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger="rdrec_hf.data.builders"):
        dataset, _ = _built(all_beauty, t5_tokenizer, {Task.TOPN: 1.0}, max_source_length=64)
    assert max(map(len, dataset["input_ids"])) == 64
    assert f"{dataset.num_rows} of {dataset.num_rows} prompts reached max_source_length=64" in caplog.text


# ---------------------------------------------------------------- evaluation sets


def test_sequential_eval_set(beauty, t5_tokenizer):
    test = build_eval_dataset(beauty, Task.SEQUENTIAL, "test", t5_tokenizer, max_examples=300, seed=5)
    validation = build_eval_dataset(beauty, "sequential", "validation", t5_tokenizer, max_examples=300, seed=5)
    assert test["user_id"] == validation["user_id"] == sorted(test["user_id"], key=int)
    sequences = dict(zip(beauty["users"]["user_id"], beauty["users"]["items"]))
    for split, dataset in (("test", test), ("validation", validation)):
        for row in dataset:
            history, target = split_target(sequences[row["user_id"]], split)
            assert (row["history"], row["target_item"], row["target_text"]) == (history, target, target)
            assert ITEM_MENTION.findall(row["source_text"]) == history[-20:]
            assert row["task_id"] == Task.SEQUENTIAL
    other_sample = build_eval_dataset(beauty, Task.SEQUENTIAL, "test", t5_tokenizer, max_examples=300, seed=6)
    assert other_sample["user_id"] != test["user_id"]


def test_eval_set_of_given_users_equals_the_sampled_one(beauty, all_beauty, t5_tokenizer):
    users = sample_users(beauty["users"]["user_id"], 300, seed=5)
    given = build_eval_dataset(beauty, Task.TOPN, "test", t5_tokenizer, users=users, seed=5)
    sampled = build_eval_dataset(beauty, Task.TOPN, "test", t5_tokenizer, max_examples=300, seed=5)
    assert given["user_id"] == users == sampled["user_id"]
    assert given["source_text"] == sampled["source_text"]
    with pytest.raises(ValueError, match="1 evaluation users are not in the dataset"):
        build_eval_dataset(beauty, Task.SEQUENTIAL, "test", t5_tokenizer, users=[*users, "no-such-user"])
    whole = build_eval_dataset(all_beauty, Task.EXPLANATION, "test", t5_tokenizer)
    some = sorted(set(whole["user_id"]))[:20]
    kept = build_eval_dataset(all_beauty, Task.EXPLANATION, "test", t5_tokenizer, users=some)
    assert kept["source_text"] == [text for text, user in zip(whole["source_text"], whole["user_id"]) if user in some]


def test_topn_eval_set_uses_the_stored_negatives(beauty, t5_tokenizer):
    dataset = build_eval_dataset(beauty, Task.TOPN, "test", t5_tokenizer, max_examples=200, seed=1)
    positions = [int(user_id) - 1 for user_id in dataset["user_id"]]  # P5 users are numbered 1..N in order
    users = {user["user_id"]: user for user in beauty["users"].select(positions)}
    for row in dataset:
        user = users[row["user_id"]]
        assert row["target_item"] == user["items"][-1]
        assert sorted(row["candidates"]) == sorted([user["items"][-1], *user["test_negatives"]])
        assert ITEM_MENTION.findall(row["source_text"]) == row["candidates"]
    positions = [row["candidates"].index(row["target_item"]) for row in dataset]
    assert len(set(positions)) > 50  # shuffled, not always first
    # a user's candidate order does not depend on which other users are sampled
    larger = build_eval_dataset(beauty, Task.TOPN, "test", t5_tokenizer, max_examples=400, seed=1)
    order = dict(zip(larger["user_id"], larger["candidates"]))
    shared_users = [u for u in dataset["user_id"] if u in order]
    assert shared_users and all(order[u] == c for u, c in zip(dataset["user_id"], dataset["candidates"]) if u in order)
    validation = build_eval_dataset(beauty, Task.TOPN, "validation", t5_tokenizer, max_examples=200, seed=1)
    assert validation["user_id"] == dataset["user_id"]
    for row in validation:
        assert set(row["candidates"]) == {users[row["user_id"]]["items"][-2], *users[row["user_id"]]["valid_negatives"]}


def test_text_eval_sets(all_beauty, beauty, t5_tokenizer):
    explanation = build_eval_dataset(all_beauty, Task.EXPLANATION, "test", t5_tokenizer)
    test_reviews = [r for r in all_beauty["reviews"] if r["split"] == "test"]
    assert explanation["target_text"] == [r["explanation"] for r in test_reviews]
    assert explanation["source_text"][0] == prompt_for(
        Task.EXPLANATION, user_id=test_reviews[0]["user_id"], item_id=test_reviews[0]["item_id"]
    )
    rationale = build_eval_dataset(all_beauty, Task.RATIONALE, "validation", t5_tokenizer)
    assert set(rationale["rationale_kind"]) == {"user", "item"}
    for row in rationale:
        mention = f"user_{row['user_id']}" if row["rationale_kind"] == "user" else f"item_{row['item_id']}"
        assert MENTION_PATTERN.findall(row["source_text"]) == [mention]
    with pytest.raises(ValueError, match="needs a 'reviews' split"):
        build_eval_dataset(beauty, Task.EXPLANATION, "test", t5_tokenizer)
    with pytest.raises(ValueError, match="split must be one of"):
        build_eval_dataset(all_beauty, Task.EXPLANATION, "train", t5_tokenizer)


# ---------------------------------------------------------------- prompts, whole-word ids, tokenizer


def test_prompt_for_uses_the_fixed_template_and_checks_fields():
    prompt = prompt_for("sequential", user_id="7", history=[str(i) for i in range(1, 31)])
    assert USER_MENTION.findall(prompt) == ["7"]
    assert ITEM_MENTION.findall(prompt) == [str(i) for i in range(11, 31)]  # the last 20
    assert prompt == prompt_for(Task.SEQUENTIAL, user_id="7", history=[str(i) for i in range(1, 31)])
    assert prompt_for(Task.RATIONALE, item_id="3", kind="item") != prompt_for(Task.RATIONALE, user_id="3", kind="user")
    with pytest.raises(ValueError, match=r"needs \['candidates'\]"):
        prompt_for(Task.TOPN, user_id="1")
    with pytest.raises(ValueError, match="needs kind="):
        prompt_for(Task.RATIONALE, user_id="1")
    assert RationaleKind("user") is RationaleKind.USER


def _check_whole_word_ids(tokenizer, text):
    encoded = tokenizer(text, return_offsets_mapping=True)
    ids = whole_word_ids(text, encoded["offset_mapping"])
    spans = [m.span() for m in MENTION_PATTERN.finditer(text)]
    assert sorted(set(ids) - {0}) == list(range(1, len(spans) + 1))
    for (start, end), word in zip(encoded["offset_mapping"], ids):
        overlapping = [k for k, (s, e) in enumerate(spans, start=1) if s < end and start < e and end > start]
        assert word == (overlapping[0] if overlapping else 0), (text[start:end], word)
    for k, (s, e) in enumerate(spans, start=1):  # every character of a mention is covered by its tokens
        covered = set()
        for (start, end), word in zip(encoded["offset_mapping"], ids):
            if word == k:
                covered |= set(range(start, end))
        assert set(range(s, e)) <= covered
    return ids


def test_whole_word_ids_on_real_t5_prompts(t5_tokenizer):
    text = prompt_for(Task.TOPN, user_id="4117", candidates=["8327", "12", "5", "10100"])
    ids = _check_whole_word_ids(t5_tokenizer, text)
    tokens = t5_tokenizer.convert_ids_to_tokens(t5_tokenizer(text)["input_ids"])
    assert [t for t, w in zip(tokens, ids) if w == 1] == ["▁user", "_", "41", "17"]
    assert tokens[-1] == "</s>" and ids[-1] == 0
    # an id whose last digit merges with the following comma still belongs to its mention
    merged = "Bought item_345, item_6."
    ids = _check_whole_word_ids(t5_tokenizer, merged)
    tokens = t5_tokenizer.convert_ids_to_tokens(t5_tokenizer(merged)["input_ids"])
    assert ("5," in tokens) and ids[tokens.index("5,")] == 1
    for task in (Task.SEQUENTIAL, Task.EXPLANATION):
        _check_whole_word_ids(t5_tokenizer, prompt_for(task, user_id="1", history=["3", "99"], item_id="42"))


def test_whole_word_ids_with_another_fast_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [prompt_for(Task.TOPN, user_id=str(u), candidates=[str(u * 7 + i) for i in range(5)]) for u in range(300)]
    backend = Tokenizer(models.BPE(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=["[UNK]", "[PAD]"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]")
    for text in corpus[:50] + ["user_12's preference", "item_7,item_8 and user_3."]:
        _check_whole_word_ids(tokenizer, text)


def test_load_tokenizer_falls_back_to_t5_for_a_bare_folder(shared, tmp_path):
    tokenizer = load_tokenizer(t5_tokenizer_dir())
    assert tokenizer.is_fast and len(tokenizer) == 32_100
    with pytest.raises((OSError, ValueError)):
        load_tokenizer(tmp_path)


def test_encode_prompts_tensors(t5_tokenizer):
    texts = [prompt_for(Task.SEQUENTIAL, user_id="1", history=["2"]), prompt_for(Task.TOPN, user_id="9",
                                                                                  candidates=["1", "2", "3"])]
    batch = encode_prompts(t5_tokenizer, texts, max_length=512, return_tensors="pt")
    lists = encode_prompts(t5_tokenizer, texts, max_length=512)
    longest = max(map(len, lists["input_ids"]))
    assert all(tensor.shape == (2, longest) and tensor.dtype == torch.long for tensor in batch.values())
    short = len(lists["input_ids"][0])
    assert batch["input_ids"][0, short:].eq(t5_tokenizer.pad_token_id).all()
    assert batch["attention_mask"][0, short:].eq(0).all() and batch["whole_word_ids"][0, short:].eq(0).all()
    assert batch["whole_word_ids"][1].max() == 4


# ---------------------------------------------------------------- collator


def test_collator_pads_a_batch_mixing_tasks_and_lengths(all_beauty_training):
    rows = [all_beauty_training[i] for i in range(64)]
    assert len({row["task_id"] for row in rows}) == 4
    batch = RDRecDataCollator(pad_token_id=0)(rows)
    longest, longest_label = max(len(r["input_ids"]) for r in rows), max(len(r["labels"]) for r in rows)
    assert set(batch) == {"input_ids", "attention_mask", "whole_word_ids", "labels", "task_id"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["whole_word_ids"].shape == (64, longest)
    assert batch["labels"].shape == (64, longest_label)
    assert batch["task_id"].tolist() == [r["task_id"] for r in rows]
    for index, row in enumerate(rows):
        length, label_length = len(row["input_ids"]), len(row["labels"])
        assert batch["input_ids"][index, :length].tolist() == row["input_ids"]
        assert batch["attention_mask"][index].sum() == length
        assert batch["whole_word_ids"][index, length:].eq(0).all()
        assert batch["labels"][index, label_length:].eq(-100).all()
        assert batch["labels"][index, :label_length].tolist() == row["labels"]


def test_collator_options_and_errors(all_beauty_training):
    rows = [all_beauty_training[i] for i in range(5)]
    batch = RDRecDataCollator(pad_to_multiple_of=8)(rows)
    assert batch["input_ids"].shape[1] % 8 == 0 and batch["labels"].shape[1] % 8 == 0
    unlabeled = RDRecDataCollator()([{k: v for k, v in row.items() if k != "labels"} for row in rows])
    assert "labels" not in unlabeled
    with pytest.raises(ValueError, match="empty batch"):
        RDRecDataCollator()([])
    with pytest.raises(KeyError, match="whole_word_ids"):
        RDRecDataCollator()([{"input_ids": [1], "attention_mask": [1], "task_id": 0}])
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        RDRecDataCollator(pad_to_multiple_of=0)


# ---------------------------------------------------------------- model-free baselines


def test_leak_rule_ranking():
    assert leak_rule_ranking(["3", "7", "5"], 10, k=5) == ["8", "9", "10", "6", "4"]
    assert leak_rule_ranking(["3", "10"], 10, k=3) == ["9", "8", "7"]
    assert leak_rule_ranking(["5"], ["1", "9", "6", "5"], k=10) == ["6", "9", "1"]
    with pytest.raises(ValueError):
        leak_rule_ranking([], 10, k=3)


def test_popularity_ranking():
    popular = item_popularity([["1", "2", "2"], ["2", "3"], ["3"]], catalog_size=5)
    assert popular == ["2", "3", "1", "4", "5"]
    assert popularity_ranking(popular, history=["3"], k=3) == ["2", "1", "4"]
    assert popularity_ranking(popular, history=["2"], k=3, candidates=["5", "2", "1"]) == ["1", "5"]


# ------------------------------------------------------------------------------------- the task table
def test_every_task_has_a_consistent_spec():
    assert set(TASK_SPECS) == set(Task) and TASK_MIXTURE_ORDER == tuple(TASK_SPECS)
    assert RANKING_TASKS == (Task.SEQUENTIAL, Task.TOPN)
    assert [task.spec.ranking_field for task in RANKING_TASKS] == ["history", "candidates"]
    assert Task.RATIONALE.spec.prompt("item").target == "item_attribute"
    sequential = Task.SEQUENTIAL.spec
    with pytest.raises(ValueError, match="target column"):  # a ranking prompt's target is an item id
        dataclasses.replace(sequential, prompts=(PromptSpec(("{history}",), ("history",), target="explanation"),))
    with pytest.raises(ValueError, match="'history' or 'candidates'"):
        dataclasses.replace(sequential, prompts=(PromptSpec(("user_{user}",), ("user_id",)),))
    with pytest.raises(ValueError, match="distinct kinds"):
        dataclasses.replace(Task.RATIONALE.spec, prompts=Task.RATIONALE.spec.prompts[:1] * 2)
    with pytest.raises(ValueError, match="no user prompt"):
        Task.EXPLANATION.spec.prompt("user")


def test_builders_read_prompts_and_targets_from_the_task_table(all_beauty, t5_tokenizer, monkeypatch):
    """A task's entry alone decides its templates and its target column: change them there and the training
    mixture and the evaluation set follow, with nothing else edited."""
    spec = Task.EXPLANATION.spec
    monkeypatch.setitem(TASK_SPECS, Task.EXPLANATION, dataclasses.replace(
        spec, prompts=(PromptSpec(("Summarise what user_{user} wrote on {item} .",), spec.prompts[0].fields,
                                  target="review"),)))
    train, _ = _built(all_beauty, t5_tokenizer, {"explanation": 1}, seed=0, mode="unit_counts")
    reviews = [row["review"] for row in all_beauty["reviews"] if row["split"] == "train" and row["review"]]
    assert train.num_rows == len(reviews)
    assert all(source.startswith("Summarise what user_") for source in train["source_text"])
    assert sorted(train["target_text"]) == sorted(reviews)
    evaluation = build_eval_dataset(all_beauty, "explanation", "test", t5_tokenizer, max_examples=20)
    assert all(source.startswith("Summarise") for source in evaluation["source_text"])
