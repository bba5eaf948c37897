"""A training mixture drawn afresh every epoch (prompt templates, top-N negatives, history segments), as
the paper's data loader samples them anew at every pass, instead of repeating epoch 0's draw."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import torch
from datasets import Dataset
from transformers import TrainerCallback

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

    def __getitem__(self, index):
        return self._dataset[index]


class SetEpochCallback(TrainerCallback):
    """Tells a training dataset with ``set_epoch`` which epoch starts (the dataloader does not reliably
    forward it under multi-process sampling). Resumed runs get the epoch they resume in."""

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        dataset = getattr(train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            # state.epoch is the fractional progress so far: exactly e at the start of epoch e.
            dataset.set_epoch(math.floor((state.epoch or 0) + 1e-9))
