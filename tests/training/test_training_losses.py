"""The per-task loss maths of RDRecTrainer, checked against hand-worked values and the model's own loss."""

from __future__ import annotations

import math

import pytest
import torch

from rdrec_hf import RDRecConfig, RDRecForConditionalGeneration, Task
from rdrec_hf.training import mean_task_losses, per_example_loss, task_loss_totals


def test_per_example_loss_by_hand():
    # Two-token vocabulary. Example 0: uniform logits on both target tokens -> log 2 each.
    # Example 1: logits (log 3, 0) -> p(token 0) = 3/4, one real token, the other padding.
    logits = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[math.log(3), 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[0, 1], [0, -100]])
    losses = per_example_loss(logits, labels)
    assert losses.tolist() == pytest.approx([math.log(2), -math.log(0.75)])


def test_example_without_target_has_zero_loss_and_is_not_counted():
    logits = torch.zeros(2, 1, 3)
    labels = torch.tensor([[2], [-100]])
    losses = per_example_loss(logits, labels)
    assert losses[1] == 0
    totals = task_loss_totals(losses, torch.tensor([0, 0]), (labels != -100).any(dim=1), num_tasks=2)
    assert totals.flatten().tolist() == pytest.approx([math.log(3), 0.0, 1.0, 0.0])


def test_totals_group_by_task_and_means_skip_absent_tasks():
    losses = torch.tensor([1.0, 2.0, 4.0, 8.0])
    task_id = torch.tensor([int(Task.TOPN), int(Task.SEQUENTIAL), int(Task.TOPN), int(Task.RATIONALE)])
    totals = task_loss_totals(losses, task_id, torch.ones(4, dtype=torch.bool))
    assert totals[:, Task.TOPN].tolist() == [5.0, 2.0]
    assert mean_task_losses(totals) == {Task.SEQUENTIAL: 2.0, Task.TOPN: 2.5, Task.RATIONALE: 8.0}
    # Totals add across steps (and processes) before the division.
    assert mean_task_losses(totals + totals) == mean_task_losses(totals)


def test_per_example_losses_match_the_models_token_mean():
    """With every example of the same target length the mean of per-example losses is the model's loss."""
    config = RDRecConfig.from_preset("tiny", vocab_size=50, max_whole_words=8)
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = RDRecForConditionalGeneration(config).eval()
    input_ids = torch.randint(2, 50, (3, 6), generator=generator)
    labels = torch.randint(2, 50, (3, 4), generator=generator)
    output = model(
        input_ids=input_ids, attention_mask=torch.ones_like(input_ids), whole_word_ids=torch.zeros_like(input_ids),
        task_id=torch.tensor([0, 1, 2]), labels=labels,
    )
    assert per_example_loss(output.logits, labels).mean().item() == pytest.approx(output.loss.item(), rel=1e-5)


def test_the_catalog_forward_returns_the_token_losses_of_its_loss():
    """Over `output_token_ids` the model returns each target token's loss: its mean over the targets is the loss,
    and per example it is what `per_example_loss` computes from the logits (the trainer skips that second softmax)."""
    from rdrec_hf.models.modeling_rdrec import restrict_labels
    from rdrec_hf.training.rdrec_trainer import mean_over_targets

    config = RDRecConfig.from_preset("tiny", vocab_size=50, max_whole_words=8)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = RDRecForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(2, 50, (4, 6), generator=generator)
    catalog = torch.arange(10, 30)
    labels = catalog[torch.randint(0, 20, (4, 2), generator=generator)]
    labels[1, 1] = labels[3, :] = -100  # an example with one target, one without any
    output = model(
        input_ids=input_ids, attention_mask=torch.ones_like(input_ids), whole_word_ids=torch.zeros_like(input_ids),
        task_id=torch.tensor([0, 1, 0, 1]), labels=labels, output_token_ids=catalog,
    )
    restricted = restrict_labels(labels, catalog)
    assert output.token_losses.shape == labels.shape and bool((output.token_losses[labels == -100] == 0).all())
    assert output.loss.item() == pytest.approx(torch.nn.functional.cross_entropy(
        output.logits.flatten(0, 1), restricted.flatten(), ignore_index=-100).item(), rel=1e-6)
    torch.testing.assert_close(mean_over_targets(output.token_losses, labels), per_example_loss(output.logits, restricted))
