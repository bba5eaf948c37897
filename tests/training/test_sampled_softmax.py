"""`ranking_softmax: sampled`: the corrected sampled softmax as pure functions, in the model's forward, in the trainer
(shared seeded negatives, the catalog softmax in evaluation, distillation over the sample) and in SASRec."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import seeded_model

from rdrec_hf.models.modeling_rdrec import draw_shared_negatives, restrict_labels, sampled_softmax_loss
from rdrec_hf.models.sasrec import SASRecConfig, SASRecModel, SASRecTrainingConfig, left_pad, train_sasrec
from rdrec_hf.training import DataArguments, ModelArguments, build_trainer
from rdrec_hf.training.rdrec_config import RankingSoftmax, RDRecTrainingArguments
from rdrec_hf.training.rdrec_trainer import distillation_loss, popularity_distribution

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------ pure functions
def test_with_the_whole_catalog_once_and_uniform_q_it_is_the_full_softmax():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 40, generator=generator)
    labels = torch.randint(0, 40, (6,), generator=generator)
    log_q = torch.zeros(40)  # log(num_draws * 1/N) - log(1) with the N items drawn once each
    hits = torch.arange(40)[None, :] == labels[:, None]
    loss = sampled_softmax_loss(logits.gather(1, labels[:, None])[:, 0], logits, torch.zeros(6), log_q, hits)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels, reduction="none"))
    # A constant correction of positive and negatives alike (uniform q, any number of draws) changes nothing.
    shifted = sampled_softmax_loss(logits.gather(1, labels[:, None])[:, 0], logits, torch.full((6,), 2.5),
                                   log_q + 2.5, hits)
    torch.testing.assert_close(shifted, loss)
    # Without masking the accidental hits the positive would count twice in the normaliser.
    assert (sampled_softmax_loss(logits.gather(1, labels[:, None])[:, 0], logits, torch.zeros(6), log_q) > loss).all()
    # A column with log q = +inf is no negative.
    keep = torch.arange(40) < 20
    labels_low = labels % 20
    masked = sampled_softmax_loss(logits.gather(1, labels_low[:, None])[:, 0], logits, torch.zeros(6),
                                  torch.where(keep, 0.0, math.inf), torch.arange(40)[None, :] == labels_low[:, None])
    torch.testing.assert_close(masked, F.cross_entropy(logits[:, :20], labels_low, reduction="none"))


def test_shared_negatives_are_seeded_and_their_correction_estimates_the_normaliser():
    draws = [draw_shared_negatives(50, 30, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(draws[0][0], draws[1][0]) and torch.equal(draws[0][1], draws[1][1])
    indices, log_q = draws[0]
    assert bool((indices[1:] > indices[:-1]).all()) and indices.numel() <= 30
    # Popularity: sum_j exp(z_j - log_q_j) is an unbiased estimate of sum_i exp(z_i) (an item drawn c times counts c).
    probabilities = popularity_distribution(torch.arange(50) % 7, alpha=1.0)
    torch.testing.assert_close(probabilities.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert probabilities[6] / probabilities[0] == pytest.approx(7.0)
    z = torch.randn(50, generator=torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(2)
    estimates = []
    for _ in range(2000):
        indices, log_q = draw_shared_negatives(50, 10, generator, probabilities)
        estimates.append(float((z[indices] - log_q).exp().sum()))
    assert sum(estimates) / len(estimates) == pytest.approx(float(z.exp().sum()), rel=0.03)
    assert torch.allclose(popularity_distribution(torch.arange(50), 0.0), torch.full((50,), 0.02, dtype=torch.float64))


def test_masked_distillation_is_the_kl_over_the_subset():
    generator = torch.Generator().manual_seed(3)
    student, teacher = torch.randn(3, 8, generator=generator), torch.randn(3, 8, generator=generator)
    mask = torch.rand(3, 8, generator=generator) > 0.4
    mask[:, 0] = True
    expected = torch.stack([distillation_loss(student[row, mask[row]][None], teacher[row, mask[row]][None], 2.0)[0]
                            for row in range(3)])
    torch.testing.assert_close(distillation_loss(student, teacher, 2.0, mask), expected)


def test_the_models_sampled_forward_is_the_catalog_forward_with_the_whole_catalog():
    model = seeded_model(seed=2, vocab_size=32228)
    catalog = torch.arange(32100, 32200)
    generator = torch.Generator().manual_seed(0)
    batch = {"input_ids": torch.randint(5, 3000, (4, 9), generator=generator), "task_id": torch.tensor([0, 1, 0, 1]),
             "labels": catalog[torch.randint(0, 100, (4, 2), generator=generator)]}
    full = model(**batch, output_token_ids=catalog)
    zeros = torch.zeros(100)
    sampled = model(**batch, output_token_ids=catalog, output_token_log_q=zeros, output_token_target_log_q=zeros)
    torch.testing.assert_close(sampled.loss, full.loss)
    torch.testing.assert_close(sampled.logits, full.logits)  # the logits stay uncorrected
    # Half of the columns not drawn (+inf): each position normalises over the drawn half and its own label.
    drawn = torch.arange(100) % 2 == 0
    half = model(**batch, output_token_ids=catalog, output_token_log_q=torch.where(drawn, 0.0, math.inf),
                 output_token_target_log_q=zeros)
    columns = restrict_labels(batch["labels"], catalog)
    allowed = drawn | (torch.arange(100) == columns[..., None])
    expected = F.cross_entropy(full.logits.masked_fill(~allowed, float("-inf")).transpose(1, 2), columns,
                               reduction="none")
    torch.testing.assert_close(half.token_losses, expected)
    with pytest.raises(ValueError, match="give both"):
        model(**batch, output_token_ids=catalog, output_token_log_q=zeros)


# ------------------------------------------------------------------------------------------ options
@pytest.mark.parametrize(("overrides", "message"), [
    ({"sampled_softmax_negatives": 0}, "sampled_softmax_negatives must be at least 1"),
    ({"sampled_softmax_alpha": -1.0}, "sampled_softmax_alpha must be non-negative"),
    ({"sampled_softmax_distribution": "zipf"}, "not a valid SampledNegatives"),
    ({"ranking_softmax": "sampled", "text_softmax_excludes_items": True}, "needs ranking_softmax=catalog"),
])
def test_bad_options_are_rejected(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        RDRecTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", **overrides)
    assert RDRecTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none",
                                  ranking_softmax="sampled").ranking_softmax is RankingSoftmax.SAMPLED


# ------------------------------------------------------------------------------------------ the trainer
def sampled_args(output_dir, **overrides) -> RDRecTrainingArguments:
    options = dict(
        output_dir=str(output_dir), max_steps=3, per_device_train_batch_size=6, per_device_eval_batch_size=8,
        learning_rate=5e-3, logging_steps=3, save_strategy="no", do_eval=False, rank_eval=False, max_source_length=192,
        max_target_length=24, use_cpu=True, report_to="none", seed=3, task_mixture="0:1:0:1",
        ranking_softmax="sampled", sampled_softmax_negatives=16,
    )
    return RDRecTrainingArguments(**{**options, **overrides})


BEAUTY = dict(dataset="all_beauty", indexing="independent", user_limit=24)


def test_the_trainer_draws_seeded_shared_negatives_and_evaluates_over_the_catalog(tmp_path, shared):
    model_args = ModelArguments(model_preset="tiny", config_overrides="dropout_rate=0.0")
    trainer = build_trainer(model_args, DataArguments(**BEAUTY), sampled_args(tmp_path))
    catalog = trainer._catalog_token_ids
    assert catalog.numel() == 83
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(6)])
    inputs = trainer._sampled_softmax_inputs(batch["labels"], None)
    tokens, log_q = inputs["output_token_ids"], inputs["output_token_log_q"]
    targets = batch["labels"][batch["labels"] != -100].unique()
    assert torch.isin(targets, tokens).all() and torch.isin(tokens, catalog).all()
    assert bool((tokens[1:] > tokens[:-1]).all())
    drawn = log_q.isfinite()
    assert 0 < int(drawn.sum()) <= 16 and torch.isin(tokens[~drawn], targets).all()  # undrawn columns: targets
    torch.testing.assert_close(inputs["output_token_target_log_q"], torch.full((tokens.numel(),), math.log(16 / 83)))
    # The same seed draws the same negatives.
    again = build_trainer(model_args, DataArguments(**BEAUTY), sampled_args(tmp_path))
    assert torch.equal(again._sampled_softmax_inputs(batch["labels"], None)["output_token_ids"], tokens)
    # Training uses the sample, evaluation the catalog softmax.
    model = trainer.model
    model.eval()
    eval_loss = trainer.compute_loss(model, dict(batch))
    torch.testing.assert_close(eval_loss, model(**batch, output_token_ids=catalog).loss)
    model.train()
    before = model.lm_head.weight.detach().clone()
    trainer.train()
    moved = (model.lm_head.weight.detach() - before).abs().sum(dim=1) > 0
    assert moved[catalog].any()
    assert any("loss_sequential" in entry for entry in trainer.state.log_history)


def test_with_text_tasks_the_ranking_rows_are_sampled_and_the_text_rows_keep_the_vocabulary(tmp_path, shared):
    trainer = build_trainer(ModelArguments(model_preset="tiny", config_overrides="dropout_rate=0.0"),
                            DataArguments(**BEAUTY), sampled_args(tmp_path, task_mixture="1:1:0:1",
                                                                  per_device_train_batch_size=10))
    assert trainer._per_row_softmax
    batch = trainer.data_collator(trainer.train_dataset.__getitems__(list(range(10))))
    ranking = torch.isin(batch["task_id"], trainer._ranking_task_ids)
    assert ranking.any() and (~ranking).any()
    inputs = trainer._sampled_softmax_inputs(batch["labels"], ranking)
    model = trainer.model
    full = model(**batch)
    mixed = model(**batch, **inputs, output_token_rows=ranking)
    labels, tokens = batch["labels"], inputs["output_token_ids"]
    text = F.cross_entropy(full.logits.transpose(1, 2), labels.masked_fill(ranking[:, None], -100), reduction="none")
    columns = restrict_labels(labels.masked_fill(~ranking[:, None], -100), tokens)
    restricted = full.logits[..., tokens]
    positive = restricted.gather(-1, columns.clamp(min=0)[..., None])[..., 0]
    sampled = sampled_softmax_loss(positive, restricted, inputs["output_token_target_log_q"][columns.clamp(min=0)],
                                   inputs["output_token_log_q"], torch.arange(tokens.numel()) == columns[..., None])
    expected = torch.where(ranking[:, None], sampled.masked_fill(columns == -100, 0.0), text)
    torch.testing.assert_close(mixed.token_losses, expected, atol=1e-5, rtol=1e-5)
    trainer.train()
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert {"loss_sequential", "loss_explanation"} <= logged


def test_popularity_negatives_and_distillation_over_the_sample(tmp_path, shared):
    model_args = ModelArguments(model_preset="tiny", config_overrides="dropout_rate=0.0", item_embedding_init="sasrec",
                                item_embedding_init_max_epochs=1)
    args = sampled_args(tmp_path, sampled_softmax_distribution="popularity", recommender_distillation_weight=0.5)
    trainer = build_trainer(model_args, DataArguments(**BEAUTY), args)
    probabilities = trainer._negative_probabilities
    assert probabilities.shape == (83,) and probabilities.min() > 0 and probabilities.max() > probabilities.min()
    batch = trainer.data_collator(trainer.train_dataset.__getitems__(list(range(6))))
    history = batch["history_items"]
    inputs = trainer._sampled_softmax_inputs(batch["labels"], None)
    tokens = inputs["output_token_ids"]
    subset = inputs["output_token_log_q"].isfinite()[None, :] | (tokens[None, :] == batch["labels"][:, :1])
    # A student that scores as the teacher (on the subset) has no distillation loss; a shuffled one has some.
    teacher = trainer.recommender_teacher
    with torch.no_grad():
        scores = teacher.item_scores(teacher(history)[:, -1])  # column p + 1: catalog position p
    item_index = trainer.model.item_index
    position_of_token = {ids[0]: position for position, ids in enumerate(item_index.token_ids)}
    student = scores[:, [position_of_token[int(token)] + 1 for token in tokens]]
    assert float(trainer._distillation_loss(student, history, None, tokens, subset)) < 1e-5
    shuffled = student[:, torch.randperm(student.shape[1], generator=torch.Generator().manual_seed(0))]
    assert float(trainer._distillation_loss(shuffled, history, None, tokens, subset)) > 1e-3
    trainer.train()
    assert all(math.isfinite(entry.get("loss", 0.0)) for entry in trainer.state.log_history)


def test_the_trainer_rejects_more_negatives_than_items_and_ids_without_item_tokens(tmp_path, shared):
    model_args = ModelArguments(model_preset="tiny")
    with pytest.raises(ValueError, match="sampled_softmax_negatives=84 exceeds the catalog's 83 items"):
        build_trainer(model_args, DataArguments(**BEAUTY), sampled_args(tmp_path, sampled_softmax_negatives=84))
    with pytest.raises(ValueError, match="ranking_softmax=sampled needs one-token item ids"):
        build_trainer(model_args, DataArguments(dataset="all_beauty", indexing="random", user_limit=6),
                      sampled_args(tmp_path))


# ------------------------------------------------------------------------------------------ SASRec
def test_sasrec_with_sampled_negatives_learns_and_is_seeded():
    sequences = [[(start + step * position) % 40 + 1 for position in range(8)] for step in (1, 2) for start in range(40)]
    config = SASRecConfig(num_items=40, max_history_length=7, hidden_size=32, num_heads=2, dropout=0.0)
    model = SASRecModel(config)
    # The sampled loss is `sampled_softmax_loss` of the full scores' columns of the seeded draws.
    with torch.no_grad():
        sampled = model.calculate_loss(sequences, 8, torch.Generator().manual_seed(0))
        inputs = left_pad([s[-8:-1] for s in sequences], 7)
        targets = left_pad([s[-8:][1:] for s in sequences], 7)
        is_target = targets != 0
        scores = model.item_scores(model(inputs)[is_target])
        drawn, log_q = draw_shared_negatives(40, 8, torch.Generator().manual_seed(0))
        targets = targets[is_target]
        expected = sampled_softmax_loss(scores.gather(1, targets[:, None])[:, 0], scores[:, drawn + 1],
                                        torch.full((targets.numel(),), math.log(8 / 40)), log_q,
                                        (drawn + 1)[None, :] == targets[:, None]).mean()
    torch.testing.assert_close(sampled, expected)
    training = SASRecTrainingConfig(learning_rate=5e-3, batch_size=16, max_epochs=12, patience=12, num_negatives=8)
    histories, targets = [s[:-1] for s in sequences], [s[-1] for s in sequences]
    summary = train_sasrec(model, sequences, histories, targets, training)
    assert summary.train_loss_history[-1] < summary.train_loss_history[0] and summary.best_valid_ndcg_at_10 > 0.3
    twin = SASRecModel(config)
    train_sasrec(twin, sequences, histories, targets, training)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), twin.state_dict().values()))
    with pytest.raises(ValueError, match="num_negatives=41 exceeds the catalog's 40 items"):
        train_sasrec(model, sequences, histories, targets, SASRecTrainingConfig(num_negatives=41))
    with pytest.raises(ValueError, match="num_negatives must be at least 1"):
        SASRecTrainingConfig(num_negatives=0)
