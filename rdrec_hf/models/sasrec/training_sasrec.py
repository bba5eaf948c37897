"""Fitting SASRec: one loop with early stopping on validation NDCG@10 (`train_sasrec`) and one cached fit on the
project's leave-one-out split (`fit_sasrec`), used by the evaluation baseline, the student's item start and
teacher, and the benchmarks."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .configuration_sasrec import SASRecConfig
from .modeling_sasrec import SASRecModel

logger = logging.getLogger(__name__)

SASREC_WEIGHTS_FILE = "sasrec.safetensors"  # the cache's file name in `fit_sasrec`'s cache_dir


@dataclass
class SASRecTrainingConfig:
    """Optimisation and early stopping of :func:`train_sasrec`."""

    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate."})
    batch_size: int = field(default=128, metadata={"help": "Training sequences per step."})
    max_epochs: int = field(default=200, metadata={"help": "Upper bound on passes over the training sequences."})
    patience: int = field(
        default=10, metadata={"help": "Stop after this many epochs without a better validation NDCG@10."}
    )
    wall_budget_s: float = field(
        default=float("inf"),
        metadata={"help": "A benchmark's rule: stop before an epoch that would end past this many seconds of "
                  "training (the same config then trains differently on other machines; fits for users bound "
                  "the epochs instead)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of batch shuffling, dropout and sampled negatives."})
    eval_batch_size: int = field(default=512, metadata={"help": "Users per step when ranking the catalog."})
    num_negatives: int | None = field(
        default=None,
        metadata={"help": "Sampled softmax: this many items drawn uniformly per step (with replacement, seeded from "
                  "`seed`) are the shared negatives of every position, with the logQ correction (for catalogs of "
                  "100,000+ items). None: the full softmax over the catalog."},
    )

    def __post_init__(self):
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs and patience must be positive")
        if self.num_negatives is not None and self.num_negatives < 1:
            raise ValueError(f"num_negatives must be at least 1 (or None: the full softmax), got {self.num_negatives}")


@dataclass
class TrainingSummary:
    """What :func:`train_sasrec` did; the model holds the best validation weights when it returns."""

    epochs: int
    best_epoch: int
    best_valid_ndcg_at_10: float
    train_seconds: float
    stop_reason: str
    valid_history: list[float]  # validation NDCG@10 after each epoch
    train_loss_history: list[float]  # mean training loss of each epoch

    def to_dict(self) -> dict:
        return asdict(self)


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random, batches_per_bucket: int = 50
) -> list[list[int]]:
    """A shuffled epoch of index batches whose members have similar lengths.

    Indices are shuffled, cut into buckets of ``batches_per_bucket * batch_size``, sorted by length
    inside each bucket and cut into batches; the batch order is shuffled again. Padding each batch to its
    own longest sequence then costs little (most histories are far shorter than the longest the model reads).
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    bucket_size = batches_per_bucket * batch_size
    batches = []
    for start in range(0, len(order), bucket_size):
        bucket = sorted(order[start : start + bucket_size], key=lengths.__getitem__)
        batches += [bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size)]
    rng.shuffle(batches)
    return batches


def validation_ndcg_at_10(model: SASRecModel, histories, targets: Sequence[int], batch_size: int) -> float:
    """Mean NDCG@10 of the held-out ``targets`` under full-catalog ranking (history excluded): a single relevant
    item scores ``1 / log2(position + 2)`` inside the top 10."""
    rankings = model.top_k(histories, 10, batch_size).tolist()
    gains = [1.0 / math.log2(ranking.index(target) + 2) if target in ranking else 0.0
             for ranking, target in zip(rankings, targets)]
    return sum(gains) / len(gains)


def train_sasrec(
    model: SASRecModel,
    train_sequences: Sequence[Sequence[int]],
    valid_histories: Sequence[Sequence[int]],
    valid_targets: Sequence[int],
    config: SASRecTrainingConfig,
) -> TrainingSummary:
    """Adam on `SASRecModel.calculate_loss`, early stopping on validation NDCG@10; restores the best weights.

    Args:
        train_sequences: training parts of the users' sequences (length >= 2 each).
        valid_histories / valid_targets: per validation user, the history to rank from and the held-out item.
    """
    if any(len(sequence) < 2 for sequence in train_sequences):
        raise ValueError("every training sequence needs at least 2 items")
    if config.num_negatives is not None and config.num_negatives > model.config.num_items:
        raise ValueError(f"num_negatives={config.num_negatives} exceeds the catalog's {model.config.num_items} items; "
                         "use the full softmax (num_negatives=None)")
    shuffler = random.Random(config.seed)
    negatives = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    best_ndcg, best_epoch, best_state = -1.0, 0, None
    valid_history, loss_history = [], []
    stop_reason, epoch, started = "max_epochs", 0, time.perf_counter()
    lengths = [min(len(sequence), model.config.max_history_length + 1) for sequence in train_sequences]
    # Dropout draws from torch's global generator: seed it inside a fork so callers' state is untouched.
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        progress = tqdm(range(1, config.max_epochs + 1), desc="SASRec epochs", unit="epoch")
        for epoch in progress:
            epoch_started = time.perf_counter()
            model.train()
            epoch_losses = []
            for indices in length_bucketed_batches(lengths, config.batch_size, shuffler):
                loss = model.calculate_loss([train_sequences[i] for i in indices], config.num_negatives, negatives)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                epoch_losses.append(loss.item())
            ndcg = validation_ndcg_at_10(model, valid_histories, valid_targets, config.eval_batch_size)
            valid_history.append(ndcg)
            loss_history.append(sum(epoch_losses) / len(epoch_losses))
            if ndcg > best_ndcg:
                best_ndcg, best_epoch, best_state = ndcg, epoch, copy.deepcopy(model.state_dict())
            progress.set_postfix(loss=f"{loss_history[-1]:.3f}", valid_ndcg10=f"{ndcg:.4f}", best=best_epoch)
            elapsed = time.perf_counter() - started
            if epoch - best_epoch >= config.patience:
                stop_reason = "early_stopping"
                break
            if elapsed + (time.perf_counter() - epoch_started) > config.wall_budget_s:
                stop_reason = "wall_budget"
                break
        progress.close()
    model.load_state_dict(best_state)
    return TrainingSummary(
        epochs=epoch,
        best_epoch=best_epoch,
        best_valid_ndcg_at_10=best_ndcg,
        train_seconds=time.perf_counter() - started,
        stop_reason=stop_reason,
        valid_history=valid_history,
        train_loss_history=loss_history,
    )


def leave_one_out_parts(sequences: Sequence[Sequence[int]]) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """``(training sequences, validation histories, validation targets)`` of full item sequences, as the
    project splits them: training ``items[:-2]`` (those of at least 2 items: a shorter one has no next item
    to learn), validation target ``items[-2]`` ranked from ``items[:-2]`` (users with at least 3 items)."""
    train = [list(sequence[:-2]) for sequence in sequences if len(sequence) >= 4]
    kept = [sequence for sequence in sequences if len(sequence) >= 3]
    return train, [list(sequence[:-2]) for sequence in kept], [sequence[-2] for sequence in kept]


def _fingerprint(parts, model_config: SASRecConfig, training_config: SASRecTrainingConfig) -> str:
    """What a cached model was trained from and how: the weights are reused only when this is the same."""
    training = asdict(training_config)
    if training["num_negatives"] is None:  # the full softmax: the fingerprint of caches written before the option
        del training["num_negatives"]
    recipe = {"model": model_config.architecture(), "training": training, "data": parts}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def fit_sasrec(
    sequences: Sequence[Sequence[int]],
    model_config: SASRecConfig,
    training_config: SASRecTrainingConfig,
    cache_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> tuple[SASRecModel, dict]:
    """SASRec trained on the training parts of ``sequences`` with early stopping on validation
    (`leave_one_out_parts`, `train_sasrec`), or read back from ``cache_dir/sasrec.safetensors`` when that file
    was trained from the same parts and configs (its fingerprint, stored in the file's metadata).

    Returns ``(model in eval mode, info)``: ``info`` holds the `TrainingSummary` as a dict, the architecture
    (``"model"``) and ``"cached"`` (True when read back). Without ``cache_dir`` the weights are not kept.
    """
    parts = leave_one_out_parts(sequences)
    fingerprint = _fingerprint(parts, model_config, training_config)
    path = Path(cache_dir, SASREC_WEIGHTS_FILE) if cache_dir is not None else None
    model = SASRecModel(model_config)
    if path is not None and path.is_file():
        with safe_open(str(path), framework="pt") as stored:
            metadata = stored.metadata() or {}
        if metadata.get("fingerprint") == fingerprint:
            model.load_state_dict(load_file(str(path)))
            logger.info("SASRec read back from %s (same training data and configs)", path)
            return model.to(device).eval(), {**json.loads(metadata["summary"]), "cached": True}
        logger.info("%s was trained from other data or configs: training SASRec again", path)
    model.to(device)
    summary = {**train_sasrec(model, *parts, training_config).to_dict(), "model": model_config.architecture()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
        save_file(state, str(path), metadata={"fingerprint": fingerprint, "summary": json.dumps(summary)})
    return model.eval(), {**summary, "cached": False}
