"""The training argument dataclasses: parsing, defaults and the combinations they reject."""

from __future__ import annotations

import pytest
from trl import TrlParser

from rdrec_hf import Task
from rdrec_hf.training import (
    DataArguments,
    ModelArguments,
    RDRecTrainingArguments,
    parse_config_overrides,
    parse_task_mixture,
)


def test_task_mixture_follows_the_papers_order():
    assert parse_task_mixture("1:2:0:0.5") == {
        Task.EXPLANATION: 1.0, Task.SEQUENTIAL: 2.0, Task.RATIONALE: 0.0, Task.TOPN: 0.5,
    }


@pytest.mark.parametrize(
    "text, message",
    [("1:1:1", "must have 4 ratios"), ("1:1:x:1", "must be a number"), ("1:-1:1:1", "must not be negative"),
     ("0:0:0:0", "at least one ratio must be positive"), (219661, "must have 4 ratios")],
)
def test_bad_task_mixtures_are_rejected(text, message):
    # 219661 is what YAML makes of an unquoted 1:1:1:1 (a base-60 number)
    with pytest.raises(ValueError, match=message):
        parse_task_mixture(text)


def test_config_overrides_parse_literals():
    assert parse_config_overrides("d_model=32, num_layers=2,dropout_rate=0.0,feed_forward_proj=gated-gelu") == {
        "d_model": 32, "num_layers": 2, "dropout_rate": 0.0, "feed_forward_proj": "gated-gelu",
    }
    assert parse_config_overrides(None) == {}
    with pytest.raises(ValueError, match="key=value"):
        parse_config_overrides("d_model32")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of"),
        ({"model_preset": "tiny", "model_name_or_path": "x"}, "exactly one of"),
        ({"model_preset": "tiny", "lora_r": 4}, "lora_r given without `use_peft`"),
        ({"model_preset": "tiny", "use_peft": True}, "LoRA adapts a trained checkpoint"),
        ({"model_name_or_path": "x", "use_peft": True, "load_in_8bit": True, "load_in_4bit": True}, "choose one"),
        ({"model_name_or_path": "x", "load_in_4bit": True}, "add `use_peft`"),
        ({"model_name_or_path": "x", "use_peft": True, "load_in_8bit": True, "use_bnb_nested_quant": True},
         "needs `load_in_4bit`"),
        ({"model_name_or_path": "x", "use_peft": True, "lora_dropout": 1.5}, "lora_dropout"),
        ({"model_preset": "tiny", "config_overrides": "oops"}, "key=value"),
    ],
)
def test_model_arguments_reject_bad_combinations(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelArguments(**kwargs)


def test_lora_defaults_fill_in_only_with_peft():
    args = ModelArguments(model_name_or_path="x", use_peft=True, load_in_4bit=True)
    assert (args.lora_r, args.lora_alpha, args.lora_target_modules) == (8, 16, ["q", "v"])
    assert args.quantized


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task_mixture": "0:0:0:0"}, "at least one ratio"),
        ({"max_source_length": 0}, "max_source_length must be positive"),
        ({"num_negatives": 0}, "num_negatives must be positive"),
        ({"pad_to_multiple_of": 0}, "pad_to_multiple_of must be positive"),
        ({"sequential_targets": 0}, "sequential_targets must be positive"),
        ({"early_stopping_patience": 2}, "needs an evaluation"),
        ({"eval_max_examples_per_task": 0}, "eval_max_examples_per_task"),
        ({"text_softmax_excludes_items": True}, "needs ranking_softmax=catalog"),
        ({"distill_topn": True}, "distill_topn needs recommender_distillation_weight > 0"),
        ({"ranking_softmax": "items"}, "not a valid RankingSoftmax"),
        ({"train_sampling_strategy": "group_by_length"}, "batch_shares fixes every batch's tasks"),
        ({"task_mixture_mode": "per_batch"}, "not a valid MixtureMode"),
        ({"early_stopping_count": "cumulative"}, "cumulative needs early_stopping_patience"),
    ],
)
def test_training_arguments_reject_bad_values(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        RDRecTrainingArguments(output_dir=str(tmp_path), **kwargs)


def test_early_stopping_watches_the_mean_task_loss(tmp_path):
    args = RDRecTrainingArguments(
        output_dir=str(tmp_path), eval_strategy="steps", eval_steps=5, early_stopping_patience=2,
        load_best_model_at_end=True, save_steps=5,
    )
    assert args.metric_for_best_model == "mean_task_loss" and args.greater_is_better is False
    assert args.remove_unused_columns is False and args.ddp_find_unused_parameters is False


def test_command_line_overrides_yaml(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        f'model_preset: tiny\ndataset: beauty\ntask_mixture: "0:1:0:1"\nlearning_rate: 1.0e-3\n'
        f"output_dir: {tmp_path / 'run'}\nuser_limit: 5\n"
    )
    parser = TrlParser((ModelArguments, DataArguments, RDRecTrainingArguments))
    model_args, data_args, training_args = parser.parse_args_and_config(
        ["--config", str(config), "--user_limit", "7", "--indexing", "random"]
    )
    assert model_args.model_preset == "tiny"
    assert (data_args.dataset, data_args.user_limit, data_args.indexing.value) == ("beauty", 7, "random")
    assert training_args.learning_rate == 1e-3
    assert training_args.task_weights[Task.SEQUENTIAL] == 1.0 and training_args.task_weights[Task.EXPLANATION] == 0
