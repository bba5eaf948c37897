"""Recommendation by decoding catalog item ids: a trie-constrained beam search written for item ids, exact
rankings, and the policy around them (exclusions, candidate subsets, de-duplication, missing ids).

Hub custom code: this file imports only ``torch``, ``transformers`` and its sibling files.

`RDRecForConditionalGeneration.generate(..., item_index=...)` delegates here. Three ways to decode
([`ItemDecoding`]):

- ``beam``: beam search over the catalog trie. The encoder runs once per example and each example keeps one
  copy of the cross-attention keys and values, which its beams read by broadcasting; beams are chosen by a
  top-k over the allowed trie children only, and only the small self-attention cache is reordered. It keeps
  the rules of transformers' beam search with ``length_penalty=0`` and ``early_stopping=False`` (the best
  ``2 * num_beams`` continuations per step; a hypothesis that ends among the best ``num_beams`` of them is
  finished), so it returns the same items and scores.
- ``exact``: the exact ranking of every allowed item. With one-token ids one decoder step scores the whole
  catalog, in chunks of ``chunk_size`` items with a running top-k (memory ``[batch, chunk]``, never
  ``[batch, catalog]``: catalogs of a million items); with longer ids the trie is walked level by level, so each
  shared prefix is decoded once.
- ``transformers``: `GenerationMixin.generate` with [`ItemTrieLogitsProcessor`], the reference the other two
  are tested against.

Scores are sums of log-probabilities normalised over the whole vocabulary (EOS included where the scheme
ends ids with it), the quantity of `RDRecForConditionalGeneration.score_candidates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import torch
from transformers import GenerationMixin, LogitsProcessorList
from transformers.utils import ModelOutput, logging

from .item_index import ItemIndex, ItemTrieLogitsProcessor

logger = logging.get_logger(__name__)

# transformers' beam search fills unused hypothesis slots with scores of about -1e9; real items score far above.
DUMMY_BEAM_SCORE = -1e8
# The defaults of every ranking call and command: 20 beams (the paper's), the top 10 items.
DEFAULT_NUM_BEAMS = 20
DEFAULT_TOP_K = 10
# Items (and vocabulary rows) scored at once by the chunked exact ranking of one-token ids.
DEFAULT_EXACT_CHUNK_SIZE = 65536


class ItemDecoding(str, Enum):
    """How `generate(..., item_index=...)` finds the top items."""

    BEAM = "beam"  # trie beam search written for item ids (the default for multi-token ids)
    EXACT = "exact"  # every allowed item scored (the default for one-token ids: one decoder step)
    TRANSFORMERS = "transformers"  # GenerationMixin beam search + ItemTrieLogitsProcessor (the reference)

    @classmethod
    def default_for(cls, item_index: ItemIndex) -> "ItemDecoding":
        return cls.EXACT if item_index.is_single_token else cls.BEAM


@dataclass
class ItemGenerationOutput(ModelOutput):
    """Result of `generate(..., item_index=...)`.

    Args:
        item_ids: per example, up to `num_return_sequences` distinct allowed catalog ids, best first.
        scores: per example, the sequence log-likelihood of each returned id (sum over its target tokens,
            EOS included; the same quantity as [`RDRecForConditionalGeneration.score_candidates`]).
        num_missing: per example, how many ids fewer than asked were returned (0 unless fewer allowed items
            exist than `num_return_sequences`, or the beams found fewer).
    """

    item_ids: list[list[str]] | None = None
    scores: list[list[float]] | None = None
    num_missing: list[int] | None = None


# ------------------------------------------------------------------------------------------ the decoder
class T5ItemDecoder:
    """Incremental decoding of a T5 decoder for `[B, W]` rows: W beams (or trie nodes) of each of B examples.

    The cross-attention keys and values are projected once per example (`[B, H, S, d_kv]` per layer) and
    every row of the example attends to them by broadcasting. The self-attention cache holds `[B, W, H, t,
    d_kv]` per layer and follows the rows through `step(..., parents=...)`. Dropout is not applied (decoding
    is inference). The arithmetic is T5's: unscaled dot-product attention, the first block's relative position
    bias in every self-attention, RMS layer norms, the tied-embedding output scaling.

    Args:
        model: a `T5ForConditionalGeneration` (or subclass).
        encoder_states: `[B, S, D]` encoder output. encoder_mask: `[B, S]`, 1 for real positions.
        max_steps: the most decoder steps that will be taken (sizes the position-bias table).
    """

    def __init__(self, model, encoder_states: torch.Tensor, encoder_mask: torch.Tensor, max_steps: int):
        self.model = model
        self.decoder = model.decoder
        config = model.config
        self.num_heads, self.d_kv = config.num_heads, config.d_kv
        batch_size, source_length = encoder_states.shape[:2]
        self.cross_keys, self.cross_values = [], []
        for block in self.decoder.block:
            attention = block.layer[1].EncDecAttention
            shape = (batch_size, source_length, self.num_heads, self.d_kv)
            self.cross_keys.append(attention.k(encoder_states).view(shape).transpose(1, 2))  # [B, H, S, d_kv]
            self.cross_values.append(attention.v(encoder_states).view(shape).transpose(1, 2))
        blocked = torch.finfo(encoder_states.dtype).min
        self.cross_bias = torch.zeros(encoder_mask.shape, dtype=encoder_states.dtype, device=encoder_states.device)
        self.cross_bias = self.cross_bias.masked_fill(encoder_mask == 0, blocked)[:, None, None, :]  # [B, 1, 1, S]
        bias_layer = self.decoder.block[0].layer[0].SelfAttention
        # [H, T, T]: query position t attends to keys 0..t with bias[:, t, :t + 1].
        self.self_bias = bias_layer.compute_bias(max_steps, max_steps, device=encoder_states.device)[0]
        self.self_bias = self.self_bias.to(encoder_states.dtype)
        self.keys: list[torch.Tensor | None] = [None] * len(self.decoder.block)
        self.values: list[torch.Tensor | None] = [None] * len(self.decoder.block)
        self.num_steps = 0

    def step(self, tokens: torch.LongTensor, parents: torch.LongTensor | None = None) -> torch.Tensor:
        """Feed one token per row and return the next token's log-probabilities.

        Args:
            tokens: `[B, W]` the rows' latest tokens (the decoder start token at the first step).
            parents: `[B, W]` for each row, the row of the previous step it continues (its cache); None at
                the first step, or when the rows are unchanged.
        Returns:
            `[B, W, V]` float32 log-softmax over the whole vocabulary.
        """
        return self.model.lm_head(self.hidden_step(tokens, parents)).float().log_softmax(-1)

    def hidden_step(self, tokens: torch.LongTensor, parents: torch.LongTensor | None = None) -> torch.Tensor:
        """`step` up to the output layer: `[B, W, D]` decoder states (scaled as the output layer reads them)."""
        batch_size, width = tokens.shape
        position = self.num_steps
        heads, d_kv = self.num_heads, self.d_kv
        hidden = self.decoder.embed_tokens(tokens)  # [B, W, D]
        for layer, block in enumerate(self.decoder.block):
            self_attention = block.layer[0]
            normed = self_attention.layer_norm(hidden)
            attention = self_attention.SelfAttention
            query = attention.q(normed).view(batch_size, width, heads, 1, d_kv)
            key = attention.k(normed).view(batch_size, width, heads, 1, d_kv)
            value = attention.v(normed).view(batch_size, width, heads, 1, d_kv)
            if self.keys[layer] is not None:
                past_keys, past_values = self.keys[layer], self.values[layer]
                if parents is not None:
                    index = parents[:, :, None, None, None].expand(-1, -1, *past_keys.shape[2:])
                    past_keys, past_values = past_keys.gather(1, index), past_values.gather(1, index)
                key, value = torch.cat([past_keys, key], dim=3), torch.cat([past_values, value], dim=3)
            self.keys[layer], self.values[layer] = key, value  # [B, W, H, t + 1, d_kv]
            weights = (query @ key.transpose(-1, -2)).squeeze(3) + self.self_bias[:, position, : position + 1]
            context = (weights.softmax(-1)[:, :, :, None, :] @ value).reshape(batch_size, width, heads * d_kv)
            hidden = hidden + attention.o(context)

            cross_attention = block.layer[1]
            normed = cross_attention.layer_norm(hidden)
            attention = cross_attention.EncDecAttention
            query = attention.q(normed).view(batch_size, width, heads, d_kv).transpose(1, 2)  # [B, H, W, d_kv]
            weights = query @ self.cross_keys[layer].transpose(-1, -2) + self.cross_bias  # [B, H, W, S]
            context = (weights.softmax(-1) @ self.cross_values[layer]).transpose(1, 2)  # [B, W, H, d_kv]
            hidden = hidden + attention.o(context.reshape(batch_size, width, heads * d_kv))
            hidden = block.layer[2](hidden)
        hidden = self.decoder.final_layer_norm(hidden)
        if self.model.config.scale_decoder_outputs:
            hidden = hidden * (self.model.config.d_model**-0.5)
        self.num_steps += 1
        return hidden


def _children(item_index: ItemIndex, nodes: torch.LongTensor, allowed_counts: torch.LongTensor, depth: int):
    """The allowed trie children of `[B, W]` nodes at `depth` (-1: no node), padded to the depth's widest node.

    Returns `(tokens, children, allowed)`, each `[B, W, C]`: the edge tokens, the child nodes and whether the
    child leads to an allowed item of the row's example. C is fixed by the trie, so nothing waits on the device.
    """
    trie = item_index.on_device(nodes.device)
    node_edge_start = trie["node_edge_start"]
    safe = nodes.clamp(min=0)
    start = node_edge_start[safe]
    count = torch.where(nodes >= 0, node_edge_start[safe + 1] - start, torch.zeros_like(start))
    offsets = torch.arange(item_index.max_children[depth], device=nodes.device)
    valid = offsets < count[..., None]
    edge = (start[..., None] + offsets).clamp(max=trie["edge_child"].numel() - 1)
    children = trie["edge_child"][edge]
    example_counts = allowed_counts.gather(1, children.flatten(1)).view(children.shape)
    return trie["edge_token"][edge], children, valid & (example_counts > 0)


def _root_rows(model, batch_size: int, device: torch.device):
    """The first step's rows, one per example: `(tokens, nodes, scores)`, each `[B, 1]` (start token, root, 0)."""
    tokens = torch.full((batch_size, 1), model.config.decoder_start_token_id, dtype=torch.long, device=device)
    return tokens, torch.zeros_like(tokens), torch.zeros((batch_size, 1), device=device)


def _scored_children(decoder, item_index, allowed_counts, tokens, nodes, parents, scores, depth: int):
    """One decoder step for the rows, then their allowed children with the rows' scores added.

    Returns `(edge_tokens, children, allowed, child_scores)`, each `[B, W, C]` (-inf where not allowed).
    """
    log_probs = decoder.step(tokens, parents)  # [B, W, V]
    edge_tokens, children, allowed = _children(item_index, nodes, allowed_counts, depth)
    child_scores = torch.where(allowed, scores[..., None] + log_probs.gather(2, edge_tokens), -torch.inf)
    return edge_tokens, children, allowed, child_scores


def _next_rows(edge_tokens, children, picked: torch.LongTensor):
    """The rows of the next step from `[B, W']` picks into the flattened `[B, W * C]` children:
    `(parents, tokens, nodes)`, each `[B, W']`."""
    parents = torch.div(picked, edge_tokens.shape[2], rounding_mode="floor")
    return parents, edge_tokens.flatten(1).gather(1, picked), children.flatten(1).gather(1, picked)


# ------------------------------------------------------------------------------------------ beam search
def trie_beam_search(
    model,
    encoder_states: torch.Tensor,
    encoder_mask: torch.Tensor,
    item_index: ItemIndex,
    allowed_counts: torch.LongTensor,
    num_beams: int,
) -> tuple[torch.LongTensor, torch.Tensor]:
    """Beam search over the catalog trie; the finished hypotheses of each example, best first.

    Args:
        encoder_states: `[B, S, D]`. encoder_mask: `[B, S]`.
        allowed_counts: `[B, num_nodes + 1]` from `item_index.allowed_counts`.
    Returns:
        `(positions [B, num_beams], scores [B, num_beams])`: catalog positions (-1 for an empty slot, score
        -inf) of the finished hypotheses, sorted by score.
    """
    batch_size, device = encoder_states.shape[0], encoder_states.device
    allowed_counts = allowed_counts.to(device)
    decoder = T5ItemDecoder(model, encoder_states, encoder_mask, item_index.max_length)
    leaf_item = item_index.on_device(device)["leaf_item"]
    minus_inf = torch.tensor(float("-inf"), device=device)
    # One live row per example at the first step: transformers' copies of it score -1e9 and never count.
    tokens, nodes, beam_scores = _root_rows(model, batch_size, device)
    parents = None
    finished_scores = torch.full((batch_size, num_beams), float("-inf"), device=device)
    finished_items = torch.full((batch_size, num_beams), -1, dtype=torch.long, device=device)
    check_early_stop = device.type == "cpu"  # a host sync per step; elsewhere the loop runs max_length steps
    for step in range(item_index.max_length):
        edge_tokens, children, _, candidate_scores = _scored_children(
            decoder, item_index, allowed_counts, tokens, nodes, parents, beam_scores, step
        )
        candidate_scores = candidate_scores.flatten(1)  # [B, W * C]
        top_scores, top = candidate_scores.topk(min(2 * num_beams, candidate_scores.shape[1]), dim=1)
        top_children = children.flatten(1).gather(1, top)
        last_step = step == item_index.max_length - 1
        if item_index.scheme.ends_with_eos and not last_step:
            ended = edge_tokens.flatten(1).gather(1, top) == item_index.eos_token_id
        else:  # fixed-length ids end at max_length; the last step ends every hypothesis (max_new_tokens)
            ended = torch.full_like(top, last_step, dtype=torch.bool)
        real = top_scores > float("-inf")
        # Finished: hypotheses that end among the best num_beams continuations.
        rank = torch.arange(top.shape[1], device=device)
        newly_finished = ended & real & (rank < num_beams)
        merged_scores = torch.cat([finished_scores, torch.where(newly_finished, top_scores, minus_inf)], dim=1)
        merged_items = torch.cat([finished_items, leaf_item[top_children].masked_fill(~newly_finished, -1)], dim=1)
        finished_scores, order = merged_scores.topk(num_beams, dim=1)
        finished_items = merged_items.gather(1, order)
        if last_step:
            break
        # Running: the best num_beams continuations that did not end.
        running_scores = torch.where(ended | ~real, minus_inf, top_scores)
        beam_scores, keep = running_scores.topk(min(num_beams, running_scores.shape[1]), dim=1)
        parents, tokens, nodes = _next_rows(edge_tokens, children, top.gather(1, keep))
        nodes = nodes.masked_fill(beam_scores == float("-inf"), -1)
        if check_early_stop:
            # Done (transformers' rule with length_penalty=0): num_beams finished, none worse than the best running.
            full = finished_scores[:, -1] > float("-inf")
            stuck = beam_scores[:, 0] == float("-inf")  # nothing left to extend
            if bool(((full & (beam_scores[:, 0] <= finished_scores[:, -1])) | stuck).all()):
                break
    return finished_items, finished_scores


# ------------------------------------------------------------------------------------------ exact ranking
def exact_item_scores(
    model,
    encoder_states: torch.Tensor,
    encoder_mask: torch.Tensor,
    item_index: ItemIndex,
    allowed_counts: torch.LongTensor,
) -> torch.Tensor:
    """The log-likelihood of every allowed item, `[B, num_items]` in catalog order (-inf where not allowed).

    One-token ids take one decoder step. Longer ids walk the trie level by level: the rows of a level are the
    allowed nodes of each example (padded to the example with the most), so a prefix shared by many items is
    decoded once. The cost grows with the number of allowed trie nodes: cheap for a candidate subset (top-N),
    costly for a whole catalog of multi-token ids. The number of rows of the next level is read from the
    device once per level.
    """
    batch_size, device = encoder_states.shape[0], encoder_states.device
    allowed_counts = allowed_counts.to(device)
    decoder = T5ItemDecoder(model, encoder_states, encoder_mask, item_index.max_length)
    leaf_item = item_index.on_device(device)["leaf_item"]
    # One spare last column takes the -inf writes of the children that are not items.
    scores = torch.full((batch_size, len(item_index) + 1), float("-inf"), device=device)
    tokens, nodes, prefix_scores = _root_rows(model, batch_size, device)
    parents = None
    rows = torch.arange(batch_size, device=device)[:, None]
    for depth in range(item_index.max_length):
        edge_tokens, children, allowed, child_scores = _scored_children(
            decoder, item_index, allowed_counts, tokens, nodes, parents, prefix_scores, depth
        )
        items = leaf_item[children]
        is_item = allowed & (items >= 0)  # each item is one leaf, reached once
        flat_items = torch.where(is_item, items, len(item_index)).flatten(1)
        scores[rows, flat_items] = torch.where(is_item, child_scores, -torch.inf).flatten(1)
        inner = (allowed & (items < 0)).flatten(1)  # prefixes that continue
        width = int(inner.sum(1).max()) if inner.numel() else 0
        if width == 0:
            break
        # Pack each example's continuing prefixes to the left: [B, width] rows for the next step.
        order = inner.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :width]
        live = inner.gather(1, order)
        parents, tokens, nodes = _next_rows(edge_tokens, children, order)
        nodes = nodes.masked_fill(~live, -1)
        prefix_scores = child_scores.flatten(1).gather(1, order).masked_fill(~live, float("-inf"))
    return scores[:, :-1]


def single_token_items(item_index: ItemIndex, device: torch.device) -> torch.LongTensor:
    """`[num_items]` the one target token of each catalog position (one-token ids), from the trie's root edges."""
    trie = item_index.on_device(device)
    tokens = torch.empty(len(item_index), dtype=torch.long, device=device)
    tokens[trie["leaf_item"][trie["edge_child"]]] = trie["edge_token"]
    return tokens


def _output_rows(model, hidden: torch.Tensor, rows: torch.LongTensor | slice) -> torch.Tensor:
    """`[B, R]` float32 output-layer logits of `hidden` `[B, D]` for vocabulary `rows` only."""
    bias = model.lm_head.bias[rows] if getattr(model.lm_head, "bias", None) is not None else None
    return torch.nn.functional.linear(hidden, model.lm_head.weight[rows], bias).float()


def running_top_k(best_scores: torch.Tensor, best_ids: torch.LongTensor, scores: torch.Tensor, first_id: int, k: int):
    """One step of a top-k over chunks: the best `k` of `[B, k']` kept `(best_scores, best_ids)` and a chunk's
    `[B, C]` `scores` of ids `first_id .. first_id + C - 1`; returns the new `(best_scores, best_ids)`, best first."""
    ids = torch.arange(first_id, first_id + scores.shape[1], device=scores.device).expand(scores.shape[0], -1)
    scores, ids = torch.cat([best_scores, scores], dim=1), torch.cat([best_ids, ids], dim=1)
    best_scores, order = scores.topk(min(k, scores.shape[1]), dim=1)
    return best_scores, ids.gather(1, order)


def exact_top_items(
    model,
    encoder_states: torch.Tensor,
    encoder_mask: torch.Tensor,
    item_index: ItemIndex,
    num_return_sequences: int,
    exclude_positions: Sequence[Sequence[int]] | None = None,
    chunk_size: int = DEFAULT_EXACT_CHUNK_SIZE,
) -> tuple[torch.LongTensor, torch.Tensor]:
    """The exact top items of one-token ids in bounded memory: `_top_items(exact_item_scores(...))` without the
    `[B, num_items]` scores.

    One decoder step. The catalog is scored `chunk_size` items at a time and a running top-k of the raw logits keeps
    the best `num_return_sequences` (the log-softmax subtracts one constant per row: the same order); the
    log-normaliser over the whole vocabulary is a logsumexp accumulated over the same chunks (and over chunks of the
    other output rows), subtracted at the end. When the item tokens are one ascending block of the vocabulary (as
    `ItemIdScheme.add_tokens` adds them) the chunks are slices of the output layer, read once; otherwise rows are
    gathered and the normaliser takes a pass of its own. Memory: `[B, chunk_size]` scores (plus a gathered chunk).

    Args:
        encoder_states: `[B, S, D]`. encoder_mask: `[B, S]`.
        exclude_positions: per example, catalog positions that may not be returned (e.g. the history).
    Returns:
        `(positions [B, R], scores [B, R])`, best first; position -1 (score -inf) where fewer items are allowed.
    """
    if not item_index.is_single_token:
        raise ValueError("exact_top_items needs one-token item ids; use exact_item_scores for longer ids")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    batch_size, device = encoder_states.shape[0], encoder_states.device
    decoder = T5ItemDecoder(model, encoder_states, encoder_mask, 1)
    tokens, _, _ = _root_rows(model, batch_size, device)
    hidden = decoder.hidden_step(tokens)[:, 0]  # [B, D]
    vocab_size, num_items = model.lm_head.weight.shape[0], len(item_index)
    item_tokens = single_token_items(item_index, device)
    first = int(item_tokens[0])
    block = bool((item_tokens == torch.arange(first, first + num_items, device=device)).all())
    # The rows the item chunks do not cover: the text vocabulary (and any padding rows) around the block.
    other_rows = [(0, first), (first + num_items, vocab_size)] if block else [(0, vocab_size)]
    log_norm = torch.full((batch_size,), float("-inf"), device=device)
    for row_start, row_end in other_rows:
        for start in range(row_start, row_end, chunk_size):
            rows = slice(start, min(start + chunk_size, row_end))
            log_norm = torch.logaddexp(log_norm, _output_rows(model, hidden, rows).logsumexp(-1))
    rows = torch.tensor([row for row, items in enumerate(exclude_positions or []) for _ in items], dtype=torch.long,
                        device=device)
    excluded = torch.tensor([item for items in exclude_positions or [] for item in items], dtype=torch.long,
                            device=device)
    best_scores = torch.full((batch_size, 0), float("-inf"), device=device)
    best_positions = torch.zeros((batch_size, 0), dtype=torch.long, device=device)
    for start in range(0, num_items, chunk_size):
        end = min(start + chunk_size, num_items)
        scores = _output_rows(model, hidden, slice(first + start, first + end) if block else item_tokens[start:end])
        if block:  # the excluded items count in the normaliser too
            log_norm = torch.logaddexp(log_norm, scores.logsumexp(-1))
        inside = (excluded >= start) & (excluded < end)
        scores[rows[inside], excluded[inside] - start] = float("-inf")
        best_scores, best_positions = running_top_k(best_scores, best_positions, scores, start, num_return_sequences)
    best_scores = best_scores - log_norm[:, None]
    return _padded_top(best_positions, best_scores, num_return_sequences)


def _top_items(scores: torch.Tensor, num_return_sequences: int) -> tuple[torch.LongTensor, torch.Tensor]:
    """`[B, num_items]` item scores -> `(positions, scores)` `[B, R]`, best first, -1 where none is left."""
    k = min(num_return_sequences, scores.shape[1])
    top_scores, positions = scores.topk(k, dim=1)
    return _padded_top(positions, top_scores, num_return_sequences)


def _padded_top(positions: torch.LongTensor, top_scores: torch.Tensor, num_return_sequences: int):
    """`[B, k]` best positions and scores -> `[B, R]`: -1 where the score is -inf, padded with -1 / -inf to R."""
    positions = positions.masked_fill(top_scores == float("-inf"), -1)
    k = positions.shape[1]
    if k < num_return_sequences:  # fewer catalog items than asked: pad so num_missing counts them
        pad = num_return_sequences - k
        positions = torch.cat([positions, positions.new_full((positions.shape[0], pad), -1)], 1)
        top_scores = torch.cat([top_scores, top_scores.new_full((top_scores.shape[0], pad), float("-inf"))], 1)
    return positions, top_scores


# ------------------------------------------------------------------------------------------ the policy
def collect_items(
    item_index: ItemIndex, allowed_counts: torch.LongTensor | None, positions: torch.LongTensor, scores: torch.Tensor
) -> ItemGenerationOutput:
    """Distinct allowed items per example from `[B, R]` catalog positions (-1: none) and their scores
    (`allowed_counts` None: every position given is allowed)."""
    positions, scores = positions.cpu(), scores.float().cpu()
    batch_size, num_return_sequences = positions.shape
    # Keep complete items allowed for their example; drop dummy/truncated hypotheses and repeats.
    keep = (positions >= 0) & (scores > DUMMY_BEAM_SCORE)
    if allowed_counts is not None:
        keep &= allowed_counts.cpu().gather(1, item_index.item_leaf[positions.clamp(min=0)]) > 0
    item_ids, item_scores, num_missing = [], [], []
    for example_positions, example_scores, example_keep in zip(positions.tolist(), scores.tolist(), keep.tolist()):
        seen: dict[int, float] = {}
        for position, score, kept in zip(example_positions, example_scores, example_keep):
            if kept and position not in seen:
                seen[position] = score
        item_ids.append([item_index.item_ids[position] for position in seen])
        item_scores.append(list(seen.values()))
        num_missing.append(num_return_sequences - len(seen))
    if any(num_missing):
        logger.warning(
            f"item decoding returned fewer than {num_return_sequences} items for "
            f"{sum(1 for missing in num_missing if missing)} of {batch_size} examples ({sum(num_missing)} ids "
            "missing in all): fewer allowed items exist or the beams found fewer; no ids were filled in"
        )
    return ItemGenerationOutput(item_ids=item_ids, scores=item_scores, num_missing=num_missing)


def generate_items(
    model,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    item_index: ItemIndex,
    exclude_items: Sequence[Sequence[str]] | None = None,
    candidate_items: Sequence[Sequence[str] | None] | None = None,
    num_beams: int = DEFAULT_NUM_BEAMS,
    num_return_sequences: int | None = None,
    decoding: ItemDecoding | str | None = None,
    logits_processor: LogitsProcessorList | None = None,
    chunk_size: int | None = DEFAULT_EXACT_CHUNK_SIZE,
    **generate_kwargs,
) -> ItemGenerationOutput:
    """The top allowed catalog items of each example (see the module docstring for `decoding`).

    Args:
        inputs_embeds: `[B, L, D]` encoder input embeddings. attention_mask: `[B, L]`.
        exclude_items / candidate_items: see [`ItemIndex.allowed_counts`].
        num_beams: beams of the search; also the default of `num_return_sequences`.
        decoding: an [`ItemDecoding`]; None picks `exact` for one-token ids and `beam` otherwise.
        logits_processor, generate_kwargs: only for `decoding="transformers"` (passed to `generate`).
        chunk_size: `exact` ranking of one-token ids over the whole catalog (no candidate lists): items scored at
            a time (`exact_top_items`; the same items, memory `[B, chunk_size]`); None: all at once.
    """
    batch_size = inputs_embeds.shape[0]
    num_return_sequences = num_beams if num_return_sequences is None else num_return_sequences
    decoding = ItemDecoding.default_for(item_index) if decoding is None else ItemDecoding(decoding)
    if decoding is not ItemDecoding.EXACT and num_return_sequences > num_beams:
        raise ValueError(f"num_return_sequences ({num_return_sequences}) cannot exceed num_beams ({num_beams})")
    if decoding is not ItemDecoding.TRANSFORMERS and (logits_processor or generate_kwargs):
        raise ValueError(
            f"decoding={decoding.value!r} takes no logits_processor or generation arguments "
            f"({sorted(generate_kwargs)}); use decoding='transformers' for those"
        )
    whole_catalog = candidate_items is None or all(candidates is None for candidates in candidate_items)
    if decoding is ItemDecoding.EXACT and item_index.is_single_token and whole_catalog and chunk_size is not None:
        if exclude_items is not None and len(exclude_items) != batch_size:
            raise ValueError(f"exclude_items has {len(exclude_items)} entries but the batch has {batch_size} examples")
        excluded = [item_index.positions(items, "excluded item") for items in exclude_items] if exclude_items else None
        encoder_states = model.encoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
        positions, top_scores = exact_top_items(model, encoder_states, attention_mask, item_index,
                                                num_return_sequences, excluded, chunk_size)
        return collect_items(item_index, None, positions, top_scores)
    allowed_counts = item_index.allowed_counts(batch_size, exclude_items, candidate_items)
    if decoding is ItemDecoding.TRANSFORMERS:
        return _transformers_beam_search(
            model, inputs_embeds, attention_mask, item_index, allowed_counts, num_beams, num_return_sequences,
            logits_processor, **generate_kwargs,
        )  # fmt: skip
    encoder_states = model.encoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
    if decoding is ItemDecoding.EXACT:
        scores = exact_item_scores(model, encoder_states, attention_mask, item_index, allowed_counts)
        positions, top_scores = _top_items(scores, num_return_sequences)
    else:
        positions, top_scores = trie_beam_search(
            model, encoder_states, attention_mask, item_index, allowed_counts, num_beams
        )
        positions, top_scores = positions[:, :num_return_sequences], top_scores[:, :num_return_sequences]
    return collect_items(item_index, allowed_counts, positions, top_scores)


def _transformers_beam_search(
    model, inputs_embeds, attention_mask, item_index, allowed_counts, num_beams, num_return_sequences,
    logits_processor, **generate_kwargs,
) -> ItemGenerationOutput:  # fmt: skip
    """GenerationMixin's beam search with the trie as a LogitsProcessor: the reference implementation."""
    batch_size = inputs_embeds.shape[0]
    processors = LogitsProcessorList(logits_processor or [])
    processors.append(ItemTrieLogitsProcessor(item_index, allowed_counts, num_beams))
    generate_kwargs.setdefault("max_new_tokens", item_index.max_length)
    generate_kwargs.setdefault("length_penalty", 0.0)
    generate_kwargs.setdefault("early_stopping", False)
    output = GenerationMixin.generate(
        model,
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        num_beams=num_beams,
        num_return_sequences=num_return_sequences,
        logits_processor=processors,
        return_dict_in_generate=True,
        output_scores=True,  # needed for sequences_scores; the per-step scores are dropped right away
        **generate_kwargs,
    )
    del output.scores
    positions = item_index.items_of_sequences(output.sequences[:, 1:]).view(batch_size, num_return_sequences)
    return collect_items(item_index, allowed_counts, positions, output.sequences_scores.view(batch_size, -1))


__all__ = [
    "DUMMY_BEAM_SCORE",
    "ItemDecoding",
    "ItemGenerationOutput",
    "DEFAULT_EXACT_CHUNK_SIZE",
    "T5ItemDecoder",
    "exact_item_scores",
    "exact_top_items",
    "running_top_k",
    "generate_items",
    "trie_beam_search",
]
