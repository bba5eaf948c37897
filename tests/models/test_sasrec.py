"""SASRec (rdrec_hf.models.sasrec): causal, padding-invariant, it learns a deterministic pattern;
and the quality benchmark's use of it."""

from __future__ import annotations

import random

import pytest
import torch

from helpers import load_script

from rdrec_hf.models import sasrec

bench_quality = load_script("benchmarks/bench_quality.py")
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models on one thread


def tiny_model(num_items: int = 30, dropout: float = 0.0, seed: int = 0) -> "sasrec.SASRecModel":
    config = sasrec.SASRecConfig(
        num_items=num_items, max_history_length=10, hidden_size=32, num_blocks=2, num_heads=2, dropout=dropout, init_seed=seed
    )
    return sasrec.SASRecModel(config).eval()


def test_output_at_a_position_ignores_later_items():
    model = tiny_model()
    prefix = [3, 7, 1, 9]
    first = torch.tensor([prefix + [2, 4, 5]])
    second = torch.tensor([prefix + [28, 11, 6]])
    with torch.no_grad():
        hidden_first, hidden_second = model(first), model(second)
    assert torch.allclose(hidden_first[:, : len(prefix)], hidden_second[:, : len(prefix)], atol=1e-6)
    assert not torch.allclose(hidden_first[:, len(prefix)], hidden_second[:, len(prefix)], atol=1e-3)


def test_left_padding_does_not_change_outputs():
    model = tiny_model()
    sequences = [[5, 6, 7, 8, 9, 10], [4, 2]]
    with torch.no_grad():
        batched = model(sasrec.left_pad(sequences, max_length=10))  # [2, 6, H]
        alone = model(torch.tensor([[4, 2]]))  # [1, 2, H]
    assert torch.isfinite(batched).all()
    assert torch.allclose(batched[1, -2:], alone[0], atol=1e-5)


def test_top_k_excludes_history_and_padding():
    model = tiny_model(num_items=6)
    histories = [[1, 2, 3], [6]]
    top = model.top_k(histories, k=3)
    assert sorted(top[0].tolist()) == [4, 5, 6]
    assert sasrec.PADDING_INDEX not in top[1].tolist() and 6 not in top[1].tolist()


def test_candidate_scores_match_full_catalog_scores():
    model = tiny_model()
    histories = [[3, 4, 5], [9]]
    candidates = torch.tensor([[1, 2, 7], [8, 30, 12]])
    with torch.no_grad():
        full = model.item_scores(model(sasrec.left_pad(histories, 10))[:, -1])
    expected = full.gather(1, candidates)
    assert torch.allclose(model.predict(histories, candidates), expected, atol=1e-5)


def cyclic_arithmetic_sequences(num_items: int, length: int) -> list[list[int]]:
    """Every run ``s, s + d, s + 2d, ...`` (modulo the catalog) for every start s and step d in {1, 2, 3}.

    The next item is fixed by the last TWO items (the step is their difference): reading only the last
    item gives at best one chance in three. Wrapping around the catalog makes every transition occur at
    every position in some run.
    """
    return [
        [(start + step * position) % num_items + 1 for position in range(length)]
        for step in (1, 2, 3)
        for start in range(num_items)
    ]


def top_1_accuracy(model, histories, targets) -> float:
    predictions = model.top_k(histories, k=1)[:, 0].tolist()
    return sum(p == t for p, t in zip(predictions, targets)) / len(targets)


def test_training_learns_a_deterministic_pattern():
    # Train on the first 6 items of each run, then predict the 7th from items 2..6: the final transition
    # was seen inside other runs, and the history has the same length (same positions) as in training.
    sequences = cyclic_arithmetic_sequences(num_items=20, length=7)
    train_sequences = [s[:-1] for s in sequences]
    histories, targets = [s[1:-1] for s in sequences], [s[-1] for s in sequences]
    model = tiny_model(num_items=20, dropout=0.0)
    before = top_1_accuracy(model, histories, targets)
    config = sasrec.SASRecTrainingConfig(learning_rate=5e-3, batch_size=16, max_epochs=150, patience=150, seed=0)
    summary = sasrec.train_sasrec(model, train_sequences, histories, targets, config)
    after = top_1_accuracy(model, histories, targets)
    assert before < 0.3
    assert after >= 0.95, f"top-1 accuracy {after:.2f} after {summary.epochs} epochs"
    assert summary.stop_reason == "max_epochs" and summary.train_loss_history[-1] < summary.train_loss_history[0]


def test_training_is_seeded():
    sequences = cyclic_arithmetic_sequences(num_items=15, length=5)
    histories, targets = [s[:-1] for s in sequences], [s[-1] for s in sequences]
    config = sasrec.SASRecTrainingConfig(batch_size=8, max_epochs=2, seed=3)
    runs = []
    for _ in range(2):
        model = tiny_model(num_items=15, dropout=0.3, seed=1)
        sasrec.train_sasrec(model, sequences, histories, targets, config)
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][name], runs[1][name]) for name in runs[0])


def test_length_bucketed_batches_cover_every_index_once_with_similar_lengths():
    lengths = [1 + (i * 7) % 13 for i in range(100)]
    batches = sasrec.length_bucketed_batches(lengths, batch_size=10, rng=random.Random(0), batches_per_bucket=10)
    assert sorted(i for batch in batches for i in batch) == list(range(100))
    assert all(len(batch) == 10 for batch in batches)
    assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) <= 2 for b in batches)
    assert batches != sasrec.length_bucketed_batches(lengths, 10, random.Random(1), batches_per_bucket=10)


def test_rejects_too_short_training_sequences():
    model = tiny_model()
    with pytest.raises(ValueError, match="at least 2 items"):
        sasrec.train_sasrec(model, [[1, 2], [3]], [[1]], [2], sasrec.SASRecTrainingConfig(max_epochs=1))


def test_top_k_rejects_a_history_that_leaves_too_few_items():
    with pytest.raises(ValueError, match="fewer than k=3"):
        tiny_model(num_items=6).top_k([[1, 2, 3, 4]], k=3)


def test_bench_rankings_use_item_ids_exclude_history_and_stay_within_candidates():
    item_ids = [f"item{n}" for n in range(100, 115)]  # ids that are not indices
    index_of = {item: position for position, item in enumerate(item_ids, start=1)}
    users = [
        {"items": ["item100", "item101", "item102"], "test_negatives": ["item110", "item111", "item112"]},
        {"items": ["item105", "item103"], "test_negatives": ["item100", "item114", "item109"]},
    ]
    rankings = bench_quality.sasrec_rankings(tiny_model(num_items=15), users, index_of, item_ids, batch_size=1)
    for user, sequential, topn in zip(users, rankings["sequential"], rankings["topn"]):
        history, target = user["items"][:-1], user["items"][-1]
        assert len(sequential) == bench_quality.TOP_K and set(sequential) <= set(item_ids) - set(history)
        assert sorted(topn) == sorted([target, *user["test_negatives"]])


def _stored_run(indexing: str, device: str, seed: int, ndcg: float) -> dict:
    metrics = {name: ndcg for name in bench_quality.METRICS}
    return {
        "dataset": "beauty", "indexing": indexing, "seed": seed, "test_users": 10, "test_user_sample": False,
        "machine": device, "date": "2026-11-26 13:00 UTC", "load_average_start_end": [1.0, 2.0],
        "metrics": {system: {task: metrics for task in bench_quality.TASKS}
                    for system in ("popularity", "leak_rule", "sasrec")},
        "sasrec": {"epochs": 3, "best_epoch": 2, "stop_reason": "early_stopping", "train_seconds": 60.0},
    }


def test_markdown_report_shows_seed_spread_and_baselines_once_per_indexing():
    runs = {
        "beauty/random/cuda/seed0": _stored_run("random", "cuda", 0, 0.04),
        "beauty/random/cuda/seed1": _stored_run("random", "cuda", 1, 0.06),
        "beauty/random/cpu/seed0": _stored_run("random", "cpu", 0, 0.03),
    }
    sequential_table = bench_quality.markdown_report({"runs": runs}).split("#### beauty: Top-N")[0]
    assert "| random | SASRec (GPU) | 0.0500 ± 0.0141 |" in sequential_table
    assert "| random | SASRec (CPU) | 0.0300 |" in sequential_table
    assert sequential_table.count("| random | popularity |") == 1
    assert "| sequential | RDRec (published) |" in sequential_table


def test_save_pretrained_and_from_pretrained_round_trip_in_safetensors(tmp_path):
    from transformers import AutoModel

    model = tiny_model(seed=4)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, sasrec.SASRecModel) and loaded.config.architecture() == model.config.architecture()
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_the_same_seed_fits_the_same_weights_and_another_seed_does_not():
    rng = random.Random(0)
    sequences = [[rng.randint(1, 30) for _ in range(rng.randint(4, 9))] for _ in range(120)]

    def fit(seed):
        config = sasrec.SASRecConfig(num_items=30, max_history_length=10, hidden_size=16, init_seed=seed)
        model, info = sasrec.fit_sasrec(sequences, config, sasrec.SASRecTrainingConfig(max_epochs=2, batch_size=16, seed=seed))
        return model.state_dict(), info

    first, info = fit(1)
    second, _ = fit(1)
    other, _ = fit(2)
    assert info["epochs"] == 2 and info["model"]["init_seed"] == 1 and info["cached"] is False
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not torch.equal(first["item_embeddings.weight"], other["item_embeddings.weight"])
