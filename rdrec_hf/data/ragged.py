"""Ragged integer rows stored flat (numpy), and the few vectorised operations the training data path needs.

A training example is a run of words, a word a run of tokens, a history a run of items: all of them are rows of
varying length. Keeping them as one flat array plus per-row offsets lets an epoch's draw and a batch's collation
be a handful of numpy gathers instead of a Python loop per example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def exclusive_cumsum(lengths: np.ndarray) -> np.ndarray:
    """``[3, 1, 2] -> [0, 3, 4]``: where each row starts when the rows are laid end to end."""
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return starts


def ragged_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without the loop."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    return np.repeat(np.asarray(starts, dtype=np.int64) - exclusive_cumsum(lengths), lengths) + np.arange(total)


def row_of_values(lengths: np.ndarray) -> np.ndarray:
    """The row index of every flat value: ``[2, 0, 1] -> [0, 0, 2]``."""
    return np.repeat(np.arange(len(lengths)), lengths)


@dataclass(frozen=True)
class Ragged:
    """Rows of integers laid end to end in ``values`` (1-D): row ``i`` is
    ``values[offsets[i] : offsets[i] + lengths[i]]``, ``offsets`` derived from ``lengths``."""

    values: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "values", np.asarray(self.values))
        object.__setattr__(self, "lengths", np.asarray(self.lengths, dtype=np.int64))
        if int(self.lengths.sum()) != len(self.values):
            raise ValueError(f"row lengths sum to {int(self.lengths.sum())}, but there are {len(self.values)} values")
        object.__setattr__(self, "offsets", exclusive_cumsum(self.lengths))

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[int]], dtype=np.int64) -> "Ragged":
        lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
        return cls(np.fromiter((value for row in rows for value in row), dtype=dtype, count=int(lengths.sum())), lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def row(self, index: int) -> np.ndarray:
        return self.values[self.offsets[index] : self.offsets[index] + self.lengths[index]]

    def take(self, rows: np.ndarray) -> "Ragged":
        """The given rows (any order, repeats allowed), laid end to end."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        return Ragged(self.values[ragged_positions(self.offsets[rows], lengths)], lengths)

    def slice_rows(self, starts: np.ndarray, stops: np.ndarray) -> "Ragged":
        """Row ``i`` cut to ``[starts[i], stops[i])`` (positions inside the row)."""
        lengths = np.maximum(np.asarray(stops) - np.asarray(starts), 0)
        return Ragged(self.values[ragged_positions(self.offsets + starts, lengths)], lengths)

    def expand(self, values_table: "Ragged") -> "Ragged":
        """Replace every value ``v`` by row ``v`` of ``values_table`` (words -> tokens), rows kept."""
        inner = values_table.take(self.values)
        lengths = np.bincount(row_of_values(self.lengths), weights=inner.lengths, minlength=len(self)).astype(np.int64)
        return Ragged(inner.values, lengths)

    def segment_cumsum(self) -> np.ndarray:
        """Inclusive running sum of the values within each row, flat."""
        total = np.cumsum(self.values, dtype=np.int64)
        before_row = np.where(self.offsets > 0, total[np.maximum(self.offsets - 1, 0)], 0)
        return total - np.repeat(before_row, self.lengths)

    def pad(self, value, pad_to_multiple_of: int | None = None, width: int | None = None,
            left: bool = False) -> np.ndarray:
        """``[rows, width]`` array padded with ``value`` on the right (``left``: on the left, each row ending in
        the last column); width: the longest row, rounded up."""
        longest = int(self.lengths.max(initial=0)) if width is None else width
        if pad_to_multiple_of:
            longest = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
        padded = np.full((len(self), longest), value, dtype=self.values.dtype)
        starts = longest - self.lengths if left else np.zeros(len(self), dtype=np.int64)
        padded[row_of_values(self.lengths), ragged_positions(starts, self.lengths)] = self.values
        return padded


def concat_rows(parts: Sequence[Ragged]) -> Ragged:
    """The rows of every part, one part after the other."""
    return Ragged(np.concatenate([part.values for part in parts]), np.concatenate([part.lengths for part in parts]))


def concat_columns(columns: Sequence[Ragged]) -> Ragged:
    """Row ``i`` of the result is row ``i`` of every column, one after the other."""
    lengths = np.sum([column.lengths for column in columns], axis=0).astype(np.int64)
    starts = exclusive_cumsum(lengths)
    values = np.empty(int(lengths.sum()), dtype=np.result_type(*(column.values.dtype for column in columns)))
    written = np.zeros(len(lengths), dtype=np.int64)
    for column in columns:
        values[ragged_positions(starts + written, column.lengths)] = column.values
        written += column.lengths
    return Ragged(values, lengths)


def scalar_column(values: np.ndarray) -> Ragged:
    """One value per row."""
    values = np.asarray(values)
    return Ragged(values, np.ones(len(values), dtype=np.int64))


def empty_rows(count: int) -> Ragged:
    """``count`` rows without values."""
    return Ragged(np.zeros(0, dtype=np.int64), np.zeros(count, dtype=np.int64))


def shuffle_within_rows(rows: Ragged, rng: np.random.Generator) -> Ragged:
    """Each row's values in a random order of their own."""
    order = np.lexsort((rng.random(len(rows.values)), row_of_values(rows.lengths)))
    return Ragged(rows.values[order], rows.lengths)


__all__ = ["Ragged", "concat_columns", "concat_rows", "empty_rows", "exclusive_cumsum", "ragged_positions", "row_of_values",
           "scalar_column", "shuffle_within_rows"]
