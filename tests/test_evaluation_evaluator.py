"""The evaluation loop: its configuration, the seeded user sample, exact candidate ranking."""

from __future__ import annotations

import pytest

from rdrec_hf.evaluation.evaluator import EvaluationConfig, rank_candidates, sample_users
from rdrec_hf.tasks import Task


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


def test_rank_candidates_sorts_by_score_and_breaks_ties_against_the_target():
    assert rank_candidates(["a", "b", "c"], [0.1, 0.9, 0.5], target="a") == ["b", "c", "a"]
    # "t" ties with "x": it goes after it, whatever the stored order.
    assert rank_candidates(["t", "x", "y"], [0.5, 0.5, 0.1], target="t") == ["x", "t", "y"]
    with pytest.raises(ValueError, match="2 candidates but 1 scores"):
        rank_candidates(["a", "b"], [0.1], target="a")
