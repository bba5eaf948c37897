"""Fixtures shared by the whole suite: the real shared data (never skipped) and the T5 vocabulary."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rdrec_hf.paths import shared_dir, t5_tokenizer_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared():
    """The shared data folder. A missing folder fails the run: CI must not pass by skipping."""
    return shared_dir()


@pytest.fixture(scope="session")
def t5_tokenizer(shared):
    """The real T5 vocabulary (32,100 tokens) as a fast tokenizer."""
    # The folder holds only spiece.model, so AutoTokenizer cannot tell the class; T5Tokenizer is fast in v5.
    from transformers import T5Tokenizer

    return T5Tokenizer.from_pretrained(str(t5_tokenizer_dir()))


TEACHER_NOTE = "teacher rationale written by the test fixture"


@pytest.fixture(scope="session")
def trained_student(tmp_path_factory, shared):
    """``(model folder, dataset folder)``: a tiny student trained a few steps on All_Beauty (independent ids),
    the dataset holding teacher rationales for the reviews of items 1-5."""
    from rdrec_hf.data import load_amazon_reviews, save_rec_dataset
    from rdrec_hf.paths import all_beauty_reviews
    from rdrec_hf.training import DataArguments, ModelArguments, RDRecTrainingArguments, train_rdrec

    root = tmp_path_factory.mktemp("trained_student")
    data = load_amazon_reviews(all_beauty_reviews(), indexing="independent", seed=0)

    def with_rationales(row):
        if row["split"] == "train" and int(row["item_id"]) <= 5:
            return {"user_preference": f"The user likes item {row['item_id']} ({TEACHER_NOTE}).",
                    "item_attribute": f"Item {row['item_id']} is a beauty product ({TEACHER_NOTE}).",
                    "rationale_status": "ok"}
        return {}

    data["reviews"] = data["reviews"].map(with_rationales)
    save_rec_dataset(data, root / "data")
    training_args = RDRecTrainingArguments(
        output_dir=str(root / "model"), max_steps=6, per_device_train_batch_size=8, learning_rate=5e-3,
        save_strategy="no", eval_strategy="no", rank_eval=False, max_source_length=192, max_target_length=24,
        use_cpu=True, report_to="none", seed=3, logging_steps=3,
    )
    train_rdrec(ModelArguments(model_preset="tiny"), DataArguments(dataset=str(root / "data")), training_args)
    return root / "model", root / "data"


@pytest.fixture(autouse=True)
def no_command_log_handler_outlives_its_test():
    """A command run in-process (``main(["train", ...])``) installs its log handler on the root logger; removed
    after each test so that a later test's library calls do not log into its captured stdout (with ``CI`` set,
    transformers propagates its records to the root logger: the CI failure of stop 41)."""
    import logging

    from rdrec_hf.scripts import StandardStreamHandler

    yield
    root = logging.getLogger()
    for handler in [handler for handler in root.handlers if isinstance(handler, StandardStreamHandler)]:
        root.removeHandler(handler)


@pytest.fixture
def one_thread():
    """Tiny models are faster on one thread, and the machine's cores are shared (`usefixtures` in a module)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
