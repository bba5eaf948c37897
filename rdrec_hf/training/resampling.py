"""Epochs of a training mixture drawn afresh (prompt templates, top-N negatives, history segments), as the
paper's data loader samples them anew at every pass: the sampler and the callback that follow each epoch's draw
of a :class:`rdrec_hf.data.TrainingMixture`."""

from __future__ import annotations

import math

from transformers import TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from ..data import TrainingMixture


class EpochLengthGroupedSampler(LengthGroupedSampler):
    """``LengthGroupedSampler`` (``train_sampling_strategy="group_by_length"``) over a ``TrainingMixture``: the
    prompt lengths are read from the current epoch's draw each time an epoch starts, since every draw has its
    own segments and templates. The shuffle uses torch's seeded global generator, as the parent's.

    Args:
        batch_size: examples per optimiser step (per-device batch x gradient accumulation).
        dataset: the training mixture.
    """

    def __init__(self, batch_size: int, dataset: TrainingMixture):
        self.dataset = dataset
        super().__init__(batch_size, lengths=dataset.lengths().tolist())

    def __iter__(self):
        self.lengths = self.dataset.lengths().tolist()
        return super().__iter__()


class SetEpochCallback(TrainerCallback):
    """Tells a training dataset with ``set_epoch`` which epoch starts (the dataloader does not reliably
    forward it under multi-process sampling). Resumed runs get the epoch they resume in."""

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        dataset = getattr(train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            # state.epoch is the fractional progress so far: exactly e at the start of epoch e.
            dataset.set_epoch(math.floor((state.epoch or 0) + 1e-9))
