"""The local `evaluate` modules load offline and return exactly what the pure functions return."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rdrec_hf.evaluation.metric_modules import load_metric
from rdrec_hf.evaluation.ranking import ranking_metrics
from rdrec_hf.evaluation.text_metrics import text_generation_metrics


def test_ranking_module_matches_pure_function():
    rankings = [["3", "7", "1"], ["2", "9", "4"], ["5", "6", "8"]]
    targets = ["7", "2", "1"]
    metric = load_metric("rdrec_ranking")
    assert metric.compute(predictions=rankings, references=targets, ks=(1, 2, 3)) == ranking_metrics(
        rankings, targets, ks=(1, 2, 3)
    )


def test_ranking_module_accumulates_batches():
    metric = load_metric("rdrec_ranking")
    metric.add_batch(predictions=[["1", "2"]], references=["2"])
    metric.add_batch(predictions=[["4", "3"]], references=["4"])
    assert metric.compute(ks=(1, 2)) == ranking_metrics([["1", "2"], ["4", "3"]], ["2", "4"], ks=(1, 2))


def test_text_module_matches_pure_function():
    predictions = ["the cat is on the mat", "great smell", "great smell"]
    references = ["the cat sat on the mat", "smells great and lasts", "nice colour"]
    metric = load_metric("rdrec_text")
    assert metric.compute(predictions=predictions, references=references) == text_generation_metrics(
        predictions, references
    )


def test_unknown_metric_name_is_rejected():
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        load_metric("bleu")


@pytest.mark.slow  # a fresh interpreter imports torch, transformers and datasets: ~15-20 s on a loaded 2-core box
def test_modules_load_in_a_fresh_offline_process(tmp_path):
    # A fresh interpreter with the Hub switched off and an empty module cache: nothing may be fetched.
    # (The other tests load the modules offline too: conftest sets HF_HUB_OFFLINE before evaluate is imported.)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path)}
    code = (
        "from rdrec_hf.evaluation.metric_modules import load_metric\n"
        "print(load_metric('rdrec_ranking').compute(predictions=[['a', 'b']], references=['b'], ks=(1, 2)))\n"
        "print(load_metric('rdrec_text').compute(predictions=['a b'], references=['a b'])['bleu-1'])\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split("\n")[:2] == ["{'hr@1': 0.0, 'hr@2': 1.0, 'ndcg@2': 0.6309297535714575}", "100.0"]
