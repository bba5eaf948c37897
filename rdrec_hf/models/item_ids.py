"""The item-id rule: how a catalog id appears in prompts, which tokens the model generates for it, and which
new tokens it adds to the vocabulary. The one owner of that rule; builders, templates, whole-word ids and
the decoding trie all go through [`ItemIdScheme`].

Hub custom code: this file imports only the standard library (it is copied beside saved checkpoints).

Schemes ([`ItemIndexing`]; Hua et al., "How to Index Item IDs for Recommendation Foundation Models", 2023):

- ``sequential`` / ``random``: the catalog number written as text. Prompts say ``item_1234``, the target is
  ``"1234"`` tokenised by SentencePiece, EOS appended. ``sequential`` keeps the source's order of first
  appearance, which leaks the test item (see README); every other scheme numbers items by a seeded
  permutation.
- ``independent``: one new token per item, ``<item_1234>``, in prompts and as the one-token target (no EOS:
  all targets have length 1, so one decoder step scores the whole catalog).
- ``collaborative``: the item's path in a hierarchical spectral clustering of the training co-occurrence
  graph, one new token per level and value (``<c0_3><c1_17><c2_5>``; the last level tells apart the items
  of one leaf cluster), EOS appended.
- ``collaborative+independent``: the cluster path without the last level, then the item's own token
  (``<c0_3><c1_17><item_1234>``), EOS appended.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import Enum


class ItemIndexing(str, Enum):
    """How item ids are assigned and written (recorded in the dataset metadata, the catalog and the model card)."""

    SEQUENTIAL = "sequential"  # numbers in order of first appearance (the P5/RDRec data; leaks the test item)
    RANDOM = "random"  # numbers of a seeded random permutation
    INDEPENDENT = "independent"  # one new token per item
    COLLABORATIVE = "collaborative"  # spectral-clustering path, one new token per level and value
    COLLABORATIVE_INDEPENDENT = "collaborative+independent"  # cluster path + the item's own token

    @property
    def is_text(self) -> bool:
        """Ids are numbers written with the existing vocabulary (no new tokens)."""
        return self in (ItemIndexing.SEQUENTIAL, ItemIndexing.RANDOM)

    @property
    def has_item_token(self) -> bool:
        """Every item has a token of its own (``<item_N>``)."""
        return self in (ItemIndexing.INDEPENDENT, ItemIndexing.COLLABORATIVE_INDEPENDENT)

    @property
    def is_collaborative(self) -> bool:
        """Ids need the cluster codes of the training co-occurrence graph."""
        return self in (ItemIndexing.COLLABORATIVE, ItemIndexing.COLLABORATIVE_INDEPENDENT)


# Mentions in prompts: users and text item ids as `user_12` / `item_34`; token ids as a run of new tokens.
MENTION_PATTERN = re.compile(r"(?<![A-Za-z0-9_])(?:user|item)_\d+(?!\d)|(?:<(?:item|c\d+)_\d+>)+")


def item_token(item_id: str) -> str:
    """The independent token of an item: ``"1234" -> "<item_1234>"``."""
    return f"<item_{item_id}>"


def code_token(level: int, value: int) -> str:
    """The collaborative token of one level: ``(1, 17) -> "<c1_17>"``."""
    return f"<c{level}_{value}>"


class ItemIdScheme:
    """The item-id rule of one catalog.

    Args:
        indexing: the scheme.
        codes: collaborative schemes only: per catalog id, its cluster path (root label first, the
            within-leaf number last), e.g. from `rdrec_hf.data.item_graph.collaborative_codes`.
    """

    def __init__(self, indexing: ItemIndexing | str, codes: Mapping[str, Sequence[int]] | None = None):
        self.indexing = ItemIndexing(indexing)
        if self.indexing.is_collaborative and codes is None:
            raise ValueError(f"the {self.indexing.value} scheme needs the items' cluster codes (codes=...)")
        if not self.indexing.is_collaborative and codes is not None:
            raise ValueError(f"the {self.indexing.value} scheme takes no cluster codes")
        self.codes = {str(item): [int(value) for value in code] for item, code in codes.items()} if codes else None
        if self.codes is not None:
            empty = next((item for item, code in self.codes.items() if not code), None)
            if empty is not None:
                raise ValueError(f"item {empty!r} has an empty cluster code")

    def __repr__(self) -> str:
        return f"ItemIdScheme({self.indexing.value!r}{', ' + str(len(self.codes)) + ' codes' if self.codes else ''})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ItemIdScheme) and self.to_dict() == other.to_dict()

    @property
    def ends_with_eos(self) -> bool:
        """Targets end with EOS; `independent` targets are one token each, so they need none."""
        return self.indexing is not ItemIndexing.INDEPENDENT

    def _code(self, item_id: str) -> list[int]:
        try:
            return self.codes[item_id]
        except KeyError:
            raise KeyError(f"item {item_id!r} has no cluster code in this {self.indexing.value} scheme") from None

    def item_tokens(self, item_id: str) -> list[str]:
        """The new vocabulary tokens that spell `item_id` (empty for the text schemes)."""
        item_id = str(item_id)
        if self.indexing.is_text:
            return []
        if self.indexing is ItemIndexing.INDEPENDENT:
            return [item_token(item_id)]
        code = self._code(item_id)
        if self.indexing is ItemIndexing.COLLABORATIVE:
            return [code_token(level, value) for level, value in enumerate(code)]
        return [code_token(level, value) for level, value in enumerate(code[:-1])] + [item_token(item_id)]

    def mention(self, item_id: str) -> str:
        """How `item_id` appears in prompts (one whole-word mention, see `MENTION_PATTERN`)."""
        return f"item_{item_id}" if self.indexing.is_text else "".join(self.item_tokens(item_id))

    def target_text(self, item_id: str) -> str:
        """The decoder target of `item_id` as text (tokenised with EOS when `ends_with_eos`)."""
        return str(item_id) if self.indexing.is_text else self.mention(item_id)

    def new_tokens(self, item_ids: Sequence[str]) -> list[str]:
        """Every new token the catalog `item_ids` needs, each once, in first-use order."""
        return list(dict.fromkeys(token for item_id in item_ids for token in self.item_tokens(item_id)))

    def target_token_ids(self, item_ids: Sequence[str], tokenizer) -> list[list[int]]:
        """Target token ids of each item with `tokenizer` (which must hold `new_tokens(item_ids)`)."""
        # One item's tokens stand for the catalog's; `get_vocab()` would copy the whole vocabulary per call.
        missing = [token for token in self.new_tokens(item_ids[:1])
                   if tokenizer.convert_tokens_to_ids(token) in (None, tokenizer.unk_token_id)]
        if missing:
            raise ValueError(
                f"the tokenizer lacks the {self.indexing.value} item tokens (e.g. {missing[0]!r}); "
                "add them with scheme.add_tokens(tokenizer, item_ids)"
            )
        if self.indexing.is_text:
            texts = [self.target_text(item_id) for item_id in item_ids]
            return tokenizer(texts, add_special_tokens=self.ends_with_eos)["input_ids"]
        # New tokens are whole vocabulary entries: their ids directly (what tokenising the mention gives, without
        # running the tokenizer over every target of every epoch's draw).
        eos = [tokenizer.eos_token_id] if self.ends_with_eos else []
        return [tokenizer.convert_tokens_to_ids(self.item_tokens(item_id)) + eos for item_id in item_ids]

    def add_tokens(self, tokenizer, item_ids: Sequence[str]) -> int:
        """Add the catalog's new tokens to `tokenizer` (in place); returns how many were new to it."""
        return tokenizer.add_tokens(self.new_tokens(item_ids)) if not self.indexing.is_text else 0

    def to_dict(self) -> dict:
        return {"indexing": self.indexing.value, "codes": self.codes}

    @classmethod
    def from_dict(cls, payload: Mapping) -> "ItemIdScheme":
        return cls(payload["indexing"], payload.get("codes"))


__all__ = ["MENTION_PATTERN", "ItemIdScheme", "ItemIndexing", "code_token", "item_token"]
