"""A million items end to end through the command line (issue 38): `prepare`, `train` (sampled softmax, sparse
embedding gradients), `recommend` and `evaluate` on a seeded synthetic P5 folder of 1,000,000 items, a tiny
student and two steps. Slow (minutes, several GiB): `make test-slow`."""

from __future__ import annotations

import json

import pytest
from bench_catalog_scaling import write_synthetic_p5

from rdrec_hf import ItemIndex
from rdrec_hf.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

NUM_ITEMS = 1_000_000


def test_prepare_train_recommend_and_evaluate_a_million_items(tmp_path, shared, capsys):
    source = write_synthetic_p5(tmp_path / "p5", NUM_ITEMS, num_users=40_000, zipf_per_user=5, seed=0)
    prepared, model = tmp_path / "prepared", tmp_path / "model"
    assert main(["prepare", "--dataset", str(source), "--output", str(prepared)]) == 0
    main(["train", "--dataset", str(prepared), "--model_preset", "tiny", "--task_mixture", "0:1:0:0",
          "--ranking_softmax", "sampled", "--sampled_softmax_negatives", "256", "--sparse_embedding_gradients", "true",
          "--max_steps", "2", "--per_device_train_batch_size", "8", "--save_strategy", "no", "--rank_eval", "false",
          "--output_dir", str(model), "--report_to", "none"])
    catalog = ItemIndex.load(model / "item_index.json")
    assert len(catalog) == NUM_ITEMS
    capsys.readouterr()
    history = catalog.item_ids[:3]
    assert main(["recommend", "--model_name_or_path", str(model), "--history", *history, "-k", "5", "--json"]) == 0
    ids = [row["item_id"] for row in json.loads(capsys.readouterr().out)]
    assert len(set(ids)) == 5 and not set(ids) & set(history) and all(item in catalog for item in ids)
    assert main(["evaluate", "--model_name_or_path", str(model), "--dataset", str(prepared), "--tasks", "sequential",
                 "--max_users", "20", "--num_beams", "10", "--output_dir", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["sequential"]["num_examples"] == 20 and 0.0 <= metrics["sequential"]["model"]["ndcg@10"] <= 1.0
