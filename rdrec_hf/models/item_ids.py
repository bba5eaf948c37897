"""The item-id rule: how a catalog id appears in prompts, which tokens the model generates for it, and which
new tokens it adds to the vocabulary. The one owner of that rule; builders, templates, whole-word ids and
the decoding trie all go through [`ItemIdScheme`].

Hub custom code: this file imports only the standard library (it is copied beside saved checkpoints).

Schemes ([`ItemIndexing`]; Hua et al., "How to Index Item IDs for Recommendation Foundation Models", 2023):

- ``sequential`` / ``random``: the catalog number written as text. Prompts say ``item_1234``, the target is
  ``"1234"`` tokenised by SentencePiece, EOS appended. ``sequential`` keeps the source's order of first
  appearance, which leaks the test item (see README); every other scheme numbers items by a seeded
  permutation.
- ``independent``: one token per item, ``<item_1234>``, in prompts and as the one-token target (no EOS:
  all targets have length 1, so one decoder step scores the whole catalog). The tokens are arithmetic: the
  tokenizer holds one placeholder, [`ITEM_PLACEHOLDER`], and item N's id is the placeholder's id + N - 1
  ([`item_token_id`]; see "arithmetic item tokens" below).
- ``collaborative``: the item's path in a hierarchical spectral clustering of the training co-occurrence
  graph, one new token per level and value (``<c0_3><c1_17><c2_5>``; the last level tells apart the items
  of one leaf cluster), EOS appended.
- ``collaborative+independent``: the cluster path without the last level, then the item's own token
  (``<c0_3><c1_17><item_1234>``), EOS appended. Its item tokens are added one per item, interleaved with the code
  tokens in first-use order (the ids its models were trained with).
"""

from __future__ import annotations

import bisect
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


# ------------------------------------------------------------------------------------ arithmetic item tokens
# Earlier versions added one tokenizer token per item, in catalog order after the vocabulary: item N of a catalog
# numbered 1..N in that order (every project dataset's, see `numbered_in_order`) got id len(vocabulary) + N - 1. A
# million such tokens made a 184 MB tokenizer.json that took 26 s to load. Now the tokenizer holds one placeholder
# at that first id, and prompts are tokenised with each `<item_N>` written as the placeholder (an added token like
# the per-item ones, so splitting, offsets and truncation are the same), whose id then becomes item N's: the ids,
# and so a model's rows, are exactly the old ones. A tokenizer that holds every `<item_N>` (saved by earlier
# versions) encodes as it always did.
ITEM_PLACEHOLDER = "<item>"
ITEM_TOKEN_PATTERN = re.compile(r"<item_([1-9][0-9]*)>")  # catalog numbers as `item_token` writes them


def item_token_offset(tokenizer) -> int | None:
    """The id of item 1's token when `tokenizer` numbers item tokens arithmetically (the id of its
    `ITEM_PLACEHOLDER`, its last token); None when it holds each `<item_N>` itself, or no item token."""
    offset = tokenizer.convert_tokens_to_ids(ITEM_PLACEHOLDER)
    if offset is None or offset == tokenizer.unk_token_id:
        return None
    if offset != len(tokenizer) - 1:  # a token added after the placeholder would share an item's id
        raise ValueError(f"the tokenizer has tokens after {ITEM_PLACEHOLDER} (id {offset} of {len(tokenizer)}): the "
                         "item tokens' ids follow it, so they would collide")
    return offset


def item_token_id(item_id: str, offset: int) -> int:
    """The arithmetic id of ``<item_{item_id}>``: `offset` (`item_token_offset`) + the item's catalog position, which
    is ``int(item_id) - 1`` in a catalog `numbered_in_order`."""
    number = int(item_id)
    if number < 1:
        raise ValueError(f"item id {item_id!r}: arithmetic item tokens number items from 1")
    return offset + number - 1


def as_list(values: Sequence) -> list:
    """`values` as a list, read in one step: a `datasets` column (e.g. ``data["items"]["item_id"]``) formats every
    row it yields when iterated, 8 s for a million ids; its slice ``[:]`` is one read of the column."""
    return values if isinstance(values, list) else list(values[:])


def numbered_in_order(item_ids: Sequence[str]) -> bool:
    """Whether the catalog is ``"1", "2", ..., "N"`` in this order (as every project dataset's ``items`` split is),
    so that item N's catalog position is N - 1 and its arithmetic id the one a token per item once had."""
    return all(item == str(number) for number, item in enumerate(item_ids, 1))


def tokenize_with_item_ids(tokenizer, texts: Sequence[str], **options) -> dict:
    """``tokenizer(texts, return_offsets_mapping=True, **options)`` with item tokens by the tokenizer's rule: the
    one way item mentions become ids.

    A tokenizer holding every ``<item_N>`` (or none) tokenises the texts as they are. An arithmetic one
    (`item_token_offset`) tokenises them with each ``<item_N>`` written as `ITEM_PLACEHOLDER`, gives each placeholder
    token its item's `item_token_id`, and maps the offsets back onto the texts: the result is what a tokenizer
    holding every ``<item_N>`` gives. Texts that read the same with placeholders (e.g. the mentions of all items)
    are tokenised once.

    Returns ``input_ids``, ``attention_mask`` and ``offset_mapping``: per text, a list (offsets ``(start, end)``
    in the text's characters).
    """
    offset = item_token_offset(tokenizer)
    if offset is None:
        return tokenizer(list(texts), return_offsets_mapping=True, **options)
    written = [ITEM_TOKEN_PATTERN.sub(ITEM_PLACEHOLDER, text) for text in texts]
    row_of = {text: row for row, text in enumerate(dict.fromkeys(written))}
    encoded = tokenizer(list(row_of), return_offsets_mapping=True, **options)
    input_ids, attention_mask, offset_mapping = encoded["input_ids"], encoded["attention_mask"], encoded["offset_mapping"]
    result = {"input_ids": [], "attention_mask": [], "offset_mapping": []}
    for text, placeholders in zip(texts, written):
        row = row_of[placeholders]
        if placeholders != text or offset in input_ids[row]:  # mentions (maybe cut off), or the placeholder itself
            ids, offsets = _item_tokens_of(text, input_ids[row], offset_mapping[row], offset)
        else:  # copies: texts that read alike do not share their lists
            ids, offsets = list(input_ids[row]), list(offset_mapping[row])
        result["input_ids"].append(ids)
        result["attention_mask"].append(list(attention_mask[row]))
        result["offset_mapping"].append(offsets)
    return result


def _item_tokens_of(text: str, ids: list[int], offsets: list[tuple[int, int]], offset: int):
    """`text`'s ids and offsets from those of its placeholder writing: placeholder tokens become their items'."""
    # Per mention, in the written text: its start -> its item, its end; shifts[k]: the characters that the first k
    # mentions lost to the placeholder.
    item_at, ends, shifts = {}, [], [0]
    for match in ITEM_TOKEN_PATTERN.finditer(text):
        start = match.start() - shifts[-1]
        item_at[start] = match.group(1)
        ends.append(start + len(ITEM_PLACEHOLDER))
        shifts.append(shifts[-1] + len(match.group()) - len(ITEM_PLACEHOLDER))
    try:
        item_ids = [item_token_id(item_at[start], offset) if token == offset else token
                    for token, (start, _) in zip(ids, offsets)]
    except KeyError:
        raise ValueError(f"the text holds {ITEM_PLACEHOLDER} itself, which no item token spells: {text!r}") from None
    # A written position moves by what the mentions that end at or before it lost.
    return item_ids, [(start + shifts[bisect.bisect_right(ends, start)], end + shifts[bisect.bisect_right(ends, end)])
                      for start, end in offsets]


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
        """Every new token that spells the catalog `item_ids`, each once, in first-use order (arithmetic
        `independent` tokens are spelt, not added: `add_tokens` adds only their placeholder)."""
        return list(dict.fromkeys(token for item_id in item_ids for token in self.item_tokens(item_id)))

    def arithmetic_offset(self, tokenizer) -> int | None:
        """`item_token_offset(tokenizer)` for `independent` ids, else None (the other schemes' tokens are added)."""
        return item_token_offset(tokenizer) if self.indexing is ItemIndexing.INDEPENDENT else None

    def target_token_ids(self, item_ids: Sequence[str], tokenizer) -> list[list[int]]:
        """Target token ids of each item with `tokenizer` (which must hold the scheme's tokens: `add_tokens`)."""
        if self.indexing.is_text:
            texts = [self.target_text(item_id) for item_id in item_ids]
            return tokenizer(texts, add_special_tokens=self.ends_with_eos)["input_ids"]
        # The ids that tokenising the mention gives (`tokenize_with_item_ids`), without running the tokenizer over
        # every target of every epoch's draw: arithmetic ids, or the added tokens' ids.
        offset = self.arithmetic_offset(tokenizer)
        if offset is not None:
            return [[item_token_id(item_id, offset)] for item_id in item_ids]
        # One item's tokens stand for the catalog's; `get_vocab()` would copy the whole vocabulary per call.
        missing = [token for token in self.new_tokens(item_ids[:1])
                   if tokenizer.convert_tokens_to_ids(token) in (None, tokenizer.unk_token_id)]
        if missing:
            raise ValueError(
                f"the tokenizer lacks the {self.indexing.value} item tokens (e.g. {missing[0]!r}); "
                "add them with scheme.add_tokens(tokenizer, item_ids)"
            )
        eos = [tokenizer.eos_token_id] if self.ends_with_eos else []
        return [tokenizer.convert_tokens_to_ids(self.item_tokens(item_id)) + eos for item_id in item_ids]

    def add_tokens(self, tokenizer, item_ids: Sequence[str]) -> int:
        """Add the catalog's new tokens to `tokenizer` (in place); returns how many were new to it.

        `independent` ids of a catalog `numbered_in_order` add `ITEM_PLACEHOLDER` alone (arithmetic item tokens);
        a tokenizer that already holds ``<item_N>`` tokens (saved by earlier versions), another catalog and the
        collaborative schemes (a few hundred code tokens, and ``<item_N>`` interleaved with them) get one token
        per new token, as before.
        """
        if self.indexing.is_text:
            return 0
        item_ids = as_list(item_ids)
        if self.indexing is ItemIndexing.INDEPENDENT and item_ids and (
            item_token_offset(tokenizer) is not None
            or (tokenizer.convert_tokens_to_ids(item_token(item_ids[0])) in (None, tokenizer.unk_token_id)
                and numbered_in_order(item_ids))
        ):
            return tokenizer.add_tokens([ITEM_PLACEHOLDER])
        return tokenizer.add_tokens(self.new_tokens(item_ids))

    def to_dict(self) -> dict:
        return {"indexing": self.indexing.value, "codes": self.codes}

    @classmethod
    def from_dict(cls, payload: Mapping) -> "ItemIdScheme":
        return cls(payload["indexing"], payload.get("codes"))


__all__ = [
    "ITEM_PLACEHOLDER",
    "MENTION_PATTERN",
    "ItemIdScheme",
    "ItemIndexing",
    "as_list",
    "code_token",
    "item_token",
    "item_token_id",
    "item_token_offset",
    "numbered_in_order",
    "tokenize_with_item_ids",
]
