"""A training mixture drawn afresh every epoch (prompt templates, top-N negatives, history segments), as
the paper's data loader samples them anew at every pass, instead of repeating epoch 0's draw."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import pyarrow.compute as pc
import torch
from datasets import Dataset
from transformers import TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

logger = logging.getLogger(__name__)


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch``'s draw: ``seed`` itself for epoch 0, then a distinct integer per (seed, epoch)."""
    if epoch == 0:
        return seed
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class EpochResampledDataset(torch.utils.data.Dataset):
    """Map-style dataset over the current epoch's draw of the mixture.

    Args:
        build: ``epoch -> Dataset``, a seeded build of that epoch's examples (same length every epoch).
        first: the already built epoch-0 dataset.
    """

    def __init__(self, build: Callable[[int], Dataset], first: Dataset):
        self._build = build
        self._dataset = first
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Switch to ``epoch``'s draw (built on the first switch to it)."""
        if epoch == self.epoch:
            return
        dataset = self._build(epoch)
        if len(dataset) != len(self._dataset):
            raise RuntimeError(f"epoch {epoch} drew {len(dataset)} examples, epoch {self.epoch} {len(self._dataset)}")
        logger.info("epoch %d: freshly drawn task mixture (%d examples)", epoch, len(dataset))
        self._dataset, self.epoch = dataset, epoch

    def __len__(self) -> int:
        return len(self._dataset)

    def lengths(self, column: str = "input_ids") -> list[int]:
        """Length of ``column`` in every example of the current draw."""
        return pc.list_value_length(self._dataset.data.column(column)).to_pylist()  # Arrow, no row copies

    def __getitem__(self, index):
        return self._dataset[index]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch's rows in one Arrow read (the DataLoader's batched fetch) instead of one read per row."""
        columns = self._dataset[indices]
        return [dict(zip(columns, row)) for row in zip(*columns.values())]


class EpochLengthGroupedSampler(LengthGroupedSampler):
    """``LengthGroupedSampler`` (``train_sampling_strategy="group_by_length"``) over an
    ``EpochResampledDataset``: the lengths are read from the current epoch's draw each time an epoch starts,
    since every draw has its own segments and templates. The shuffle uses torch's seeded global generator,
    as the parent's.

    Args:
        batch_size: examples per optimiser step (per-device batch x gradient accumulation).
        dataset: the resampled training dataset. model_input_name: the column whose length groups examples.
    """

    def __init__(self, batch_size: int, dataset: EpochResampledDataset, model_input_name: str = "input_ids"):
        self.dataset, self.model_input_name = dataset, model_input_name
        super().__init__(batch_size, lengths=dataset.lengths(model_input_name))

    def __iter__(self):
        self.lengths = self.dataset.lengths(self.model_input_name)
        return super().__iter__()


class SetEpochCallback(TrainerCallback):
    """Tells a training dataset with ``set_epoch`` which epoch starts (the dataloader does not reliably
    forward it under multi-process sampling). Resumed runs get the epoch they resume in."""

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        dataset = getattr(train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            # state.epoch is the fractional progress so far: exactly e at the start of epoch e.
            dataset.set_epoch(math.floor((state.epoch or 0) + 1e-9))
