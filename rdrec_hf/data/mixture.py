"""The training task mixture, tokenised once: each epoch's draw is array work on token ids.

A prompt is its template's words joined by single spaces, and the T5 tokenizer splits on whitespace before
anything else (SentencePiece's Metaspace pre-tokenizer; the scheme's new item tokens are whole vocabulary
entries), so a prompt's tokens are its words' tokens laid end to end, then EOS
(``tests/data/test_data_tasks.py`` checks this against the tokenizer on every template, task and scheme). So:

- at build (:class:`PromptWords`), every word a prompt can hold is tokenised once: each template's fixed
  words, each user's mention as the templates write it (``user_12``, ``user_12:``), each item's mention, and
  the text targets; item mentions become ids and whole-word ids come from character offsets as in
  :func:`rdrec_hf.models.prompting.encode_prompts` (both through
  :func:`rdrec_hf.models.item_ids.tokenize_with_item_ids`). The words are then composed once into the pieces prompts
  are laid from (:class:`TokenPieces`): per ranking template the text before its list for every user and the
  text after it, per text template every review prompt, every item's mention;
- an epoch's draw (:meth:`TrainingMixture.set_epoch`) draws segments, positives, negatives and templates as
  numpy arrays from seeded generators, writes each example as a row of pieces (prefix, items, suffix) and
  composes the rows into token ids, whole-word ids and labels (:mod:`rdrec_hf.data.ragged`): no tokenizer
  call, no Python loop per example;
- a batch (:meth:`TrainingMixture.__getitems__`) is a gather of its rows, padded by the collator in one
  assignment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch
from datasets import Dataset, DatasetDict

from ..models.item_ids import ItemIdScheme, as_list, tokenize_with_item_ids
from ..models.prompting import MAX_HISTORY_ITEMS, whole_word_ids
from ..models.tasks import TASK_SPECS, Task, TaskKind
from .ragged import (
    Ragged,
    concat_columns,
    concat_rows,
    empty_rows,
    exclusive_cumsum,
    ragged_positions,
    row_of_values,
    scalar_column,
    shuffle_within_rows,
)
from .schema import ITEMS, USERS, item_id_scheme, sample_negative_rows

logger = logging.getLogger(__name__)

LIST_FIELDS = ("{history}", "{candidates}")


class SlotKind(str, Enum):
    """What one word of a template holds."""

    FIXED = "fixed"  # the template's own text
    USER = "user"  # the user's mention, as the word writes it (``user_{user}:``)
    ITEM = "item"  # the item's mention
    LIST = "list"  # the history or the candidates: a run of item mentions


@dataclass(frozen=True)
class TemplateSlot:
    """One word of a template."""

    kind: SlotKind
    text: str = ""  # the fixed word, or the user pattern (e.g. "user_{user}:")


def template_slots(template: str) -> tuple[TemplateSlot, ...]:
    """The words of a template (split on single spaces, as :func:`rdrec_hf.models.prompting.render` joins them)."""
    slots = []
    for word in template.split(" "):
        if word in LIST_FIELDS:
            slots.append(TemplateSlot(SlotKind.LIST))
        elif "{user}" in word:
            slots.append(TemplateSlot(SlotKind.USER, word))
        elif word == "{item}":
            slots.append(TemplateSlot(SlotKind.ITEM))
        elif "{" in word:
            raise ValueError(f"template {template!r}: a field must be a word of its own or a user mention ({word!r})")
        else:
            slots.append(TemplateSlot(SlotKind.FIXED, word))
    return tuple(slots)


@dataclass(frozen=True)
class TokenPieces:
    """A table of token runs that prompts are laid from: words at first, then prefixes, suffixes and mentions.

    ``tokens`` holds each piece's token ids; ``ordinals`` (aligned with ``tokens.values``) the number of the
    user / item mention a token belongs to within its piece (0: none), ``mentions`` each piece's count of them;
    ``words`` each piece's rows of word indices (its text, for inspection).
    """

    tokens: Ragged
    ordinals: np.ndarray
    mentions: np.ndarray
    words: Ragged

    def compose(self, rows: Ragged, with_words: bool = True) -> "TokenPieces":
        """Pieces made of rows of these pieces laid end to end, mentions numbered along each row (as
        :func:`rdrec_hf.models.prompting.whole_word_ids` numbers them along a prompt)."""
        lengths = self.tokens.lengths[rows.values]
        positions = ragged_positions(self.tokens.offsets[rows.values], lengths)
        mentions = self.mentions[rows.values]
        before = Ragged(mentions, rows.lengths).segment_cumsum() - mentions
        local = self.ordinals[positions]
        row = row_of_values(rows.lengths)
        words = rows.expand(self.words) if with_words else self.words
        return TokenPieces(
            Ragged(self.tokens.values[positions], np.bincount(row, lengths, len(rows)).astype(np.int64)),
            np.where(local > 0, local + np.repeat(before, lengths), 0),
            np.bincount(row, mentions, len(rows)).astype(np.int64), words)

    def truncated(self, max_length: int) -> tuple[Ragged, Ragged]:
        """Token ids and whole-word ids of every piece cut to ``max_length`` tokens keeping the last (EOS), as
        the tokenizer's truncation does."""
        kept = np.minimum(self.tokens.lengths, max_length)
        positions = ragged_positions(self.tokens.offsets, kept)
        cut = np.flatnonzero(kept < self.tokens.lengths)
        positions[(exclusive_cumsum(kept) + kept - 1)[cut]] = (self.tokens.offsets + self.tokens.lengths - 1)[cut]
        return (Ragged(self.tokens.values[positions], kept),
                Ragged(self.ordinals[positions], kept))


class PromptWords:
    """Every word the training prompts of ``tasks`` can hold, tokenised once (:attr:`table`), and templates
    filled as rows of word indices.

    Args:
        tokenizer: a fast tokenizer holding the scheme's new tokens (`ItemIdScheme.add_tokens`).
        scheme: the catalog's item-id scheme. user_ids / item_ids: the dataset's users and catalog, in order.
        tasks: the tasks whose templates are needed.
    """

    def __init__(self, tokenizer, scheme: ItemIdScheme, user_ids: Sequence[str], item_ids: Sequence[str], tasks):
        self.templates = {
            (task, prompt.kind): [template_slots(template) for template in prompt.templates]
            for task in tasks for prompt in TASK_SPECS[task].prompts
        }  # fmt: skip
        slots = [slot for templates in self.templates.values() for template in templates for slot in template]
        fixed = sorted({slot.text for slot in slots if slot.kind is SlotKind.FIXED})
        words = list(fixed)
        self.fixed_word = {word: index for index, word in enumerate(fixed)}
        self.user_word = {}
        for pattern in sorted({slot.text for slot in slots if slot.kind is SlotKind.USER}):
            self.user_word[pattern] = np.arange(len(words), len(words) + len(user_ids))
            words.extend(pattern.format(user=user_id) for user_id in user_ids)
        self.item_word = np.arange(len(words), len(words) + len(item_ids))
        words.extend(scheme.mention(item_id) for item_id in item_ids)
        encoded = tokenize_with_item_ids(tokenizer, words, add_special_tokens=False)
        ordinals = [whole_word_ids(word, offsets) for word, offsets in zip(words, encoded["offset_mapping"])]
        self.eos_word = len(words)  # EOS closes every prompt; it has no text
        words.append("")
        self.words = words
        self.table = TokenPieces(
            Ragged.from_rows([*encoded["input_ids"], [tokenizer.eos_token_id]]),
            Ragged.from_rows([*ordinals, [0]]).values,
            np.array([max(row, default=0) for row in ordinals] + [0], dtype=np.int64),
            scalar_column(np.arange(len(words))))

    def fill(self, slots: Sequence[TemplateSlot], users: np.ndarray, items: np.ndarray | None = None,
             eos: bool = False) -> Ragged:
        """Word rows of ``len(users)`` texts of template ``slots`` (no list slot): user / item indices, EOS last."""
        count = len(users)
        columns = []
        for slot in slots:
            if slot.kind is SlotKind.FIXED:
                columns.append(scalar_column(np.full(count, self.fixed_word[slot.text])))
            elif slot.kind is SlotKind.USER:
                columns.append(scalar_column(self.user_word[slot.text][users]))
            elif slot.kind is SlotKind.ITEM:
                columns.append(scalar_column(self.item_word[items]))
            else:
                raise ValueError("fill() takes the slots before or after a template's list, not the list")
        if eos:
            columns.append(scalar_column(np.full(count, self.eos_word)))
        return concat_columns(columns) if columns else empty_rows(count)

    def text(self, word_row: np.ndarray) -> str:
        return " ".join(self.words[word] for word in word_row if word != self.eos_word)


@dataclass
class Draw:
    """Examples of one task drawn for one epoch: rows of prompt pieces and labels, and what they came from."""

    pieces: Ragged  # rows of indices into the mixture's piece table
    labels: Ragged
    draw: np.ndarray  # the task's draw each example belongs to (a rationale record gives two examples)
    target_items: Ragged  # ranking: item indices of the target; text: empty rows
    target_text: np.ndarray  # text: index into the mixture's target texts; ranking: -1
    history_items: Ragged  # sequential: the history the prompt lists; top-N: the user's training items; text: empty

    def take(self, order: np.ndarray) -> "Draw":
        return Draw(self.pieces.take(order), self.labels.take(order), self.draw[order], self.target_items.take(order),
                    self.target_text[order], self.history_items.take(order))


def concat_draws(draws: Sequence[Draw]) -> Draw:
    rows = {name: concat_rows([getattr(draw, name) for draw in draws])
            for name in ("pieces", "labels", "target_items", "history_items")}
    return Draw(rows["pieces"], rows["labels"], np.concatenate([draw.draw for draw in draws]), rows["target_items"],
                np.concatenate([draw.target_text for draw in draws]), rows["history_items"])


def interleaved_order(task_of_draw: np.ndarray, examples_of_draw: np.ndarray) -> np.ndarray:
    """An order of the draws that spreads every task evenly: draw ``d`` of a task is due when the examples
    placed so far reach the share of that task's examples before ``d`` (ties: the task's order). Every run of
    consecutive examples then holds each task's share up to about one draw."""
    due = np.zeros(len(task_of_draw))
    for task in np.unique(task_of_draw):
        mine = np.flatnonzero(task_of_draw == task)
        examples = examples_of_draw[mine]
        due[mine] = (np.cumsum(examples) - examples) / examples.sum()
    return np.lexsort((task_of_draw, due))


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch``'s draw: ``seed`` itself for epoch 0, then a distinct integer per (seed, epoch)."""
    if epoch == 0:
        return seed
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def draw_segments(rng: np.random.Generator, lengths: np.ndarray, uniform_start: bool) -> tuple[np.ndarray, np.ndarray]:
    """A training segment of each history of ``lengths`` (>= 2) items: its start, uniform over the first
    ``n - 1`` positions (``uniform_start``) or 0, then its target position ``end``, uniform after the start
    (the reference's ``randrange(n - 1)`` then ``randrange(start + 1, n)``, drawn as arrays)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    count = len(lengths)
    start = (rng.random(count) * (lengths - 1)).astype(np.int64) if uniform_start else np.zeros(count, np.int64)
    return start, start + 1 + (rng.random(count) * (lengths - 1 - start)).astype(np.int64)


def _passes(rng: np.random.Generator, units: int, count: int) -> np.ndarray:
    """``count`` unit indices: whole shuffled passes over the units, cut to the count."""
    return np.concatenate([rng.permutation(units) for _ in range(-(-count // units))])[:count]


class TrainingMixture(torch.utils.data.Dataset):
    """The training mixture of one epoch, redrawn by :meth:`set_epoch` (built by
    :func:`rdrec_hf.data.build_training_dataset`, which documents the options).

    At build, the words are composed once into the pieces prompts are laid from (:attr:`pieces`): per ranking
    template, the text before its list for every user and the text after it (EOS included); per text template,
    every prompt of every review record; every item's mention. An epoch's draw is then rows of piece indices
    (prefix, the drawn items, suffix), composed into token ids in one step.

    Map-style: ``__getitems__`` returns a batch's rows as :class:`RaggedExamples` (the collator pads them in one
    step); ``mixture[i]`` one example as lists; :meth:`to_dataset` the draw as a ``datasets.Dataset`` with the
    prompt and target texts, for inspection.
    """

    def __init__(self, data: DatasetDict, tokenizer, draws: Mapping[Task, int], *, units: Mapping[Task, list],
                 num_negatives: int, max_source_length: int, max_target_length: int, sequential_targets: int,
                 uniform_start: bool, interleave: bool, seed_of_epoch: Callable[[int], int]):
        self.tasks, self.draws = list(draws), dict(draws)
        self.num_negatives, self.max_source_length = num_negatives, max_source_length
        self.sequential_targets, self.uniform_start, self.interleave = sequential_targets, uniform_start, interleave
        self.seed_of_epoch = seed_of_epoch
        scheme = item_id_scheme(data)
        users, items = data[USERS], data[ITEMS]
        self.user_ids, self.item_ids = as_list(users["user_id"]), as_list(items["item_id"])
        user_index = {user_id: index for index, user_id in enumerate(self.user_ids)}
        item_index = {item_id: index for index, item_id in enumerate(self.item_ids)}
        # Negatives are drawn as catalog numbers 1..N (the schema's integer ids): each row's number and back.
        item_numbers = np.array([int(item_id) for item_id in self.item_ids], dtype=np.int64)
        self.row_of_number = np.zeros(len(self.item_ids) + 1, dtype=np.int64)
        self.row_of_number[item_numbers] = np.arange(len(self.item_ids))
        all_items = Ragged.from_rows([[item_index[item] for item in row] for row in users["items"]])
        self.numbers_of_user = Ragged(item_numbers[all_items.values], all_items.lengths)  # what negatives exclude
        self.histories = all_items.slice_rows(np.zeros(len(all_items), dtype=np.int64),
                                              np.maximum(all_items.lengths - 2, 0))  # training_history
        self.item_targets = Ragged.from_rows(scheme.target_token_ids(self.item_ids, tokenizer))
        self.words = PromptWords(tokenizer, scheme, self.user_ids, self.item_ids, self.tasks)
        # The pieces, as rows of words: item mentions, then per task and template its prefixes and suffix
        # (ranking) or its prompts of every record (text).
        parts = [scalar_column(self.words.item_word)]
        size = len(self.item_ids)
        self.ranking_units, self.text_units, self.prefix_piece, self.suffix_piece, self.text_piece = {}, {}, {}, {}, {}
        texts = []
        for task in self.tasks:
            if task.spec.kind is TaskKind.RANKING:
                self.ranking_units[task] = np.array([user_index[user_id] for user_id, _ in units[task]], dtype=np.int64)
                prefixes, suffixes = [], []
                for slots in self.words.templates[(task, None)]:
                    split = next(position for position, slot in enumerate(slots) if slot.kind is SlotKind.LIST)
                    if any(slot.kind is not SlotKind.FIXED for slot in slots[split + 1:]):
                        raise ValueError(f"{task.name.lower()}: a ranking template has only fixed words after its list")
                    parts += [self.words.fill(slots[:split], np.arange(len(self.user_ids))),
                              self.words.fill(slots[split + 1:], np.zeros(1, dtype=np.int64), eos=True)]
                    prefixes.append(size)
                    suffixes.append(size + len(self.user_ids))
                    size += len(self.user_ids) + 1
                self.prefix_piece[task], self.suffix_piece[task] = np.array(prefixes), np.array(suffixes)
                continue
            kinds = [prompt.kind for prompt in task.spec.prompts]
            entries = []  # per unit, per prompt: (user, item, prompt kind, target text)
            for user_id, item_id, targets in units[task]:
                entries.append([(user_index[user_id], item_index[item_id], kinds.index(prompt.kind), len(texts) + position)
                                for position, (prompt, _) in enumerate(targets)])
                texts.extend(target for _, target in targets)
            flat = np.array([entry for row in entries for entry in row], dtype=np.int64).reshape(-1, 4)
            self.text_units[task] = (Ragged.from_rows([[entry[0] for entry in row] for row in entries]), flat, kinds)
            longest = max(len(self.words.templates[(task, kind)]) for kind in kinds)
            self.text_piece[task] = np.zeros((len(kinds), longest), dtype=np.int64)
            for kind_index, kind in enumerate(kinds):  # every entry in every template of its kind's prompt
                for template_index, slots in enumerate(self.words.templates[(task, kind)]):
                    parts.append(self.words.fill(slots, flat[:, 0], flat[:, 1], eos=True))
                    self.text_piece[task][kind_index, template_index] = size
                    size += len(flat)
        self.pieces = self.words.table.compose(concat_rows(parts))
        self.texts = texts
        self.text_labels = Ragged.from_rows(
            tokenizer(texts, truncation=True, max_length=max_target_length)["input_ids"] if texts else [])
        self.epoch = None
        self.set_epoch(0)

    # ------------------------------------------------------------------------------------ drawing
    def _draw_ranking(self, task: Task, rng: np.random.Generator, order: np.ndarray) -> Draw:
        users = self.ranking_units[task][order]
        history = self.histories.take(users)
        count, length = len(users), history.lengths
        if task.spec.ranks_candidates:  # the prompt names no history; a teacher reads the user's training items
            history_items = history.slice_rows(np.maximum(0, length - MAX_HISTORY_ITEMS), length)
            positives = history.values[history.offsets + (rng.random(count) * length).astype(np.int64)]
            negatives = sample_negative_rows(rng, len(self.item_ids), self.numbers_of_user.take(users),
                                             self.num_negatives)
            negatives = Ragged(self.row_of_number[negatives.values], negatives.lengths)
            lists = shuffle_within_rows(concat_columns([negatives, scalar_column(positives)]), rng)
            targets = scalar_column(positives)
        else:
            start, end = draw_segments(rng, length, self.uniform_start)
            lists = history_items = history.slice_rows(np.maximum(start, end - MAX_HISTORY_ITEMS), end)
            targets = history.slice_rows(end, np.minimum(end + self.sequential_targets, length))
        template = rng.integers(len(self.prefix_piece[task]), size=count)
        pieces = concat_columns([scalar_column(self.prefix_piece[task][template] + users), lists,
                                 scalar_column(self.suffix_piece[task][template])])  # items are pieces 0..N-1
        return Draw(pieces, targets.expand(self.item_targets), np.arange(count), targets, np.full(count, -1),
                    history_items)

    def _draw_text(self, task: Task, rng: np.random.Generator, order: np.ndarray) -> Draw:
        units, entries, kinds = self.text_units[task]
        positions = ragged_positions(units.offsets[order], units.lengths[order])
        kind = entries[positions, 2]
        template = np.empty(len(positions), dtype=np.int64)
        for kind_index, prompt_kind in enumerate(kinds):
            mine = kind == kind_index
            template[mine] = rng.integers(len(self.words.templates[(task, prompt_kind)]), size=int(mine.sum()))
        empty = empty_rows(len(positions))
        return Draw(scalar_column(self.text_piece[task][kind, template] + positions),
                    self.text_labels.take(entries[positions, 3]), row_of_values(units.lengths[order]), empty,
                    entries[positions, 3], empty)

    def draw_epoch(self, seed: int) -> tuple[Draw, np.ndarray]:
        """Every task's examples of one epoch's draw in training order (seeded by ``seed``), and their tasks."""
        parts, task_of_draw, examples_of_draw, task_of_example = [], [], [], []
        first_draw = 0
        for task in self.tasks:
            rng = np.random.default_rng([seed, int(task)])  # per task: a task's samples do not depend on the others
            units = len(self.ranking_units[task]) if task in self.ranking_units else len(self.text_units[task][0])
            order = _passes(rng, units, self.draws[task])
            draw = (self._draw_ranking if task in self.ranking_units else self._draw_text)(task, rng, order)
            task_of_draw.append(np.full(self.draws[task], int(task)))
            examples_of_draw.append(np.bincount(draw.draw, minlength=self.draws[task]))
            task_of_example.append(np.full(len(draw.draw), int(task)))
            draw.draw = draw.draw + first_draw
            first_draw += self.draws[task]
            parts.append(draw)
        draw = concat_draws(parts)
        if self.interleave:  # a record's examples stay side by side, in one batch
            rank = np.empty(first_draw, dtype=np.int64)
            rank[interleaved_order(np.concatenate(task_of_draw), np.concatenate(examples_of_draw))] = np.arange(first_draw)
            order = np.lexsort((np.arange(len(draw.draw)), rank[draw.draw]))
        else:
            order = np.random.default_rng(seed).permutation(len(draw.draw))
        return draw.take(order), np.concatenate(task_of_example)[order]

    def set_epoch(self, epoch: int) -> None:
        """Switch to ``epoch``'s draw (the same number of examples every epoch)."""
        if epoch == self.epoch:
            return
        draw, task_id = self.draw_epoch(self.seed_of_epoch(epoch))
        if self.epoch is not None and len(task_id) != len(self):
            raise RuntimeError(f"epoch {epoch} drew {len(task_id)} examples, epoch {self.epoch} {len(self)}")
        prompts = self.pieces.compose(draw.pieces, with_words=False)
        at_limit = int((prompts.tokens.lengths >= self.max_source_length).sum())
        if at_limit and self.epoch is None:
            logger.warning("%d of %d prompts reached max_source_length=%d and may be truncated",
                           at_limit, len(task_id), self.max_source_length)
        self.input_ids, self.whole_word_ids = prompts.truncated(self.max_source_length)
        self.current, self.task_id, self.epoch = draw, task_id, epoch

    # ------------------------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self.task_id)

    def lengths(self) -> np.ndarray:
        """Prompt length (tokens) of every example of the current draw."""
        return self.input_ids.lengths

    def __getitems__(self, indices: Sequence[int]) -> "RaggedExamples":
        rows = np.asarray(indices, dtype=np.int64)
        return RaggedExamples(self.input_ids.take(rows), self.whole_word_ids.take(rows),
                              self.current.labels.take(rows), self.task_id[rows], self.current.history_items.take(rows))

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": self.input_ids.row(index).tolist(),
                "attention_mask": [1] * int(self.input_ids.lengths[index]),
                "whole_word_ids": self.whole_word_ids.row(index).tolist(),
                "labels": self.current.labels.row(index).tolist(), "task_id": int(self.task_id[index])}

    def source_text(self, index: int) -> str:
        return self.words.text(np.concatenate([self.pieces.words.row(piece) for piece in self.current.pieces.row(index)]))

    def target_text(self, index: int) -> str:
        if self.current.target_text[index] >= 0:
            return self.texts[self.current.target_text[index]]
        return " ".join(self.item_ids[item] for item in self.current.target_items.row(index))

    def to_dataset(self) -> Dataset:
        """The current draw with ``source_text`` / ``target_text``, for inspection (a loop per example)."""
        rows = [self[index] for index in range(len(self))]
        columns = {name: [row[name] for row in rows] for name in rows[0]} if rows else {}
        columns["source_text"] = [self.source_text(index) for index in range(len(self))]
        columns["target_text"] = [self.target_text(index) for index in range(len(self))]
        return Dataset.from_dict(columns)


@dataclass
class RaggedExamples:
    """A batch's examples as ragged rows (what :class:`TrainingMixture` hands the collator)."""

    input_ids: Ragged
    whole_word_ids: Ragged
    labels: Ragged | None  # None: evaluation examples without labels
    task_id: np.ndarray
    history_items: Ragged | None = None  # catalog positions of each ranking prompt's history (text: empty rows)


__all__ = ["PromptWords", "RaggedExamples", "SlotKind", "TrainingMixture", "draw_segments", "epoch_seed", "interleaved_order",
           "template_slots"]
