"""Epochs of a training mixture drawn afresh (prompt templates, top-N negatives, history segments), as the
paper's data loader samples them anew at every pass: the sampler that follows each epoch's draw of a
:class:`rdrec_hf.data.TrainingMixture` (`callbacks.SetEpochCallback` tells the mixture which epoch starts)."""

from __future__ import annotations


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
