"""A compact SASRec (Kang & McAuley, ICDM 2018) trained with full-softmax cross-entropy over the catalog.

The opt-in ``sasrec`` baseline of the evaluation (`rdrec_hf.evaluation.baselines`) and of the quality
benchmark (``benchmarks/bench_quality.py``). The variant trained with one sampled negative and binary
cross-entropy is known to give weak SASRec baselines; the softmax over every item (as in RecBole's
``loss_type="CE"``) is the strong one. Items are contiguous indices ``1..num_items``; 0 pads. The project's
item ids are the strings ``"1".."N"``, so an id's index is its number.

Sequences are LEFT-padded, and positions are counted from the right end (the most recent item always has
position ``max_length - 1``), so padding a sequence never changes its outputs.
"""

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
from torch import nn
from tqdm.auto import tqdm

from .ranking import ranking_metrics

logger = logging.getLogger(__name__)

PADDING_INDEX = 0


@dataclass
class SASRecConfig:
    """Architecture of :class:`SASRec`."""

    num_items: int = field(metadata={"help": "Catalog size; items are indices 1..num_items, 0 pads."})
    max_length: int = field(default=50, metadata={"help": "Longest history the model reads (most recent items)."})
    hidden_size: int = field(default=64, metadata={"help": "Width of item/position embeddings and blocks."})
    num_blocks: int = field(default=2, metadata={"help": "Number of causal self-attention blocks."})
    num_heads: int = field(default=1, metadata={"help": "Attention heads per block."})
    dropout: float = field(default=0.5, metadata={"help": "Dropout on embeddings, attention and feed-forward."})
    init_seed: int = field(default=0, metadata={"help": "Seed of the weight initialisation."})

    def __post_init__(self):
        if self.num_items < 1:
            raise ValueError(f"num_items must be positive, got {self.num_items}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


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
        metadata={"help": "Stop before an epoch that would end past this many seconds of training."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of batch shuffling and dropout."})
    eval_batch_size: int = field(default=512, metadata={"help": "Users per step when ranking the catalog."})

    def __post_init__(self):
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs and patience must be positive")


class SASRec(nn.Module):
    """Causal self-attention over the item history; item scores are dot products with the item embeddings.

    The blocks are pre-LayerNorm transformer encoder layers (feed-forward width = hidden size, ReLU),
    as in the original model; the output projection is tied to the item embedding table.
    """

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.config = config
        self.item_embeddings = nn.Embedding(config.num_items + 1, config.hidden_size, padding_idx=PADDING_INDEX)
        self.position_embeddings = nn.Embedding(config.max_length, config.hidden_size)
        self.embedding_dropout = nn.Dropout(config.dropout)
        block = nn.TransformerEncoderLayer(
            d_model=config.hidden_size,
            nhead=config.num_heads,
            dim_feedforward=config.hidden_size,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(block, config.num_blocks, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(config.hidden_size)
        self._init_weights(torch.Generator().manual_seed(config.init_seed))

    def _init_weights(self, generator: torch.Generator) -> None:
        for name, parameter in self.named_parameters():
            if "norm" in name and name.endswith("weight"):
                nn.init.ones_(parameter)
            elif name.endswith("bias"):
                nn.init.zeros_(parameter)
            else:
                nn.init.normal_(parameter, std=0.02, generator=generator)
        with torch.no_grad():
            self.item_embeddings.weight[PADDING_INDEX].zero_()

    def forward(self, item_sequences: torch.Tensor) -> torch.Tensor:
        """Hidden state after every prefix.

        Args:
            item_sequences: [B, L] item indices, left-padded with 0, ``L <= max_length``.
        Returns:
            [B, L, H]: row ``t`` summarises items ``0..t`` (outputs at padding positions are meaningless).
        """
        length = item_sequences.shape[1]
        if length > self.config.max_length:
            raise ValueError(f"sequence length {length} exceeds max_length {self.config.max_length}")
        positions = torch.arange(self.config.max_length - length, self.config.max_length, device=item_sequences.device)
        is_padding = item_sequences == PADDING_INDEX  # [B, L]
        hidden = self.item_embeddings(item_sequences) * math.sqrt(self.config.hidden_size)
        hidden = self.embedding_dropout(hidden + self.position_embeddings(positions))
        hidden = hidden.masked_fill(is_padding.unsqueeze(-1), 0.0)
        # True = may not attend: later positions and padding keys. The diagonal stays open so that padding
        # queries (whose keys are all masked) do not produce NaN rows.
        future = torch.ones(length, length, dtype=torch.bool, device=item_sequences.device).triu(1)
        blocked = future | is_padding.unsqueeze(1)  # [B, L, L]
        blocked = blocked & ~torch.eye(length, dtype=torch.bool, device=item_sequences.device)
        blocked = blocked.repeat_interleave(self.config.num_heads, dim=0)  # [B * heads, L, L]
        hidden = self.blocks(hidden, mask=blocked)
        return self.final_norm(hidden)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every item: [..., H] -> [..., num_items + 1], the padding column set to -inf."""
        scores = hidden @ self.item_embeddings.weight.T
        scores[..., PADDING_INDEX] = float("-inf")
        return scores


def left_pad(sequences: Sequence[Sequence[int]], max_length: int) -> torch.Tensor:
    """The last ``max_length`` items of each sequence, left-padded to the longest: [B, L] long."""
    clipped = [list(sequence)[-max_length:] for sequence in sequences]
    length = max(len(sequence) for sequence in clipped)
    return torch.tensor([[PADDING_INDEX] * (length - len(s)) + s for s in clipped], dtype=torch.long)


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random, batches_per_bucket: int = 50
) -> list[list[int]]:
    """A shuffled epoch of index batches whose members have similar lengths.

    Indices are shuffled, cut into buckets of ``batches_per_bucket * batch_size``, sorted by length
    inside each bucket and cut into batches; the batch order is shuffled again. Padding each batch to its
    own longest sequence then costs little (most histories are far shorter than ``max_length``).
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


def next_item_loss(model: SASRec, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Mean full-softmax cross-entropy of predicting every item of each sequence from its prefix.

    Each sequence ``s`` (length >= 2) gives inputs ``s[:-1]`` and targets ``s[1:]`` (its last
    ``max_length + 1`` items). Scores are computed only at real (non-padding) positions.
    """
    window = model.config.max_length + 1
    device = model.item_embeddings.weight.device
    inputs = left_pad([s[-window:-1] for s in sequences], model.config.max_length).to(device)
    targets = left_pad([s[-window:][1:] for s in sequences], model.config.max_length).to(device)
    hidden = model(inputs)
    is_target = targets != PADDING_INDEX
    scores = model.item_scores(hidden[is_target])  # [N, num_items + 1]
    return nn.functional.cross_entropy(scores, targets[is_target])


@torch.no_grad()
def top_k_items(
    model: SASRec, histories: Sequence[Sequence[int]], k: int, batch_size: int = 512
) -> torch.Tensor:
    """Full-catalog ranking with every item of the history excluded.

    Args:
        histories: one non-empty item list per user (all of it is masked; the last ``max_length`` items are read).
    Returns:
        [U, k] item indices on the CPU, best first.
    Raises:
        ValueError: when a history leaves fewer than ``k`` items to rank.
    """
    longest = max(len(set(history)) for history in histories)
    if model.config.num_items - longest < k:
        raise ValueError(f"a history of {longest} items leaves fewer than k={k} of {model.config.num_items} to rank")
    model.eval()
    device = model.item_embeddings.weight.device
    top = []
    for start in range(0, len(histories), batch_size):
        chunk = histories[start : start + batch_size]
        hidden = model(left_pad(chunk, model.config.max_length).to(device))[:, -1]
        scores = model.item_scores(hidden)  # [b, num_items + 1]
        rows = torch.tensor([row for row, history in enumerate(chunk) for _ in history], device=device)
        columns = torch.tensor([item for history in chunk for item in history], device=device)
        scores[rows, columns] = float("-inf")
        top.append(scores.topk(k, dim=-1).indices.cpu())
    return torch.cat(top)


@torch.no_grad()
def candidate_scores(
    model: SASRec, histories: Sequence[Sequence[int]], candidates: torch.Tensor, batch_size: int = 512
) -> torch.Tensor:
    """Scores of given candidates: ``candidates`` [U, C] item indices -> [U, C] scores on the CPU."""
    model.eval()
    device = model.item_embeddings.weight.device
    scores = []
    for start in range(0, len(histories), batch_size):
        chunk = left_pad(histories[start : start + batch_size], model.config.max_length).to(device)
        hidden = model(chunk)[:, -1]  # [b, H]
        chunk_candidates = candidates[start : start + batch_size].to(device)
        scores.append((model.item_embeddings(chunk_candidates) @ hidden.unsqueeze(-1)).squeeze(-1).cpu())
    return torch.cat(scores)


def validation_ndcg_at_10(model: SASRec, histories, targets: Sequence[int], batch_size: int) -> float:
    """Mean NDCG@10 of the held-out ``targets`` under full-catalog ranking (history excluded)."""
    rankings = top_k_items(model, histories, 10, batch_size).tolist()
    return ranking_metrics(rankings, list(targets), ks=(10,))["ndcg@10"]


@dataclass
class TrainingSummary:
    """What :func:`train_sasrec` did; ``model`` holds the best validation weights when it returns."""

    epochs: int
    best_epoch: int
    best_valid_ndcg_at_10: float
    train_seconds: float
    stop_reason: str
    valid_history: list[float]  # validation NDCG@10 after each epoch
    train_loss_history: list[float]  # mean training loss of each epoch

    def to_dict(self) -> dict:
        return asdict(self)


def train_sasrec(
    model: SASRec,
    train_sequences: Sequence[Sequence[int]],
    valid_histories: Sequence[Sequence[int]],
    valid_targets: Sequence[int],
    config: SASRecTrainingConfig,
) -> TrainingSummary:
    """Adam on :func:`next_item_loss`, early stopping on validation NDCG@10; restores the best weights.

    Args:
        train_sequences: training parts of the users' sequences (length >= 2 each).
        valid_histories / valid_targets: per validation user, the history to rank from and the held-out item.
    """
    if any(len(sequence) < 2 for sequence in train_sequences):
        raise ValueError("every training sequence needs at least 2 items")
    shuffler = random.Random(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    best_ndcg, best_epoch, best_state = -1.0, 0, None
    valid_history, loss_history = [], []
    stop_reason, epoch, started = "max_epochs", 0, time.perf_counter()
    lengths = [min(len(sequence), model.config.max_length + 1) for sequence in train_sequences]
    # Dropout draws from torch's global generator: seed it inside a fork so callers' state is untouched.
    device = model.item_embeddings.weight.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        progress = tqdm(range(1, config.max_epochs + 1), desc="SASRec epochs", unit="epoch")
        for epoch in progress:
            epoch_started = time.perf_counter()
            model.train()
            epoch_losses = []
            for indices in length_bucketed_batches(lengths, config.batch_size, shuffler):
                loss = next_item_loss(model, [train_sequences[i] for i in indices])
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


# ------------------------------------------------------------------------------- the evaluation baseline
SASREC_WEIGHTS_FILE = "sasrec.safetensors"


def leave_one_out_parts(sequences: Sequence[Sequence[int]]) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """``(training sequences, validation histories, validation targets)`` of full item sequences, as the
    project splits them: training ``items[:-2]`` (those of at least 2 items: a shorter one has no next item
    to learn), validation target ``items[-2]`` ranked from ``items[:-2]`` (users with at least 3 items)."""
    train = [list(sequence[:-2]) for sequence in sequences if len(sequence) >= 4]
    kept = [sequence for sequence in sequences if len(sequence) >= 3]
    return train, [list(sequence[:-2]) for sequence in kept], [sequence[-2] for sequence in kept]


def _fingerprint(parts, model_config: SASRecConfig, training_config: SASRecTrainingConfig) -> str:
    """What a cached model was trained from and how: the weights are reused only when this is the same."""
    recipe = {"model": asdict(model_config), "training": asdict(training_config), "data": parts}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def fit_or_load_sasrec(
    sequences: Sequence[Sequence[int]],
    model_config: SASRecConfig,
    training_config: SASRecTrainingConfig,
    cache_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> tuple[SASRec, dict]:
    """SASRec trained on the training parts of ``sequences`` with early stopping on validation
    (`leave_one_out_parts`, `train_sasrec`), or read back from ``cache_dir/sasrec.safetensors`` when that file
    was trained from the same parts and configs (its fingerprint, stored in the file's metadata).

    Returns ``(model in eval mode, info)``: ``info`` holds the `TrainingSummary` as a dict and ``"cached"``
    (True when read back). Without ``cache_dir`` the weights are not kept.
    """
    parts = leave_one_out_parts(sequences)
    fingerprint = _fingerprint(parts, model_config, training_config)
    path = Path(cache_dir, SASREC_WEIGHTS_FILE) if cache_dir is not None else None
    model = SASRec(model_config)
    if path is not None and path.is_file():
        with safe_open(str(path), framework="pt") as stored:
            metadata = stored.metadata() or {}
        if metadata.get("fingerprint") == fingerprint:
            model.load_state_dict(load_file(str(path)))
            logger.info("SASRec read back from %s (same training data and configs)", path)
            return model.to(device).eval(), {**json.loads(metadata["summary"]), "cached": True}
        logger.info("%s was trained from other data or configs: training SASRec again", path)
    model.to(device)
    summary = train_sasrec(model, *parts, training_config).to_dict()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
        save_file(state, str(path), metadata={"fingerprint": fingerprint, "summary": json.dumps(summary)})
    return model.eval(), {**summary, "cached": False}


class SASRecRanker:
    """A trained `SASRec` as an evaluation baseline over the project's item ids (``"1".."N"``).

    Called with a batch of histories (and optionally each one's candidates), it returns the top ``k`` ids of
    each: over the whole catalog with the history excluded, or among the candidates. A catalog smaller than
    a history plus ``k`` gives shorter lists, as the model-free baselines do.
    """

    def __init__(self, model: SASRec, batch_size: int = 512):
        self.model, self.batch_size = model, batch_size

    def __call__(
        self, histories: Sequence[Sequence[str]], k: int, candidates: Sequence[Sequence[str]] | None = None
    ) -> list[list[str]]:
        indices = [[int(item) for item in history] for history in histories]
        if candidates is None:
            free = self.model.config.num_items - max(len(set(history)) for history in indices)
            top = top_k_items(self.model, indices, min(k, free), self.batch_size)
            return [[str(item) for item in row] for row in top.tolist()]
        width = max(len(row) for row in candidates)
        padded = torch.tensor([[int(item) for item in row] + [PADDING_INDEX] * (width - len(row)) for row in candidates])
        scores = candidate_scores(self.model, indices, padded, self.batch_size).tolist()
        # Stable: float scores of different items practically never tie.
        return [
            [row[i] for i in sorted(range(len(row)), key=lambda i: -row_scores[i])][:k]
            for row, row_scores in zip(candidates, scores)
        ]
