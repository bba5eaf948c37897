"""Item catalog of the student: a prefix trie over each item id's target tokens, for constrained decoding.

Hub custom code: this file imports only ``torch`` and ``transformers`` (it is copied beside saved checkpoints).

The decoder target of an item comes from its [`ItemIdScheme`] (``"1234"`` with the text schemes:
``["▁12", "34", "</s>"]`` with the T5 vocabulary; ``["<item_1234>"]`` with independent ids). Targets either
all end with EOS or all have the same length, so the trie's leaves are exactly the catalog items. The trie is
stored as tensors so a whole batch of beams is masked with a few vectorised gathers per decoding step.
Arithmetic independent ids ([`item_ids.item_token_id`]) are saved as their offset alone, not one list per item.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from transformers import LogitsProcessor

from .item_ids import ItemIdScheme, ItemIndexing, as_list, item_token_id

ITEM_INDEX_FILE = "item_index.json"
# 2: the item-id scheme (with collaborative codes) replaces "indexing". 3: columns (item_ids, original_ids, token_ids)
# instead of one object per item, and arithmetic ids as "item_token_offset" without token_ids (a million items:
# 74 MB and 6.6 s to load before).
ITEM_INDEX_FORMAT_VERSION = 3


class ItemIndex:
    """A catalog of item ids with their target token sequences and the prefix trie over them.

    Build with [`ItemIndex.from_catalog`]; persist with [`save`]/[`load`] (one JSON file, `ITEM_INDEX_FILE`).
    `token_ids` may be None with `item_token_offset` (arithmetic `independent` ids): item i's target is then
    `[item_token_id(item_ids[i], item_token_offset)]`.

    Trie tensors (N nodes, node 0 the root, E edges sorted by `parent * vocab_size + token`):
        edge_keys `[E]`: `parent * vocab_size + token`; edge_child `[E]`: the child node;
        edge_token `[E]`: the token; node_edge_start `[N + 1]`: CSR offsets of each node's edges;
        item_paths `[num_items, max_length + 1]`: nodes from the root to each item's leaf, padded with the
        sink column N; item_leaf `[num_items]`: the leaf node of each item; leaf_item `[N]`: catalog
        position of a leaf, -1 elsewhere; subtree_counts `[N + 1]`: items below each node; max_children
        (a list of `max_length` ints): the most children of a node at each depth.
    """

    def __init__(
        self,
        item_ids: Sequence[str],
        token_ids: Sequence[Sequence[int]] | None,
        vocab_size: int,
        eos_token_id: int,
        original_ids: Sequence[str] | None = None,
        scheme: ItemIdScheme | ItemIndexing | str = ItemIndexing.SEQUENTIAL,
        numbering: Mapping | None = None,
        item_token_offset: int | None = None,
    ):
        item_ids = [str(item_id) for item_id in as_list(item_ids)]
        if not item_ids:
            raise ValueError("ItemIndex: the catalog is empty; at least one item id is needed")
        self.scheme = scheme if isinstance(scheme, ItemIdScheme) else ItemIdScheme(scheme)
        if (token_ids is None) == (item_token_offset is None):
            raise ValueError("ItemIndex: give either token_ids or item_token_offset (arithmetic independent ids)")
        if item_token_offset is not None and self.scheme.indexing is not ItemIndexing.INDEPENDENT:
            raise ValueError(f"ItemIndex: item_token_offset is for independent ids, not {self.scheme.indexing.value}")
        if token_ids is not None and len(token_ids) != len(item_ids):
            raise ValueError(f"ItemIndex: {len(item_ids)} item ids but {len(token_ids)} token sequences")
        if original_ids is not None and len(original_ids) != len(item_ids):
            raise ValueError(f"ItemIndex: {len(item_ids)} item ids but {len(original_ids)} original ids")
        self.item_ids = item_ids
        self.item_token_offset = None if item_token_offset is None else int(item_token_offset)
        if token_ids is not None:
            self.token_ids = [list(map(int, tokens)) for tokens in token_ids]
        else:  # one tensor instead of a million one-token lists (`token_ids` is derived when read)
            self._arithmetic_tokens = torch.tensor([item_token_id(item, self.item_token_offset) for item in item_ids])
        self.original_ids = [str(o) for o in as_list(original_ids)] if original_ids is not None else list(item_ids)
        self.vocab_size = int(vocab_size)
        self.eos_token_id = int(eos_token_id)
        # Where the numbering came from (the dataset's indexing, seed and source), named when a dataset disagrees.
        self.numbering = dict(numbering) if numbering is not None else None
        self.position = {item_id: position for position, item_id in enumerate(item_ids)}
        if len(self.position) != len(item_ids):
            duplicate = next(i for n, i in enumerate(item_ids) if i in item_ids[:n])
            raise ValueError(f"ItemIndex: item id {duplicate!r} appears more than once in the catalog")
        self._build_trie()

    @classmethod
    def from_catalog(
        cls,
        item_ids: Sequence[str],
        tokenizer,
        original_ids: Sequence[str] | None = None,
        scheme: ItemIdScheme | ItemIndexing | str = ItemIndexing.SEQUENTIAL,
        numbering: Mapping | None = None,
    ) -> "ItemIndex":
        """Tokenise each item's target (`scheme.target_token_ids`) and build the trie.

        `original_ids[i]` is the source id (e.g. the asin) of `item_ids[i]`; it defaults to the id itself.
        The tokenizer must already hold the scheme's new tokens (`scheme.add_tokens`). With arithmetic item tokens
        the vocabulary runs past the tokenizer's own tokens to the last item's.
        """
        item_ids = [str(item_id) for item_id in as_list(item_ids)]
        if not item_ids:
            raise ValueError("ItemIndex.from_catalog: the catalog is empty; at least one item id is needed")
        if tokenizer.eos_token_id is None:
            raise ValueError("ItemIndex.from_catalog: the tokenizer has no EOS token; item targets must end with one")
        scheme = scheme if isinstance(scheme, ItemIdScheme) else ItemIdScheme(scheme)
        offset = scheme.arithmetic_offset(tokenizer)
        if offset is None:
            token_ids = scheme.target_token_ids(item_ids, tokenizer)
            return cls(item_ids, token_ids, len(tokenizer), tokenizer.eos_token_id, original_ids, scheme, numbering)
        vocab_size = max(len(tokenizer), 1 + max(item_token_id(item_id, offset) for item_id in item_ids))
        return cls(item_ids, None, vocab_size, tokenizer.eos_token_id, original_ids, scheme, numbering, offset)

    @property
    def indexing(self) -> ItemIndexing:
        return self.scheme.indexing

    @property
    def is_single_token(self) -> bool:
        """Every target is one token (independent ids): one decoder step scores the whole catalog exactly."""
        return not self.scheme.ends_with_eos and self.max_length == 1

    @functools.cached_property
    def token_ids(self) -> list[list[int]]:
        """Target token ids of each item, in catalog order (set by `__init__` unless the ids are arithmetic)."""
        return [[token] for token in self._arithmetic_tokens.tolist()]

    @property
    def item_token_ids(self) -> list[int]:
        """The id of each item's own token (``<item_N>``: its last target token before EOS), in catalog order."""
        if not self.indexing.has_item_token:
            raise ValueError(f"{self.indexing.value} ids have no token per item")
        own = -2 if self.scheme.ends_with_eos else -1
        return [tokens[own] for tokens in self.token_ids]

    @functools.cached_property
    def new_token_ids(self) -> list[int]:
        """Ascending vocabulary ids of the scheme's own tokens in this catalog (every target token but EOS; empty
        for numbers as text, whose digits are also text), e.g. to keep them out of generated texts."""
        if self.indexing.is_text:
            return []
        return sorted({token for tokens in self.token_ids for token in tokens} - {self.eos_token_id})

    def _build_trie(self) -> None:
        if not self._build_single_token_trie():
            self._build_trie_item_by_item()
        self._index_trie()

    def _build_single_token_trie(self) -> bool:
        """The trie of one-token ids without EOS (independent ids) with tensor operations, as
        `_build_trie_item_by_item` numbers it (item i's leaf is node i + 1): a million items in a second instead
        of a Python loop over them. False, building nothing, when an id breaks the rule (the loop names it)."""
        if self.item_token_offset is not None:
            tokens = self._arithmetic_tokens
        elif self.scheme.ends_with_eos or any(len(tokens) != 1 for tokens in self.token_ids):
            return False
        else:
            tokens = torch.tensor([tokens[0] for tokens in self.token_ids], dtype=torch.long)
        bad = (tokens < 0) | (tokens >= self.vocab_size) | (tokens == self.eos_token_id)
        if bad.any() or tokens.unique().numel() != len(tokens):
            return False
        count = len(tokens)
        self.num_nodes, self.max_length = count + 1, 1
        order = tokens.argsort()
        self.edge_keys = tokens[order]  # the root's edges: key = 0 * vocab_size + token
        self.edge_child = order + 1
        self.item_leaf = torch.arange(1, count + 1)
        self.item_paths = torch.stack([torch.zeros(count, dtype=torch.long), self.item_leaf], dim=1)
        return True

    def _build_trie_item_by_item(self) -> None:
        children: dict[tuple[int, int], int] = {}
        item_of_leaf: dict[int, str] = {}
        leaf_of_item = []
        paths = []
        fixed_length = len(self.token_ids[0])
        for item_id, tokens in zip(self.item_ids, self.token_ids):
            if self.scheme.ends_with_eos and (
                not tokens or tokens[-1] != self.eos_token_id or self.eos_token_id in tokens[:-1]
            ):
                raise ValueError(
                    f"ItemIndex: target tokens of item {item_id!r} must end with EOS ({self.eos_token_id}) "
                    f"exactly once, got {tokens}"
                )
            if not self.scheme.ends_with_eos and (
                len(tokens) != fixed_length or not tokens or self.eos_token_id in tokens
            ):
                raise ValueError(
                    f"ItemIndex: {self.indexing.value} targets have one fixed length without EOS; item "
                    f"{item_id!r} has {tokens}"
                )
            if not all(0 <= token < self.vocab_size for token in tokens):
                raise ValueError(f"ItemIndex: target tokens of item {item_id!r} exceed the vocabulary: {tokens}")
            node, path = 0, [0]
            for token in tokens:
                node = children.setdefault((node, token), len(children) + 1)
                path.append(node)
            if node in item_of_leaf:
                raise ValueError(
                    f"ItemIndex: items {item_of_leaf[node]!r} and {item_id!r} have the same target tokens {tokens}"
                )
            item_of_leaf[node] = item_id
            leaf_of_item.append(node)
            paths.append(path)
        num_nodes = len(children) + 1
        self.num_nodes = num_nodes
        self.max_length = max(len(tokens) for tokens in self.token_ids)

        edges = sorted((parent * self.vocab_size + token, child) for (parent, token), child in children.items())
        self.edge_keys = torch.tensor([key for key, _ in edges], dtype=torch.long)
        self.edge_child = torch.tensor([child for _, child in edges], dtype=torch.long)
        self.item_paths = torch.full((len(self.item_ids), self.max_length + 1), num_nodes, dtype=torch.long)
        for position, path in enumerate(paths):
            self.item_paths[position, : len(path)] = torch.tensor(path)
        self.item_leaf = torch.tensor(leaf_of_item, dtype=torch.long)

    def _index_trie(self) -> None:
        """What decoding reads besides the edges: each node's first edge, leaves, subtree sizes, fan-outs."""
        num_nodes = self.num_nodes
        self.edge_token = self.edge_keys % self.vocab_size
        self.node_edge_start = torch.searchsorted(
            self.edge_keys, torch.arange(num_nodes + 1, dtype=torch.long) * self.vocab_size
        )
        self.leaf_item = torch.full((num_nodes,), -1, dtype=torch.long)
        self.leaf_item[self.item_leaf] = torch.arange(len(self.item_ids))
        # Items below each node (+1 sink column that absorbs path padding).
        self.subtree_counts = torch.bincount(self.item_paths.flatten(), minlength=num_nodes + 1)
        # The widest fan-out at each depth: decoding pads children to it without asking the device.
        fan_out = torch.bincount(self.edge_keys // self.vocab_size, minlength=num_nodes + 1)
        self.max_children = [int(fan_out[self.item_paths[:, depth]].max()) for depth in range(self.max_length)]
        self._device_copies: dict[torch.device, dict[str, torch.Tensor]] = {}

    def on_device(self, device: torch.device) -> dict[str, torch.Tensor]:
        """The trie tensors used while decoding, copied to `device` once and cached."""
        device = torch.device(device)
        if device not in self._device_copies:
            names = ("edge_keys", "edge_child", "edge_token", "node_edge_start", "leaf_item")
            self._device_copies[device] = {name: getattr(self, name).to(device) for name in names}
        return self._device_copies[device]

    def __len__(self) -> int:
        return len(self.item_ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.position

    def __repr__(self) -> str:
        return (
            f"ItemIndex({len(self)} items, scheme={self.indexing.value!r}, {self.num_nodes} trie nodes, "
            f"max_length={self.max_length}, vocab_size={self.vocab_size})"
        )

    def positions(self, item_ids: Sequence[str], what: str = "item") -> list[int]:
        """Catalog positions of `item_ids`; raises `KeyError` naming the first unknown id."""
        try:
            return [self.position[str(item_id)] for item_id in item_ids]
        except KeyError as error:
            raise KeyError(f"{what} id {error.args[0]!r} is not in the model's item catalog ({len(self)} items)") from None

    def original_id(self, item_id: str) -> str:
        """The source id (e.g. the asin) of a catalog item id."""
        return self.original_ids[self.positions([item_id])[0]]

    def walk(self, prefixes: torch.LongTensor) -> torch.LongTensor:
        """Trie nodes visited by each token prefix.

        Args:
            prefixes: `[R, t]` token ids (without the decoder start token).
        Returns:
            `[R, t + 1]` node ids after 0..t tokens (column 0 is the root); -1 once a prefix leaves the trie.
        """
        trie = self.on_device(prefixes.device)
        keys, child = trie["edge_keys"], trie["edge_child"]
        nodes = torch.zeros(prefixes.shape[0], dtype=torch.long, device=prefixes.device)
        visited = [nodes]
        for step in range(prefixes.shape[1]):
            query = nodes.clamp(min=0) * self.vocab_size + prefixes[:, step]
            found = torch.searchsorted(keys, query).clamp(max=keys.numel() - 1)
            hit = (keys[found] == query) & (nodes >= 0)
            nodes = torch.where(hit, child[found], torch.full_like(nodes, -1))
            visited.append(nodes)
        return torch.stack(visited, dim=1)

    def items_of_sequences(self, sequences: torch.LongTensor) -> torch.LongTensor:
        """Catalog position of each decoded sequence, -1 when it is not a complete catalog item.

        Args:
            sequences: `[R, T]` generated tokens without the decoder start token; everything after the
                first EOS (fixed-length targets: after `max_length` tokens) is ignored (beam search pads finished rows with EOS or pad).
        Returns:
            `[R]` catalog positions or -1.
        """
        if self.scheme.ends_with_eos:
            is_eos = sequences == self.eos_token_id
            eos_length = is_eos.int().argmax(dim=1) + 1  # tokens up to and including the first EOS
            complete = is_eos.any(dim=1) & (eos_length <= self.max_length)
        else:  # fixed-length targets: the first max_length tokens
            eos_length = torch.full((sequences.shape[0],), self.max_length, device=sequences.device)
            complete = torch.full_like(eos_length, sequences.shape[1] >= self.max_length, dtype=torch.bool)
        nodes = self.walk(sequences[:, : self.max_length])
        node_at_eos = nodes.gather(1, eos_length.clamp(max=nodes.shape[1] - 1)[:, None]).squeeze(1)
        leaf = self.on_device(sequences.device)["leaf_item"][node_at_eos.clamp(min=0)]
        return torch.where(complete & (node_at_eos >= 0), leaf, torch.full_like(leaf, -1))

    def allowed_counts(
        self,
        batch_size: int,
        exclude_items: Sequence[Sequence[str]] | None = None,
        candidate_items: Sequence[Sequence[str] | None] | None = None,
    ) -> torch.LongTensor:
        """Per-example number of allowed items below each trie node.

        Example b may generate the items of `candidate_items[b]` (the whole catalog when that list or entry is
        None) except those in `exclude_items[b]`. A node with count 0 is pruned from decoding.

        Returns:
            `[batch_size, num_nodes + 1]` counts (the last column is the padding sink).
        """
        for name, per_example in (("exclude_items", exclude_items), ("candidate_items", candidate_items)):
            if per_example is not None and len(per_example) != batch_size:
                raise ValueError(f"{name} has {len(per_example)} entries but the batch has {batch_size} examples")
        counts = self.subtree_counts.repeat(batch_size, 1)
        rows, items, signs = [], [], []
        for example in range(batch_size):
            excluded = set(self.positions(exclude_items[example], "excluded item")) if exclude_items else set()
            candidates = candidate_items[example] if candidate_items is not None else None
            if candidates is None:
                chosen, sign = sorted(excluded), -1
            else:
                counts[example] = 0
                chosen, sign = sorted(set(self.positions(candidates, "candidate item")) - excluded), 1
            rows += [example] * len(chosen)
            items += chosen
            signs += [sign] * len(chosen)
        if items:
            paths = self.item_paths[torch.tensor(items)]  # [M, max_length + 1]
            flat = torch.tensor(rows)[:, None] * (self.num_nodes + 1) + paths
            updates = torch.tensor(signs)[:, None].expand_as(paths)
            counts.view(-1).index_add_(0, flat.flatten(), updates.flatten())
        return counts

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the catalog (ids, original ids, item-id scheme, target tokens or their arithmetic offset) to
        `directory/ITEM_INDEX_FILE`."""
        path = Path(directory) / ITEM_INDEX_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format_version": ITEM_INDEX_FORMAT_VERSION,
            "indexing": self.indexing.value,
            "scheme": self.scheme.to_dict(),
            "vocab_size": self.vocab_size,
            "eos_token_id": self.eos_token_id,
            "numbering": self.numbering,
            "item_token_offset": self.item_token_offset,
            "item_ids": self.item_ids,
            "original_ids": self.original_ids,
            **({"token_ids": self.token_ids} if self.item_token_offset is None else {}),
        }
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=0), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ItemIndex":
        """Read a catalog written by [`save`] (or by earlier versions: one object per item); `path` is the file or
        the folder holding `ITEM_INDEX_FILE`."""
        path = Path(path)
        if path.is_dir():
            path = path / ITEM_INDEX_FILE
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: line {error.lineno}: not valid JSON ({error.msg})") from None
        if not isinstance(payload, dict):
            raise ValueError(f"{path}: an item index is a JSON object with the catalog's item ids, not a "
                             f"{type(payload).__name__}")
        version = payload.get("format_version")
        if version not in (1, 2, ITEM_INDEX_FORMAT_VERSION):
            raise ValueError(f"{path}: item index format_version {version!r}, expected {ITEM_INDEX_FORMAT_VERSION}")
        for key in ("vocab_size", "eos_token_id", "scheme" if version > 1 else "indexing"):
            if key not in payload:
                raise ValueError(f"{path}: no {key!r}; the file is not an item index written by ItemIndex.save")
        # Version 1 catalogs hold text ids only: their "indexing" is the whole scheme.
        scheme = ItemIdScheme.from_dict(payload["scheme"]) if version > 1 else ItemIdScheme(payload["indexing"])
        columns = _catalog_columns(payload, path) if version > 2 else _item_columns(payload, path)
        return cls(columns["item_ids"], columns.get("token_ids"), payload["vocab_size"], payload["eos_token_id"],
                   columns["original_ids"], scheme, payload.get("numbering"), payload.get("item_token_offset"))


def _catalog_columns(payload: dict, path: Path) -> dict[str, list]:
    """The catalog's columns of a version 3 file (`token_ids` only without an arithmetic `item_token_offset`)."""
    names = ["item_ids", "original_ids"] + (["token_ids"] if payload.get("item_token_offset") is None else [])
    columns = {name: payload.get(name) for name in names}
    wrong = [name for name, column in columns.items() if not isinstance(column, list)]
    if wrong:
        raise ValueError(f"{path}: no {wrong[0]!r} list; the file is not an item index written by ItemIndex.save")
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{path}: the catalog's columns differ in length: {lengths}")
    return columns


def _item_columns(payload: dict, path: Path) -> dict[str, list]:
    """The catalog's columns of a version 1 or 2 file (an "items" list of one object per item)."""
    items = payload.get("items")
    if not isinstance(items, list):
        raise ValueError(f"{path}: no \"items\" list")
    keys = {"item_ids": "item_id", "original_ids": "original_id", "token_ids": "token_ids"}
    for number, entry in enumerate(items):
        missing = [key for key in keys.values() if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise ValueError(f"{path}: items[{number}] lacks {missing}; every entry needs item_id, original_id and "
                             "token_ids")
    return {column: [entry[key] for entry in items] for column, key in keys.items()}


class ItemTrieLogitsProcessor(LogitsProcessor):
    """Masks every token that does not continue a beam towards an allowed catalog item.

    Allowed means: a trie child whose per-example count (see [`ItemIndex.allowed_counts`]) is positive, so
    excluded items and items outside a candidate subset can never be completed. Rows with no allowed
    continuation (dummy beams, or an example whose allowed set is empty) get -inf everywhere; beam search
    then keeps them below every real hypothesis and the caller drops them.

    Args:
        item_index: the catalog trie.
        allowed_counts: `[batch_size, num_nodes + 1]` from `item_index.allowed_counts`.
        num_beams: beams per example (rows of the generation batch are example-major).
        prompt_length: decoder tokens before the first generated one (1: the decoder start token).
    """

    def __init__(self, item_index: ItemIndex, allowed_counts: torch.LongTensor, num_beams: int, prompt_length: int = 1):
        self.item_index = item_index
        self.allowed_counts = allowed_counts
        self.num_beams = num_beams
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """`input_ids` `[R, t]` (R = batch * beams), `scores` `[R, V]` -> scores with disallowed tokens at -inf."""
        device = scores.device
        trie = self.item_index.on_device(device)
        if self.allowed_counts.device != device:
            self.allowed_counts = self.allowed_counts.to(device)
        nodes = self.item_index.walk(input_ids[:, self.prompt_length :])[:, -1]
        live = nodes >= 0
        node_edge_start = trie["node_edge_start"]
        safe_nodes = nodes.clamp(min=0)
        start = node_edge_start[safe_nodes]
        edge_counts = torch.where(live, node_edge_start[safe_nodes + 1] - start, torch.zeros_like(start))
        # Enumerate all (row, edge) pairs of the rows' current nodes at once (CSR gather).
        row_of_edge = torch.repeat_interleave(torch.arange(nodes.shape[0], device=device), edge_counts)
        first_pair_of_row = torch.cumsum(edge_counts, 0) - edge_counts
        edge = start[row_of_edge] + torch.arange(row_of_edge.numel(), device=device) - first_pair_of_row[row_of_edge]
        child = trie["edge_child"][edge]
        example = torch.div(row_of_edge, self.num_beams, rounding_mode="floor")
        allowed = self.allowed_counts[example, child] > 0
        masked = torch.full_like(scores, float("-inf"))
        rows, tokens = row_of_edge[allowed], trie["edge_token"][edge[allowed]]
        masked[rows, tokens] = scores[rows, tokens]
        return masked


__all__ = ["ITEM_INDEX_FILE", "ItemIndex", "ItemTrieLogitsProcessor"]
