"""The trainer's callbacks: the epoch a resampled mixture draws, the paper's cumulative early stopping, and a
benchmark's time budget."""

from __future__ import annotations

import logging
import math
import time

from transformers import EarlyStoppingCallback, TrainerCallback

logger = logging.getLogger(__name__)


class SetEpochCallback(TrainerCallback):
    """Tells a training dataset with ``set_epoch`` which epoch starts (the dataloader does not reliably
    forward it under multi-process sampling). Resumed runs get the epoch they resume in."""

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        dataset = getattr(train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            # state.epoch is the fractional progress so far: exactly e at the start of epoch e.
            dataset.set_epoch(math.floor((state.epoch or 0) + 1e-9))


class CumulativeEarlyStoppingCallback(EarlyStoppingCallback):
    """Early stopping as the paper's ``pretrain.py``: every evaluation that does not improve on the best
    ``metric_for_best_model`` adds one to a count that an improvement never resets; training stops when it
    reaches ``early_stopping_patience``."""

    def check_metric_value(self, args, state, control, metric_value):
        count = self.early_stopping_patience_counter
        super().check_metric_value(args, state, control, metric_value)  # the parent's rule of improvement
        if self.early_stopping_patience_counter == 0:  # improved: the parent resets, the paper does not
            self.early_stopping_patience_counter = count


class TimeBudgetCallback(TrainerCallback):
    """Stops training once `minutes` have passed since training began, on `clock` (`time.perf_counter` for
    wall-clock time, `time.process_time` for this process's CPU time), counting `spent_seconds` already spent
    before it (the model's start)."""

    def __init__(self, minutes: float, clock=time.perf_counter, name: str = "benchmark_wall_minutes",
                 spent_seconds: float = 0.0):
        if minutes <= 0:
            raise ValueError(f"{name} must be positive, got {minutes}")
        self.seconds, self.clock, self.name, self.spent_seconds = minutes * 60, clock, name, spent_seconds
        self.started: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.clock() - self.spent_seconds

    def on_step_end(self, args, state, control, **kwargs):
        if self.clock() - self.started >= self.seconds:
            logger.info("%s=%.1f reached at step %d", self.name, self.seconds / 60, state.global_step)
            control.should_training_stop = True
