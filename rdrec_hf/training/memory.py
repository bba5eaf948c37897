"""Before training starts: does the catalog fit the chosen softmax in the memory the device has?

At a million items the catalog softmax's logits are ``batch x catalog`` floats per target position (1 GiB at
batch 256) and a SASRec start with the full softmax scores every target position of a batch against the catalog
(12 GiB for a batch of 128 histories of 8 items). Such a run used to be killed by the kernel an hour in; `check_training_memory`
refuses it at the start with the estimate and what to change. The estimate counts the dominant terms only, so
it is a lower bound: a run it refuses cannot fit; one it lets through may still not.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models.sasrec import SASRecConfig, SASRecTrainingConfig

FLOAT_BYTES = 4
GIB = 2**30
# AdamW keeps weights, gradients and two moments per parameter; a softmax keeps its logits, their softmax and
# the softmax's gradient.
OPTIMIZER_COPIES = 4
SOFTMAX_COPIES = 3


def student_training_bytes(num_parameters: int, embedding_parameters: int, batch_size: int, target_positions: int,
                           softmax_width: int, sparse_embedding_gradients: bool = False) -> dict[str, int]:
    """The dominant memory of a student's training step, in bytes: ``{"parameters": ..., "logits": ...}``.

    Args:
        num_parameters: all trainable parameters, ``embedding_parameters`` of them the token embedding.
        target_positions: decoder positions per example (1 for one-token item ids alone).
        softmax_width: the columns of each position's softmax (vocabulary, catalog, or the sampled items).
        sparse_embedding_gradients: the embedding then keeps no dense gradient (weights and two moments).
    """
    embedding_copies = OPTIMIZER_COPIES - 1 if sparse_embedding_gradients else OPTIMIZER_COPIES
    parameters = (num_parameters - embedding_parameters) * OPTIMIZER_COPIES + embedding_parameters * embedding_copies
    logits = batch_size * target_positions * softmax_width * SOFTMAX_COPIES
    return {"parameters": parameters * FLOAT_BYTES, "logits": logits * FLOAT_BYTES}


def largest_batch_positions(training_lengths: Sequence[int], batch_size: int, max_history_length: int) -> int:
    """The target positions of SASRec's largest batch: batches group sequences of similar length, so the largest
    holds the ``batch_size`` longest training sequences, each predicting ``min(length - 1, max_history_length)``."""
    positions = sorted((min(length - 1, max_history_length) for length in training_lengths if length >= 2), reverse=True)
    return sum(positions[:batch_size])


def sasrec_start_bytes(num_items: int, hidden_size: int, training_lengths: Sequence[int],
                       num_negatives: int | None) -> dict[str, int]:
    """The dominant memory of the SASRec start's training step (its batch and window as the start trains it): its
    item table with Adam's state and the scores of the target positions of its largest batch
    (`largest_batch_positions` of the users' ``training_lengths``) over the catalog, or over the ``num_negatives``
    shared negatives."""
    positions = largest_batch_positions(training_lengths, SASRecTrainingConfig.batch_size,
                                        SASRecConfig().max_history_length)
    width = num_items + 1 if num_negatives is None else num_negatives + 1
    return {"sasrec_items": (num_items + 1) * hidden_size * OPTIMIZER_COPIES * FLOAT_BYTES,
            "sasrec_scores": positions * width * SOFTMAX_COPIES * FLOAT_BYTES}


def available_memory_bytes(device: torch.device) -> int:
    """Memory free for a new allocation: the GPU's free memory, or the host's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import psutil  # accelerate's dependency

    return psutil.virtual_memory().available


def check_training_memory(parts: dict[str, int], available: int, device: torch.device | str) -> None:
    """Raises ``ValueError`` naming the estimate's parts when their sum exceeds ``available`` bytes."""
    total = sum(parts.values())
    if total <= available:
        return
    detail = ", ".join(f"{name} {size / GIB:.1f}" for name, size in parts.items())
    raise ValueError(
        f"this catalog does not fit the chosen softmax on {device}: training needs at least an estimated "
        f"{total / GIB:.1f} GiB ({detail}) and {available / GIB:.1f} GiB are available. Use ranking_softmax=sampled "
        "(with sparse_embedding_gradients), item_embedding_init_negatives for the SASRec start, or a smaller batch"
    )


__all__ = ["available_memory_bytes", "check_training_memory", "largest_batch_positions", "sasrec_start_bytes", "student_training_bytes"]
