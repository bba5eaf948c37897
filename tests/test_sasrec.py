"""The SASRec baseline of benchmarks/: causal, padding-invariant, and it learns a deterministic pattern."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest
import torch

# benchmarks/ is a folder of scripts, not a package: load the module from its file.
_SASREC_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "sasrec.py"
_spec = importlib.util.spec_from_file_location("benchmarks_sasrec", _SASREC_PATH)
sasrec = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = sasrec  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(sasrec)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models are faster on one thread, and the machine's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(num_items: int = 30, dropout: float = 0.0, seed: int = 0) -> "sasrec.SASRec":
    config = sasrec.SASRecConfig(
        num_items=num_items, max_length=10, hidden_size=32, num_blocks=2, num_heads=2, dropout=dropout, init_seed=seed
    )
    return sasrec.SASRec(config).eval()


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
    top = sasrec.top_k_items(model, histories, k=3)
    assert sorted(top[0].tolist()) == [4, 5, 6]
    assert sasrec.PADDING_INDEX not in top[1].tolist() and 6 not in top[1].tolist()


def test_candidate_scores_match_full_catalog_scores():
    model = tiny_model()
    histories = [[3, 4, 5], [9]]
    candidates = torch.tensor([[1, 2, 7], [8, 30, 12]])
    with torch.no_grad():
        full = model.item_scores(model(sasrec.left_pad(histories, 10))[:, -1])
    expected = full.gather(1, candidates)
    assert torch.allclose(sasrec.candidate_scores(model, histories, candidates), expected, atol=1e-5)


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
    predictions = sasrec.top_k_items(model, histories, k=1)[:, 0].tolist()
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
