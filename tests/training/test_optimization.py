"""`sparse_embedding_gradients`: `LazyRowAdamW` and the sparse-aware clipping as pure functions against torch's AdamW and
clip_grad_norm_, and in the trainer (only the rows a step read move; the options it refuses)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rdrec_hf.training import DataArguments, ModelArguments, build_trainer
from rdrec_hf.training.optimization import LazyRowAdamW, clip_grad_norm_
from rdrec_hf.training.rdrec_config import RDRecTrainingArguments

pytestmark = pytest.mark.usefixtures("one_thread")

OPTIONS = dict(lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)


def lookup_loss(weight: torch.Tensor, rows: torch.Tensor, sparse: bool, target: torch.Tensor) -> torch.Tensor:
    """A loss that reads ``rows`` of ``weight`` (a row twice where listed twice)."""
    return ((F.embedding(rows, weight, sparse=sparse) - target[rows]) ** 2).sum()


def test_with_every_row_read_it_is_adamw():
    generator = torch.Generator().manual_seed(0)
    start, target = torch.randn(7, 3, generator=generator), torch.randn(7, 3, generator=generator)
    lazy, dense = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    other_lazy, other_dense = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(4))  # a dense parameter
    lazy_optimizer = LazyRowAdamW([lazy, other_lazy], **OPTIONS)
    dense_optimizer = torch.optim.AdamW([dense, other_dense], **OPTIONS)
    rows = torch.tensor([3, 0, 1, 2, 4, 5, 6, 3])  # every row, row 3 twice: an uncoalesced sparse gradient
    for _ in range(5):
        for weight, other, optimizer, sparse in ((lazy, other_lazy, lazy_optimizer, True),
                                                 (dense, other_dense, dense_optimizer, False)):
            optimizer.zero_grad()
            (lookup_loss(weight, rows, sparse, target) + (other ** 2).sum()).backward()
            optimizer.step()
    assert lazy.grad is not None and lazy.grad.is_sparse  # the gradient is put back after the step
    torch.testing.assert_close(lazy.detach(), dense.detach())
    torch.testing.assert_close(other_lazy.detach(), other_dense.detach())


def test_rows_not_read_keep_their_values_and_the_read_rows_follow_adamw():
    generator = torch.Generator().manual_seed(1)
    start, target = torch.randn(6, 2, generator=generator), torch.randn(6, 2, generator=generator)
    lazy = torch.nn.Parameter(start.clone())
    read = torch.tensor([1, 4])
    alone = torch.nn.Parameter(start[read].clone())  # AdamW on just the rows read
    lazy_optimizer, alone_optimizer = LazyRowAdamW([lazy], **OPTIONS), torch.optim.AdamW([alone], **OPTIONS)
    for _ in range(4):
        lazy_optimizer.zero_grad(), alone_optimizer.zero_grad()
        lookup_loss(lazy, read, True, target).backward()
        ((alone - target[read]) ** 2).sum().backward()
        lazy_optimizer.step(), alone_optimizer.step()
    untouched = torch.tensor([0, 2, 3, 5])
    assert torch.equal(lazy.detach()[untouched], start[untouched])
    torch.testing.assert_close(lazy.detach()[read], alone.detach())


def test_amsgrad_is_refused():
    with pytest.raises(ValueError, match="neither amsgrad nor maximize"):
        LazyRowAdamW([torch.nn.Parameter(torch.ones(2))], amsgrad=True)


@pytest.mark.parametrize("max_norm", [0.5, float("inf")])
def test_clipping_sparse_gradients_is_clipping_their_dense_sum(max_norm):
    generator = torch.Generator().manual_seed(2)
    start, target = torch.randn(5, 3, generator=generator), torch.randn(5, 3, generator=generator)
    rows = torch.tensor([0, 2, 2, 4])
    sparse, dense = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    bias_sparse, bias_dense = torch.nn.Parameter(torch.full((3,), 2.0)), torch.nn.Parameter(torch.full((3,), 2.0))
    (lookup_loss(sparse, rows, True, target) + bias_sparse.sum() ** 2).backward()
    (lookup_loss(dense, rows, False, target) + bias_dense.sum() ** 2).backward()
    norm = clip_grad_norm_([sparse, bias_sparse], max_norm)
    expected = torch.nn.utils.clip_grad_norm_([dense, bias_dense], max_norm)
    torch.testing.assert_close(norm, expected)
    torch.testing.assert_close(sparse.grad.to_dense(), dense.grad)
    torch.testing.assert_close(bias_sparse.grad, bias_dense.grad)


# ------------------------------------------------------------------------------------------ the trainer
def sparse_args(output_dir, **overrides) -> RDRecTrainingArguments:
    options = dict(
        output_dir=str(output_dir), max_steps=3, per_device_train_batch_size=6, learning_rate=5e-3, logging_steps=3,
        save_strategy="no", do_eval=False, rank_eval=False, max_source_length=192, max_target_length=24, use_cpu=True,
        report_to="none", seed=3, task_mixture="0:1:0:0", ranking_softmax="sampled", sampled_softmax_negatives=8,
        sparse_embedding_gradients=True, weight_decay=0.01,
    )
    return RDRecTrainingArguments(**{**options, **overrides})


BEAUTY = dict(dataset="all_beauty", indexing="independent", user_limit=24)


def test_the_trainer_moves_only_the_rows_its_steps_read(tmp_path, shared):
    trainer = build_trainer(ModelArguments(model_preset="tiny", config_overrides="dropout_rate=0.0"),
                            DataArguments(**BEAUTY), sparse_args(tmp_path))
    model = trainer.model
    before = model.shared.weight.detach().clone()
    read = torch.zeros(before.shape[0], dtype=torch.bool)

    def record(module, args, inputs):  # every row a step reads: prompt tokens, decoder inputs, the sampled rows
        read[inputs["input_ids"].flatten()] = True
        read[module._shift_right(inputs["labels"]).flatten()] = True
        read[inputs["output_token_ids"]] = True

    hook = model.register_forward_pre_hook(record, with_kwargs=True)
    trainer.train()
    hook.remove()
    assert isinstance(trainer.optimizer.optimizer, LazyRowAdamW)
    moved = (model.shared.weight.detach() != before).any(dim=1)
    assert moved.any() and not (moved & ~read).any()
    assert read.sum() < before.shape[0] // 2  # most of the 32k-token vocabulary was never read
    assert all("grad_norm" in entry for entry in trainer.state.log_history if "loss" in entry)


def test_sparse_gradients_are_refused_where_a_step_reads_every_row(tmp_path, shared):
    with pytest.raises(ValueError, match="sparse_embedding_gradients needs ranking_softmax=sampled"):
        sparse_args(tmp_path, ranking_softmax="catalog")
    model_args = ModelArguments(model_preset="tiny")
    with pytest.raises(ValueError, match="needs a mixture of ranking tasks only"):
        build_trainer(model_args, DataArguments(**BEAUTY), sparse_args(tmp_path, task_mixture="1:1:0:0"))
    with pytest.raises(ValueError, match="needs optim adamw_torch or adamw_torch_fused"):
        build_trainer(model_args, DataArguments(**BEAUTY), sparse_args(tmp_path, optim="sgd"))
