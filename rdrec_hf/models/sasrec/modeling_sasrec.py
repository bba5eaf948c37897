"""SASRec (Kang & McAuley, ICDM 2018) trained with full-softmax cross-entropy over the catalog.

The variant trained with one sampled negative and binary cross-entropy is known to give weak SASRec baselines;
the softmax over every item (as RecBole's ``loss_type="CE"``) is the strong one. The model follows RecBole's
protocol: `calculate_loss` (training), `predict` (scores of given candidates), `full_sort_predict` (scores of
the whole catalog, the history excluded), plus `top_k` (the best items, in batches).

Sequences are LEFT-padded, and positions are counted from the right end (the most recent item always has
position ``max_history_length - 1``), so padding a sequence never changes its outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from transformers import PreTrainedModel

from ..item_decoding import running_top_k
from ..modeling_rdrec import draw_shared_negatives, sampled_softmax_loss
from .configuration_sasrec import SASRecConfig

PADDING_INDEX = 0
DEFAULT_ITEM_CHUNK = 65536  # items scored at once by `top_k`: [users, chunk] scores, never [users, catalog]


def left_pad(sequences: Sequence[Sequence[int]], max_length: int) -> torch.Tensor:
    """The last ``max_length`` items of each sequence, left-padded to the longest: [B, L] long."""
    clipped = [list(sequence)[-max_length:] for sequence in sequences]
    length = max(len(sequence) for sequence in clipped)
    return torch.tensor([[PADDING_INDEX] * (length - len(s)) + s for s in clipped], dtype=torch.long)


class SASRecModel(PreTrainedModel):
    """Causal self-attention over the item history; item scores are dot products with the item embeddings.

    The blocks are pre-LayerNorm transformer encoder layers (feed-forward width = hidden size, ReLU), as in the
    original model; the output projection is tied to the item embedding table. ``save_pretrained`` /
    ``from_pretrained`` write and read ``config.json`` and ``model.safetensors``.
    """

    config_class = SASRecConfig
    base_model_prefix = "sasrec"
    main_input_name = "item_sequences"

    def __init__(self, config: SASRecConfig):
        super().__init__(config)
        self.item_embeddings = nn.Embedding(config.num_items + 1, config.hidden_size, padding_idx=PADDING_INDEX)
        self.position_embeddings = nn.Embedding(config.max_history_length, config.hidden_size)
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
        self.post_init()
        if self.item_embeddings.weight.device.type != "meta":  # from_pretrained builds on meta, then loads
            self.init_from_seed()

    def _init_weights(self, module: nn.Module) -> None:
        """Nothing per module: `init_from_seed` draws all weights from one seeded generator at once."""

    @torch.no_grad()
    def init_from_seed(self) -> None:
        """All weights from ``config.init_seed``, in parameter order: the same seed gives the same weights.
        Normal(0, 0.02) matrices and embeddings, unit LayerNorm scales, zero biases, a zero padding row."""
        generator = torch.Generator().manual_seed(self.config.init_seed)
        for name, parameter in self.named_parameters():
            if "norm" in name and name.endswith("weight"):
                parameter.fill_(1.0)
            elif name.endswith("bias"):
                parameter.zero_()
            else:
                parameter.normal_(0.0, 0.02, generator=generator)
        self.item_embeddings.weight[PADDING_INDEX].zero_()

    def forward(self, item_sequences: torch.Tensor) -> torch.Tensor:
        """Hidden state after every prefix.

        Args:
            item_sequences: [B, L] item indices, left-padded with 0, ``L <= max_history_length``.
        Returns:
            [B, L, H]: row ``t`` summarises items ``0..t`` (outputs at padding positions are meaningless).
        """
        length, max_length = item_sequences.shape[1], self.config.max_history_length
        if length > max_length:
            raise ValueError(f"sequence length {length} exceeds max_history_length {max_length}")
        positions = torch.arange(max_length - length, max_length, device=item_sequences.device)
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

    def _last_hidden(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """[U, H]: the hidden state after each history's last item."""
        return self(left_pad(histories, self.config.max_history_length).to(self.device))[:, -1]

    # ----------------------------------------------------------------------------- RecBole's protocol
    def calculate_loss(self, sequences: Sequence[Sequence[int]], num_negatives: int | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean full-softmax cross-entropy of predicting every item of each sequence from its prefix.

        Each sequence ``s`` (length >= 2) gives inputs ``s[:-1]`` and targets ``s[1:]`` (its last
        ``max_history_length + 1`` items). Scores are computed only at real (non-padding) positions.
        With ``num_negatives``, a sampled softmax instead: ``num_negatives`` items drawn uniformly (with
        replacement, from ``generator``) are the negatives of every position, with the logQ correction and a draw
        of a position's own target left out (`sampled_softmax_loss`); no [positions, catalog] scores.
        """
        max_length = self.config.max_history_length
        window = max_length + 1
        inputs = left_pad([s[-window:-1] for s in sequences], max_length).to(self.device)
        targets = left_pad([s[-window:][1:] for s in sequences], max_length).to(self.device)
        hidden = self(inputs)
        is_target = targets != PADDING_INDEX
        if num_negatives is not None:
            return self._sampled_loss(hidden[is_target], targets[is_target], num_negatives, generator)
        scores = self.item_scores(hidden[is_target])  # [N, num_items + 1]
        return nn.functional.cross_entropy(scores, targets[is_target])

    def _sampled_loss(self, hidden: torch.Tensor, targets: torch.Tensor, num_negatives: int,
                      generator: torch.Generator | None) -> torch.Tensor:
        """Mean `sampled_softmax_loss` of [N, H] hidden states for [N] target items, uniform shared negatives."""
        num_items = self.config.num_items
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        drawn, log_q = draw_shared_negatives(num_items, num_negatives, generator)
        negatives = (drawn + 1).to(self.device)  # items are 1..num_items
        negative_logits = hidden @ self.item_embeddings(negatives).T  # [N, U]
        positive_logits = (hidden * self.item_embeddings(targets)).sum(-1)
        positive_log_q = torch.full_like(positive_logits, math.log(num_negatives / num_items))
        hits = negatives[None, :] == targets[:, None]
        return sampled_softmax_loss(positive_logits, negative_logits, positive_log_q, log_q.to(self.device), hits).mean()

    @torch.no_grad()
    def predict(self, histories: Sequence[Sequence[int]], candidates: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Scores of given candidates: ``candidates`` [U, C] item indices -> [U, C] scores on the CPU."""
        self.eval()
        scores = []
        for start in range(0, len(histories), batch_size):
            hidden = self._last_hidden(histories[start : start + batch_size])  # [b, H]
            chunk_candidates = candidates[start : start + batch_size].to(self.device)
            scores.append((self.item_embeddings(chunk_candidates) @ hidden.unsqueeze(-1)).squeeze(-1).cpu())
        return torch.cat(scores)

    @torch.no_grad()
    def full_sort_predict(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """Scores of the whole catalog for one batch of histories: [U, num_items + 1] on the model's device,
        padding and every item of the history at -inf."""
        self.eval()
        scores = self.item_scores(self._last_hidden(histories))
        rows = torch.tensor([row for row, history in enumerate(histories) for _ in history], device=self.device)
        columns = torch.tensor([item for history in histories for item in history], device=self.device)
        scores[rows, columns] = float("-inf")
        return scores

    @torch.no_grad()
    def top_k(self, histories: Sequence[Sequence[int]], k: int, batch_size: int = 512,
              item_chunk: int | None = DEFAULT_ITEM_CHUNK) -> torch.Tensor:
        """Full-catalog ranking with every item of the history excluded, in batches of ``batch_size`` users.

        Args:
            histories: one non-empty item list per user (all of it is masked; the last items are read).
            item_chunk: items scored at once, a running top-k keeping the best (memory [batch, chunk] instead of
                [batch, catalog]; the same items as one pass); None: the whole catalog at once.
        Returns:
            [U, k] item indices on the CPU, best first.
        Raises:
            ValueError: when a history leaves fewer than ``k`` items to rank.
        """
        longest = max(len(set(history)) for history in histories)
        if self.config.num_items - longest < k:
            raise ValueError(f"a history of {longest} items leaves fewer than k={k} of {self.config.num_items} to rank")
        if item_chunk is None or item_chunk >= self.config.num_items + 1:
            return torch.cat([self.full_sort_predict(histories[start : start + batch_size]).topk(k, dim=-1).indices.cpu()
                              for start in range(0, len(histories), batch_size)])
        self.eval()
        return torch.cat([self._chunked_top_k(histories[start : start + batch_size], k, item_chunk)
                          for start in range(0, len(histories), batch_size)])

    def _chunked_top_k(self, histories: Sequence[Sequence[int]], k: int, item_chunk: int) -> torch.Tensor:
        """`top_k` of one batch of users over chunks of ``item_chunk`` items (index 0, the padding, never)."""
        hidden = self._last_hidden(histories)  # [b, H]
        rows = torch.tensor([row for row, history in enumerate(histories) for _ in history], device=self.device)
        items = torch.tensor([item for history in histories for item in history], device=self.device)
        weights = self.item_embeddings.weight
        best_scores = hidden.new_full((len(histories), 0), float("-inf"))
        best_items = torch.zeros((len(histories), 0), dtype=torch.long, device=self.device)
        for start in range(1, self.config.num_items + 1, item_chunk):
            end = min(start + item_chunk, self.config.num_items + 1)
            scores = hidden @ weights[start:end].T  # [b, chunk]
            inside = (items >= start) & (items < end)
            scores[rows[inside], items[inside] - start] = float("-inf")
            best_scores, best_items = running_top_k(best_scores, best_items, scores, start, k)
        return best_items.cpu()
