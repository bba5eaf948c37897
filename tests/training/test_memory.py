"""The memory estimate checked before training: its terms as pure functions, and `build_trainer` refusing a run whose
estimate exceeds the machine's memory before the SASRec start or any step."""

from __future__ import annotations

import pytest

from rdrec_hf.training import DataArguments, ModelArguments, RDRecTrainingArguments, build_trainer
from rdrec_hf.training.memory import (
    GIB, check_training_memory, largest_batch_positions, sasrec_start_bytes, student_training_bytes,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_catalog_softmax_at_a_million_items_is_a_gib_of_logits_per_copy():
    parts = student_training_bytes(num_parameters=70_000_000, embedding_parameters=66_000_000, batch_size=256,
                                   target_positions=1, softmax_width=1_000_000)
    assert parts["logits"] == 256 * 1_000_000 * 4 * 3  # logits, softmax, gradient: 2.9 GiB
    assert parts["parameters"] == 70_000_000 * 4 * 4  # weights, gradients, two AdamW moments
    sparse = student_training_bytes(70_000_000, 66_000_000, 256, 1, 2_048, sparse_embedding_gradients=True)
    assert sparse["parameters"] == (4_000_000 * 4 + 66_000_000 * 3) * 4 and sparse["logits"] < parts["logits"] / 400


def test_the_sasrec_start_with_the_full_softmax_scores_every_position_of_its_largest_batch_against_the_catalog():
    lengths = [9] * 200 + [60] * 3 + [1, 0]  # three users past the 50-item window; two too short to train on
    positions = largest_batch_positions(lengths, batch_size=128, max_history_length=50)
    assert positions == 3 * 50 + 125 * 8
    full = sasrec_start_bytes(1_000_000, 64, lengths, None)
    sampled = sasrec_start_bytes(1_000_000, 64, lengths, 1024)
    assert full["sasrec_scores"] == positions * 1_000_001 * 4 * 3 and sampled["sasrec_scores"] / GIB < 0.02
    assert full["sasrec_items"] == sampled["sasrec_items"]


def test_an_estimate_above_the_available_memory_is_refused_with_its_parts():
    check_training_memory({"parameters": GIB, "logits": GIB}, available=3 * GIB, device="cpu")
    with pytest.raises(ValueError, match=r"estimated 3.0 GiB \(parameters 1.0, logits 2.0\) and 2.0 GiB are available"):
        check_training_memory({"parameters": GIB, "logits": 2 * GIB}, available=2 * GIB, device="cpu")


def test_build_trainer_refuses_a_batch_that_cannot_fit_before_the_sasrec_start(tmp_path, shared, caplog):
    args = RDRecTrainingArguments(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=10**7, use_cpu=True, report_to="none",
        task_mixture="0:1:0:0", save_strategy="no", rank_eval=False,
    )  # the vocabulary softmax: 10^7 x 32k logits
    model_args = ModelArguments(model_preset="tiny", item_embedding_init="sasrec", item_embedding_init_max_epochs=1)
    with caplog.at_level("INFO"), pytest.raises(ValueError, match="does not fit the chosen softmax on cpu"):
        build_trainer(model_args, DataArguments(dataset="all_beauty", indexing="independent", user_limit=24), args)
    assert "SASRec start" not in caplog.text
