"""End-to-end training of a tiny student on slices of the real data: full fine-tuning and LoRA."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import numpy as np
import torch
from safetensors.torch import load_file
from transformers import EarlyStoppingCallback

from helpers import load_script

from rdrec_hf import RDRecConfig, RDRecForConditionalGeneration, Task
from rdrec_hf.data import load_amazon_reviews, save_rec_dataset
from rdrec_hf.data import epoch_seed
from rdrec_hf.paths import all_beauty_reviews
from rdrec_hf.data.loading import load_training_data
from rdrec_hf.checkpoints import load_trained_student
from rdrec_hf.models.modeling_rdrec import restrict_labels
from rdrec_hf.training import (
    DataArguments,
    ModelArguments,
    RDRecTrainingArguments,
    build_student,
    build_trainer,
    load_student_tokenizer,
    train_rdrec,
    train_rdrec_seeds,
)

TINY = "d_model=32,d_ff=64,num_layers=2,num_decoder_layers=2,num_heads=2,d_kv=16"


def tiny_training_args(output_dir, **overrides) -> RDRecTrainingArguments:
    options = dict(
        output_dir=str(output_dir), max_steps=4, per_device_train_batch_size=4, per_device_eval_batch_size=8,
        learning_rate=5e-3, logging_steps=2, save_strategy="no", do_eval=True, max_source_length=192,
        max_target_length=24, eval_max_examples_per_task=8, rank_eval_max_users=3, rank_eval_num_beams=10,
        use_cpu=True, report_to="none", seed=3,
        task_mixture="1:1:0:1",  # the raw All_Beauty reviews have explanations, no rationales
    )
    return RDRecTrainingArguments(**{**options, **overrides})


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, shared):
    output_dir = tmp_path_factory.mktemp("full")
    model_args = ModelArguments(model_preset="tiny", config_overrides="dropout_rate=0.0")
    data_args = DataArguments(dataset="all_beauty", user_limit=24)  # raw reviews: explanations, no rationales
    trainer, metrics = train_rdrec(model_args, data_args, tiny_training_args(output_dir))
    return model_args, trainer, metrics, output_dir


def test_training_moves_the_trained_tasks_weights_only(full_run):
    model_args, trainer, _, _ = full_run
    # The vocabulary with the item tokens: the catalog's (the tokenizer holds their placeholder alone).
    initial = build_student(model_args, trainer.processing_class, seed=3, item_index=trainer.model.item_index).state_dict()
    trained = trainer.model.state_dict()
    changed = [name for name, tensor in trained.items() if not torch.equal(tensor, initial[name])]
    assert {"shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight", "lm_head.weight"} <= set(changed)
    # The mixture leaves out the rationale task (the raw All_Beauty reviews have none): its soft prompts never move.
    per_task = trainer.model.config.prompts_per_task
    prompts, initial_prompts = trained["task_prompt_embeddings.weight"], initial["task_prompt_embeddings.weight"]
    for task in Task:
        rows = slice(int(task) * per_task, (int(task) + 1) * per_task)
        moved = not torch.equal(prompts[rows], initial_prompts[rows])
        assert moved == (task is not Task.RATIONALE), task


def test_losses_are_logged_per_task(full_run):
    _, trainer, metrics, _ = full_run
    training_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(training_logs) == 2
    for entry in training_logs:
        assert {"loss_sequential", "loss_topn", "loss_explanation"} <= set(entry)
        assert "loss_rationale" not in entry
    # the rate since the previous log: none at the first, which has no previous one
    assert "steps_per_second" not in training_logs[0] and training_logs[1]["steps_per_second"] > 0
    task_losses = [metrics[f"eval_loss_{name}"] for name in ("sequential", "topn", "explanation")]
    assert metrics["eval_mean_task_loss"] == pytest.approx(sum(task_losses) / 3)
    for task in ("sequential", "topn"):
        for metric in ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10"):
            assert 0 <= metrics[f"eval_{task}_{metric}"] <= 1


def test_train_results_hold_what_the_budgets_count(full_run):
    """train_results.json: the item start's wall seconds (none here: the preset's own rows) and the CPU seconds of
    start and training."""
    _, _, metrics, output_dir = full_run
    saved = json.loads((output_dir / "train_results.json").read_text())
    assert saved["item_start_runtime"] == metrics["item_start_runtime"] < 1.0
    assert 0 < saved["train_cpu_runtime"] == metrics["train_cpu_runtime"]


def test_saved_model_reloads_with_catalog_and_card(full_run, shared):
    _, trainer, _, output_dir = full_run
    files = {path.name for path in output_dir.iterdir()}
    assert {"model.safetensors", "item_index.json", "README.md", "training_args.json", "training_curves.png"} <= files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl"))]
    reloaded = RDRecForConditionalGeneration.from_pretrained(str(output_dir))
    weights = load_file(str(output_dir / "model.safetensors"))
    assert torch.equal(weights["shared.weight"], trainer.model.state_dict()["shared.weight"])
    assert reloaded.item_index.item_ids == trainer.model.item_index.item_ids
    card = (output_dir / "README.md").read_text()
    assert "sequential, topn, explanation" in card and "Left out" not in card  # the mixture itself leaves rationale out
    assert "eval_mean_task_loss" in card
    run_card_usage(card)  # the card's usage example runs as written against the saved folder


def test_lora_trains_adapters_and_rdrec_embeddings_only(tmp_path, shared):
    base_dir = tmp_path / "base"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        RDRecForConditionalGeneration(RDRecConfig.from_preset("tiny", dropout_rate=0.0)).save_pretrained(base_dir)
    model_args = ModelArguments(model_name_or_path=str(base_dir), use_peft=True, lora_r=4)
    data_args = DataArguments(dataset="beauty", user_limit=16, indexing="random")  # text ids: no new token rows
    # The P5 beauty split has no reviews: the ranking tasks alone (text tasks would be refused by name).
    training_args = tiny_training_args(tmp_path / "lora", max_steps=2, do_eval=False, rank_eval=False,
                                       task_mixture="0:1:0:1")  # fmt: skip
    trainer, _ = train_rdrec(model_args, data_args, training_args)
    assert trainer.tasks == [Task.SEQUENTIAL, Task.TOPN]

    base_weights = load_file(str(base_dir / "model.safetensors"))
    trained = {name: tensor for name, tensor in trainer.model.named_parameters()}
    frozen = [name for name, tensor in trained.items() if not tensor.requires_grad]
    assert frozen and all("lora_" not in name and "modules_to_save" not in name for name in frozen)
    for name in frozen:  # e.g. base_model.model.encoder.block.0.layer.0.SelfAttention.q.base_layer.weight
        original = name.removeprefix("base_model.model.").replace(".base_layer", "").replace(".original_module", "")
        assert torch.equal(trained[name], base_weights[original]), name
    lora_b = [tensor for name, tensor in trained.items() if "lora_B" in name]
    assert lora_b and all(tensor.abs().sum() > 0 for tensor in lora_b)  # LoRA B starts at zero
    saved_copy = trained["base_model.model.task_prompt_embeddings.modules_to_save.default.weight"]
    assert not torch.equal(saved_copy, base_weights["task_prompt_embeddings.weight"])

    output_dir = tmp_path / "lora"
    assert {"adapter_model.safetensors", "adapter_config.json", "item_index.json", "README.md"} <= {
        path.name for path in output_dir.iterdir()
    }
    adapter_config = json.loads((output_dir / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4 and "task_prompt_embeddings" in adapter_config["modules_to_save"]
    card = (output_dir / "README.md").read_text()
    assert "LoRA r=4" in card
    run_card_usage(card)  # loads base + adapter, merges, restores the catalog, recommends

    merged, _ = load_trained_student(str(output_dir))
    assert len(merged.item_index) == len(trainer.model.get_base_model().item_index)
    assert not torch.equal(merged.state_dict()["task_prompt_embeddings.weight"], base_weights["task_prompt_embeddings.weight"])


def run_card_usage(card: str) -> dict:
    """Run the model card's Python usage example as written; returns its variables."""
    usage = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    namespace: dict = {}
    exec(compile(usage, "model card usage", "exec"), namespace)
    items = [rec.item_id for rec in namespace["recommended"]]
    assert len(set(items)) == 10 and not set(items) & set(namespace["history"])
    assert all(rec.explanation is not None for rec in namespace["recommended"])
    return namespace


def test_evaluation_recipe_reports_on_the_trained_model(full_run, tmp_path):
    _, _, _, model_dir = full_run
    recipe = load_script("recipes/evaluation.py", "recipe_evaluation")
    script_args, data_args, config = recipe.make_parser().parse_args_and_config([
        "--model_name_or_path", str(model_dir), "--output_dir", str(tmp_path), "--dataset", "all_beauty",
        "--user_limit", "24", "--tasks", "sequential", "explanation", "--max_users", "3",
        "--num_beams", "10", "--num_samples", "1", "--protocols", "project", "paper",
    ])
    results = recipe.main(script_args, data_args, config)
    for protocol, (metrics_file, report_file, title) in {
        "project": ("metrics.json", "report.md", "this project's protocol"),
        "paper": ("metrics_paper.json", "report_paper.md", "the paper's protocol"),
    }.items():
        assert results[protocol]["sequential"]["num_examples"] == 3
        assert 0 <= results[protocol]["sequential"]["model"]["ndcg@10"] <= 1 and "explanation" in results[protocol]
        saved = json.loads((tmp_path / metrics_file).read_text())
        assert {entry["evaluation_protocol"] for entry in saved.values()} == {protocol}  # never mixed
        report = (tmp_path / report_file).read_text()
        assert title in report.splitlines()[0] and "leak" in report.lower()
    assert "free beam search" in (tmp_path / "report_paper.md").read_text()


@pytest.mark.parametrize(
    "quantization, layer_class",
    [pytest.param({"load_in_4bit": True, "use_bnb_nested_quant": True}, "Linear4bit", marks=pytest.mark.slow),
     pytest.param({"load_in_8bit": True}, "Linear8bitLt", marks=pytest.mark.slow)],
    ids=["4bit", "8bit"],
)
def test_quantized_lora_trains(tmp_path, shared, quantization, layer_class):
    base_dir = tmp_path / "base"
    # bitsandbytes' CPU 4-bit kernels need input widths of at least one quantisation block (64).
    config = RDRecConfig.from_preset("tiny", d_model=64, d_ff=128, d_kv=32, dropout_rate=0.0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        RDRecForConditionalGeneration(config).save_pretrained(base_dir)
    model_args = ModelArguments(model_name_or_path=str(base_dir), use_peft=True, **quantization)
    training_args = tiny_training_args(tmp_path / "qlora", max_steps=2, do_eval=False, rank_eval=False)
    trainer, _ = train_rdrec(model_args, DataArguments(dataset="beauty", user_limit=8), training_args)
    attention = trainer.model.get_base_model().encoder.block[0].layer[0].SelfAttention
    assert type(attention.q.base_layer).__name__ == layer_class
    assert attention.q.lora_B["default"].weight.abs().sum() > 0
    assert (tmp_path / "qlora" / "adapter_model.safetensors").is_file()


def test_early_stopping_watches_the_mean_task_loss(tmp_path, shared):
    # A learning rate of 0 never improves the validation loss: the second evaluation stops training.
    training_args = tiny_training_args(
        tmp_path, max_steps=40, learning_rate=0.0, eval_strategy="steps", eval_steps=1, save_strategy="steps",
        save_steps=1, load_best_model_at_end=True, early_stopping_patience=1, rank_eval=False,
        task_mixture="1:1:0:0",
    )
    trainer, metrics = train_rdrec(
        ModelArguments(model_preset="tiny"), DataArguments(dataset="all_beauty", user_limit=12), training_args
    )
    assert trainer.state.global_step == 2
    evaluations = [entry for entry in trainer.state.log_history if "eval_mean_task_loss" in entry]
    assert trainer.state.best_metric == evaluations[0]["eval_mean_task_loss"]
    assert metrics["eval_mean_task_loss"] == pytest.approx(
        (metrics["eval_loss_sequential"] + metrics["eval_loss_explanation"]) / 2
    )


def test_logged_loss_is_a_mean_under_gradient_accumulation(tmp_path, shared):
    """T5's loss is a per-batch token mean: the trainer must average it over accumulated micro-batches (and
    processes), not add them up as for models that normalise by ``num_items_in_batch`` themselves."""
    training_args = tiny_training_args(
        tmp_path, max_steps=1, logging_steps=1, per_device_train_batch_size=2, gradient_accumulation_steps=3,
        do_eval=False, rank_eval=False, task_mixture="0:1:0:0",
    )
    # Also the path of a prepared dataset folder (what `rdrec-hf prepare` writes).
    save_rec_dataset(load_amazon_reviews(all_beauty_reviews()), tmp_path / "prepared")
    trainer, _ = train_rdrec(
        ModelArguments(model_preset="tiny"), DataArguments(dataset=str(tmp_path / "prepared"), user_limit=12),
        training_args,
    )
    first_log = trainer.state.log_history[0]
    # One task, so the per-example mean and the token mean differ only by the weighting of target lengths.
    assert first_log["loss"] == pytest.approx(first_log["loss_sequential"], rel=0.05)


def test_unknown_dataset_and_foreign_checkpoint_are_rejected(tmp_path, shared):
    with pytest.raises(ValueError, match="unknown dataset 'amazon'.*sports, a dataset folder or a raw source"):
        load_training_data(DataArguments(dataset="amazon"))
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path / "gpt2")
    model_args = ModelArguments(model_name_or_path=str(tmp_path / "gpt2"))
    with pytest.raises(ValueError, match="is a 'gpt2' model; the RDRec student starts from a T5 or an RDRec"):
        build_student(model_args, load_student_tokenizer(ModelArguments(model_preset="tiny")), seed=0)
    with pytest.raises(ValueError, match="is a 'gpt2' model"):
        load_trained_student(str(tmp_path / "gpt2"))


def test_each_epoch_draws_a_fresh_mixture(tmp_path, shared):
    training_args = tiny_training_args(
        tmp_path, max_steps=-1, num_train_epochs=2, per_device_train_batch_size=8, do_eval=False, rank_eval=False,
        task_mixture="0:1:0:1",
    )
    trainer = build_trainer(
        ModelArguments(model_preset="tiny"), DataArguments(dataset="all_beauty", user_limit=6), training_args
    )
    dataset = trainer.train_dataset
    first_epoch = [dataset[i]["input_ids"] for i in range(len(dataset))]
    trainer.train()
    assert dataset.epoch == 1  # told by the trainer at the start of the second epoch
    second_epoch = [dataset[i]["input_ids"] for i in range(len(dataset))]
    assert len(second_epoch) == len(first_epoch) and second_epoch != first_epoch
    # Epoch 0's draw is the plain seeded build: the same as without resampling.
    dataset.set_epoch(0)
    assert [dataset[i]["input_ids"] for i in range(len(dataset))] == first_epoch
    assert epoch_seed(3, 0) == 3 and len({epoch_seed(3, 1), epoch_seed(3, 2), epoch_seed(4, 1)}) == 3


def test_several_seeds_train_separate_runs_and_report_their_spread(tmp_path, shared):
    training_args = tiny_training_args(tmp_path, max_steps=1, do_eval=False, rank_eval=False, task_mixture="0:1:0:0")
    folders, aggregate = train_rdrec_seeds(
        ModelArguments(model_preset="tiny"), DataArguments(dataset="all_beauty", user_limit=8), training_args, [1, 2]
    )
    assert [Path(folder).name for folder in folders] == ["seed-1", "seed-2"]
    assert all((Path(folder) / "model.safetensors").is_file() for folder in folders)
    losses = aggregate["train_loss"]["values"]
    assert len(losses) == 2 and losses[0] != losses[1]  # different initialisations
    assert aggregate["train_loss"]["std"] > 0
    summary = json.loads((tmp_path / "seeds_metrics.json").read_text())
    assert summary["seeds"] == [1, 2] and summary["metrics"]["train_loss"]["mean"] == pytest.approx(sum(losses) / 2)
    with pytest.raises(ValueError, match="distinct"):
        train_rdrec_seeds(ModelArguments(model_preset="tiny"), DataArguments(), training_args, [1, 1])


def test_grouping_by_length_follows_each_epochs_draw(tmp_path, shared, t5_tokenizer):
    from rdrec_hf.data import build_training_dataset, load_amazon_reviews
    from rdrec_hf.paths import all_beauty_reviews
    from rdrec_hf.training.resampling import EpochLengthGroupedSampler

    data = load_amazon_reviews(all_beauty_reviews(), indexing="random")
    dataset, _ = build_training_dataset(data, t5_tokenizer, {"sequential": 1.0}, seed=0, mode="unit_counts")
    sampler = EpochLengthGroupedSampler(8, dataset)
    torch.manual_seed(0)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        order = list(sampler)
        lengths = dataset.lengths()[order]
        assert sorted(order) == list(range(len(dataset))) and lengths[0] == dataset.lengths().max()
        # each mega-batch (50 batches) is sorted by this epoch's lengths, longest first; the parent swaps the
        # longest example to the front, which may unsort one place
        assert (np.diff(lengths[:400]) <= 0).mean() > 0.95, epoch

    training_args = tiny_training_args(tmp_path, train_sampling_strategy="group_by_length", resample_each_epoch=True,
                                       do_eval=False, rank_eval=False, task_mixture_mode="unit_counts")
    trainer = build_trainer(ModelArguments(model_preset="tiny"), DataArguments(dataset="all_beauty", user_limit=6),
                            training_args)
    assert isinstance(trainer._get_train_sampler(), EpochLengthGroupedSampler)


def test_batches_of_the_papers_mixture_hold_its_shares(tmp_path, shared):
    """task_mixture_mode=batch_shares: the trainer reads the builder's interleaved order, so every batch holds
    each task's share up to one example (1:1:0:1, the raw reviews having no rationales: a third each of 10)."""
    from torch.utils.data import SequentialSampler

    training_args = tiny_training_args(
        tmp_path, per_device_train_batch_size=10, do_eval=False, rank_eval=False, task_mixture="1:1:0:1"
    )
    data_args = DataArguments(dataset="all_beauty", user_limit=40)
    trainer = build_trainer(ModelArguments(model_preset="tiny"), data_args, training_args)
    assert isinstance(trainer._get_train_sampler(), SequentialSampler)
    for step, batch in zip(range(5), trainer.get_train_dataloader()):
        tasks = batch["task_id"].tolist()
        assert all(abs(tasks.count(task) - 10 / 3) <= 1 for task in (Task.EXPLANATION, Task.SEQUENTIAL, Task.TOPN)), (
            step, tasks)


def test_time_budget_counts_what_the_start_spent():
    """A budget of 1 minute with 45 s already spent on the item start stops 15 s into training, not 60."""
    from transformers import TrainerControl, TrainerState

    from rdrec_hf.training.callbacks import TimeBudgetCallback

    now = [100.0]
    budget = TimeBudgetCallback(1.0, clock=lambda: now[0], name="benchmark_cpu_minutes", spent_seconds=45.0)
    state, control = TrainerState(), TrainerControl()
    budget.on_train_begin(None, state, control)
    for now[0], stops in ((110.0, False), (114.9, False), (115.0, True)):
        control.should_training_stop = False
        budget.on_step_end(None, state, control)
        assert control.should_training_stop is stops


def test_cumulative_early_stopping_never_resets_its_count(tmp_path):
    """early_stopping_count=cumulative (the paper's pretrain.py): an improvement does not reset the count."""
    from transformers import TrainerControl, TrainerState

    from rdrec_hf.training.callbacks import CumulativeEarlyStoppingCallback

    args = tiny_training_args(tmp_path, eval_strategy="epoch", early_stopping_patience=3,
                              early_stopping_count="cumulative", metric_for_best_model="loss")
    validation_losses = [5.0, 5.5, 4.0, 4.2, 3.0, 3.1]  # worse, better, worse, better, worse
    for callback, stops_after in ((CumulativeEarlyStoppingCallback(3), 6), (EarlyStoppingCallback(3), None)):
        state, control = TrainerState(), TrainerControl()
        stopped = None
        for evaluation, loss in enumerate(validation_losses, start=1):
            callback.on_evaluate(args, state, control, metrics={"eval_loss": loss})
            state.best_metric = loss if state.best_metric is None else min(state.best_metric, loss)
            if control.should_training_stop and stopped is None:
                stopped = evaluation
        assert stopped == stops_after, type(callback).__name__


def test_weight_decay_on_every_parameter_as_the_paper(tmp_path, shared):
    data_args = DataArguments(dataset="all_beauty", user_limit=6)
    decays = {}
    for everywhere in (False, True):
        args = tiny_training_args(tmp_path / str(everywhere), weight_decay=0.01, weight_decay_all_parameters=everywhere,
                                  do_eval=False, rank_eval=False)
        trainer = build_trainer(ModelArguments(model_preset="tiny"), data_args, args)
        optimizer = trainer.create_optimizer()
        decays[everywhere] = sum(p.numel() for group in optimizer.param_groups if group["weight_decay"] > 0
                                 for p in group["params"])
    total = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert decays[True] == total > decays[False]  # transformers' rule spares the layer norms


def test_an_unreachable_pretrained_checkpoint_names_the_fallback_preset(tmp_path, shared):
    model_args = ModelArguments(model_name_or_path="t5-small")
    with pytest.raises(ValueError, match=r"cannot read the checkpoint 't5-small'.*`model_preset: t5-small`.*never switched"):
        build_trainer(model_args, DataArguments(dataset="all_beauty", user_limit=6),
                      tiny_training_args(tmp_path, do_eval=False, rank_eval=False))


def test_catalog_softmax_trains_over_the_item_tokens_only(tmp_path, shared):
    """ranking_softmax=catalog: logits over the catalog's item tokens (independent ids), same items ranked."""

    training_args = tiny_training_args(tmp_path, task_mixture="0:1:0:1", ranking_softmax="catalog", do_eval=False,
                                       rank_eval=False, pad_to_multiple_of=16)  # fmt: skip
    data_args = DataArguments(dataset="all_beauty", indexing="independent", user_limit=24)
    trainer = build_trainer(ModelArguments(model_preset="tiny", config_overrides="dropout_rate=0.0"), data_args,
                            training_args)  # fmt: skip
    model, catalog = trainer.model, trainer._catalog_token_ids
    assert catalog.numel() == len(model.item_index) == 83 and bool((catalog[1:] > catalog[:-1]).all())
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    assert batch["input_ids"].shape[1] % 16 == 0 and batch["labels"].shape[1] % 16 == 0  # few shapes to compile
    full = model(**batch)
    restricted = model(**batch, output_token_ids=catalog)
    # The logits are the catalog's columns of the full ones; the loss normalises over them alone.
    torch.testing.assert_close(restricted.logits, full.logits[..., catalog], atol=1e-5, rtol=1e-5)
    labels = restrict_labels(batch["labels"], catalog)
    expected = torch.nn.functional.cross_entropy(full.logits[..., catalog].flatten(0, 1), labels.flatten())
    torch.testing.assert_close(restricted.loss, expected, atol=1e-5, rtol=1e-5)
    assert restricted.loss < full.loss  # 83 tokens compete instead of the whole vocabulary
    before = model.lm_head.weight.detach().clone()
    trainer.train()
    moved = (model.lm_head.weight.detach() - before).abs().sum(dim=1) > 0
    assert moved[catalog].all()
    with pytest.raises(ValueError, match="one-token item ids"):
        build_trainer(ModelArguments(model_preset="tiny"), DataArguments(dataset="all_beauty", user_limit=6, indexing="random"),
                      tiny_training_args(tmp_path, task_mixture="0:1:0:0", ranking_softmax="catalog"))
    with pytest.raises(ValueError, match="not among output_token_ids"):
        restrict_labels(torch.tensor([[int(catalog[0]), 5]]), catalog)


def test_catalog_softmax_with_text_tasks_normalises_each_row_over_its_own_tokens(tmp_path, trained_student):
    """One mixture, two normalisations: in the same batch the ranking rows normalise over the catalog's item
    tokens and the text rows over the vocabulary (without the item tokens when `text_softmax_excludes_items`);
    the SASRec start and teacher train with them, and the checkpoint records its four tasks."""
    training_args = tiny_training_args(tmp_path, task_mixture="1:1:1:1", ranking_softmax="catalog", do_eval=False,
                                       rank_eval=False, per_device_train_batch_size=10,
                                       recommender_distillation_weight=0.5)  # fmt: skip
    model_args = ModelArguments(model_preset="tiny", config_overrides="dropout_rate=0.0", item_embedding_init="sasrec",
                                item_embedding_init_max_epochs=1)  # fmt: skip
    trainer = build_trainer(model_args, DataArguments(dataset=str(trained_student[1])), training_args)
    model, catalog = trainer.model, trainer._catalog_token_ids
    batch = trainer.data_collator(trainer.train_dataset.__getitems__(list(range(10))))
    assert batch.pop("history_items").any()  # the teacher's input
    ranking = torch.isin(batch["task_id"], torch.tensor([int(Task.SEQUENTIAL), int(Task.TOPN)]))
    assert ranking.any() and (~ranking).any()
    full = model(**batch)
    for exclude in (False, True):
        mixed = model(**batch, output_token_ids=catalog, output_token_rows=ranking,
                      other_rows_exclude_output_tokens=exclude)  # fmt: skip
        text_logits = full.logits.index_fill(-1, catalog, float("-inf")) if exclude else full.logits
        labels = batch["labels"]
        expected = torch.where(
            ranking[:, None],
            torch.nn.functional.cross_entropy(full.logits[..., catalog].transpose(1, 2),
                                              restrict_labels(labels.masked_fill(~ranking[:, None], -100), catalog),
                                              reduction="none"),
            torch.nn.functional.cross_entropy(text_logits.transpose(1, 2), labels.masked_fill(ranking[:, None], -100),
                                              reduction="none"),
        )  # fmt: skip
        torch.testing.assert_close(mixed.token_losses, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(mixed.loss, expected.sum() / (labels != -100).sum(), atol=1e-5, rtol=1e-5)
        # The logits are the item tokens' (the teacher's columns); the text rows' vocabulary logits stay internal.
        torch.testing.assert_close(mixed.logits, full.logits[..., catalog])
    # A batch of text rows alone has no history column: the sequential loss weighting stays, with no teacher term.
    text_rows = [row for row in range(10) if not ranking[row]]
    text_batch = trainer.data_collator(trainer.train_dataset.__getitems__(text_rows))
    assert text_batch["history_items"].shape[1] == 0
    model.eval()
    plain = model(**{key: value for key, value in text_batch.items() if key != "history_items"}).loss
    torch.testing.assert_close(trainer.compute_loss(model, dict(text_batch)), 0.5 * plain)  # (1 - 0.5) * the loss
    model.train()
    trainer.train()
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert {"loss_sequential", "loss_topn", "loss_explanation", "loss_rationale"} <= logged
    trainer.save_model()
    assert RDRecConfig.from_pretrained(tmp_path).trained_tasks == ["sequential", "topn", "explanation", "rationale"]


def test_text_tasks_without_their_data_are_refused_by_name(tmp_path, shared):
    """All_Beauty's raw reviews have explanations but no rationales: the rationale task is named with its columns."""
    with pytest.raises(ValueError, match=r"trains rationale, but dataset all_beauty has no training reviews with "
                                         r"item_attribute, user_preference"):  # fmt: skip
        build_trainer(ModelArguments(model_preset="tiny"), DataArguments(dataset="all_beauty", user_limit=24),
                      tiny_training_args(tmp_path, task_mixture="1:1:1:1"))


def test_distillation_loss_is_the_tempered_kl():
    from rdrec_hf.training.rdrec_trainer import distillation_loss

    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    torch.testing.assert_close(distillation_loss(teacher + 7.0, teacher), torch.zeros(2))  # a shift is the same softmax
    student = torch.tensor([[0.0, 1.0, 0.0], [1.0, -2.0, 0.0]])
    for temperature in (1.0, 2.0):
        p = torch.softmax(teacher / temperature, -1)
        expected = (p * (p.log() - torch.log_softmax(student / temperature, -1))).sum(-1) * temperature**2
        torch.testing.assert_close(distillation_loss(student, teacher, temperature), expected)
    assert (distillation_loss(student, teacher) > 0).all()


def test_recommender_distillation_reads_the_prompts_history_in_the_students_columns(tmp_path, shared):
    """The collator hands over each sequential prompt's history (left-padded positions + 1, zeros for top-N);
    the teacher's catalog scores are laid in the student's token-sorted columns, so a student that scores as
    the teacher has no distillation loss and one with the columns shuffled has some."""
    training_args = tiny_training_args(tmp_path, task_mixture="0:1:0:1", ranking_softmax="catalog", do_eval=False,
                                       rank_eval=False, recommender_distillation_weight=0.5)  # fmt: skip
    data_args = DataArguments(dataset="all_beauty", indexing="independent", user_limit=24)
    model_args = ModelArguments(model_preset="tiny", config_overrides="dropout_rate=0.0", item_embedding_init="sasrec",
                                item_embedding_init_max_epochs=1)  # fmt: skip
    trainer = build_trainer(model_args, data_args, training_args)
    mixture, teacher = trainer.train_dataset, trainer.recommender_teacher
    assert teacher is not None and not teacher.training
    batch = trainer.data_collator(mixture.__getitems__(list(range(len(mixture)))))
    history = batch["history_items"]
    catalog = trainer.model.item_index
    training_parts = {tuple(position + 1 for position in catalog.positions(items[:-2]))
                      for items in trainer.rec_data["users"]["items"]}
    for row in range(len(mixture)):
        listed = mixture.current.history_items.row(row) + 1
        expected = [0] * (history.shape[1] - len(listed)) + listed.tolist()
        assert history[row].tolist() == expected
        assert len(listed) > 0  # sequential: the listed history; top-N: the user's training items
        if int(batch["task_id"][row]) == int(Task.TOPN):  # some user's whole training part
            assert tuple(listed.tolist()) in training_parts
    with torch.no_grad():
        positions = teacher.item_scores(teacher(history)[:, -1])[:, 1:]  # column p: catalog position p
    tokens = torch.tensor([ids[0] for ids in trainer.model.item_index.token_ids])
    columns = torch.searchsorted(trainer._catalog_token_ids, tokens)
    student = torch.empty_like(positions)
    student[:, columns] = positions
    assert float(trainer._distillation_loss(student, history)) < 1e-6
    shuffled = student[:, torch.randperm(student.shape[1])]
    assert float(trainer._distillation_loss(shuffled, history)) > 1e-3
    # The top-N rows are distilled only with distill_topn: the trainer passes the rows of the distilled tasks.
    topn = batch["task_id"] == int(Task.TOPN)
    assert topn.any() and float(trainer._distillation_loss(shuffled, history, topn)) > 1e-3
    torch.testing.assert_close(trainer._distillation_loss(shuffled, history, ~topn),
                               trainer._distillation_loss(shuffled[~topn], history[~topn]))
    assert torch.equal(trainer._distilled_task_ids, torch.tensor([int(Task.SEQUENTIAL)]))
    trainer.train()  # the combined loss trains
    # Over the whole vocabulary (a mixture with text tasks), the student's catalog columns are distilled.
    vocabulary = build_trainer(model_args, data_args, tiny_training_args(
        tmp_path, task_mixture="0:1:0:1", do_eval=False, rank_eval=False, recommender_distillation_weight=0.5))
    assert vocabulary._catalog_token_ids is None and torch.equal(vocabulary._distilled_token_ids, trainer._catalog_token_ids)
    vocabulary.train()
    with pytest.raises(ValueError, match="needs a recommender_teacher \\(item_embedding_init: sasrec\\)"):
        build_trainer(ModelArguments(model_preset="tiny"), data_args, training_args)
    with pytest.raises(ValueError, match="sasrec needs an item token per item"):  # no teacher without item tokens
        build_trainer(model_args, DataArguments(dataset="all_beauty", indexing="random", user_limit=24),
                      tiny_training_args(tmp_path, task_mixture="0:1:0:0", recommender_distillation_weight=0.5))
