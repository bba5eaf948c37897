"""``RationaleGenerator``: distil reviews into a user-preference and an item-attribute rationale per row."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate import PartialState
from datasets import Dataset, DatasetDict, Value
from tqdm.auto import tqdm

from ..data.schema import METADATA, METADATA_FEATURES, get_metadata
from .backends import Sampling, Teacher, TeacherAnswer, TeacherRequest, load_teacher, teacher_name
from .distillation_config import DistillationConfig, TeacherBackendType
from .parsing import ParsedAnswer, RationaleStatus, failed_answer, parse_answer, worst_status
from .prompts import ANSWER_OPENINGS, PROMPT_VERSION, RationaleField, build_messages
from .shards import ShardStore

RATIONALE_COLUMNS = (RationaleField.USER_PREFERENCE.value, RationaleField.ITEM_ATTRIBUTE.value, "rationale_status")
PROVENANCE_KEY = "rdrec_rationale_distillation"


@dataclass
class DistillationSummary:
    """Counts of a finished run (all rows, all processes) and this process's throughput in this session."""

    rows: int = 0  # rows distilled (the first ``limit`` rows when a limit is set)
    not_distilled: int = 0  # rows beyond ``limit``: kept, rationale columns left null
    statuses: Counter = field(default_factory=Counter)  # rationale_status -> rows
    failures: Counter = field(default_factory=Counter)  # reason -> answers (two answers per row)
    repairs: Counter = field(default_factory=Counter)  # repair rule -> answers
    empty_reviews: int = 0
    truncated_reviews: int = 0
    dropped_rows: int = 0
    resumed_batches: int = 0
    session_rows: int = 0
    session_new_tokens: int = 0
    session_seconds: float = 0.0

    @property
    def parse_rate(self) -> float:
        """Share of rows whose status is ``ok`` or ``repaired``."""
        return (self.rows - self.statuses[RationaleStatus.FAILED.value]) / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "statuses": dict(self.statuses), "parse_rate": round(self.parse_rate, 4),
                "failures": dict(self.failures), "repairs": dict(self.repairs), "empty_reviews": self.empty_reviews,
                "truncated_reviews": self.truncated_reviews, "dropped_rows": self.dropped_rows,
                "not_distilled": self.not_distilled}

    def __str__(self) -> str:
        rate = self.session_new_tokens / self.session_seconds if self.session_seconds else 0.0
        rows_rate = self.session_rows / self.session_seconds if self.session_seconds else 0.0
        statuses = ", ".join(f"{status.value} {self.statuses[status.value]}" for status in RationaleStatus)
        return (
            f"distilled {self.rows} rows: {statuses} (parse rate {self.parse_rate:.1%}); "
            f"empty reviews {self.empty_reviews}, truncated reviews {self.truncated_reviews}, "
            f"dropped {self.dropped_rows}, not distilled (beyond limit) {self.not_distilled}; failures {dict(self.failures)}; repairs {dict(self.repairs)}; "
            f"this session: {self.session_rows} rows in {self.session_seconds:.1f} s ({rows_rate:.2f} rows/s, "
            f"{rate:.1f} new tokens/s), {self.resumed_batches} batches reused from shards"
        )


def _source_hash(reviews: Dataset, text_column: str) -> str:
    """sha256 of the rows' user, item and text: a resumed run must read the same input."""
    digest = hashlib.sha256()
    columns = [reviews[name] if name in reviews.column_names else [None] * len(reviews)
               for name in ("user_id", "item_id", text_column)]
    for row in zip(*columns):
        digest.update(json.dumps(row).encode())
    return digest.hexdigest()


def batch_order(texts: Sequence[str | None], sort_by_length: bool) -> list[int]:
    """Row indices in the order they are batched: longest text first (ties in input order), or input order.

    Batching reviews of similar length cuts padding; longest first makes the progress bar's ETA an upper
    bound and shows an out-of-memory batch at once.
    """
    if not sort_by_length:
        return list(range(len(texts)))
    return sorted(range(len(texts)), key=lambda i: -len(texts[i] or ""))


def process_batches(order: Sequence[int], batch_size: int, process_index: int, num_processes: int
                    ) -> dict[int, list[int]]:
    """This process's share: batch index -> row indices; batches ``process_index, process_index + num_processes, ...``.

    Batches depend on ``order`` and ``batch_size`` alone, so any number of processes produces the same batches
    (and, greedy, the same text) and a run resumed with another number of processes reuses every finished shard.
    """
    return {k: list(order[k * batch_size:(k + 1) * batch_size])
            for k in range(process_index, math.ceil(len(order) / batch_size), num_processes)}


def read_provenance(dataset: Dataset | DatasetDict) -> dict[str, Any] | None:
    """The distillation provenance of a dataset made by :class:`RationaleGenerator` (``None`` if none).

    A project ``DatasetDict`` keeps it in its metadata split (``options``); a ``Dataset`` in its
    ``info.description`` (a JSON object).
    """
    if isinstance(dataset, DatasetDict):
        if METADATA in dataset:
            return get_metadata(dataset).options.get(PROVENANCE_KEY)
        return next(filter(None, map(read_provenance, dataset.values())), None)
    try:
        description = json.loads(dataset.info.description or "{}")
    except ValueError:
        return None
    return description.get(PROVENANCE_KEY) if isinstance(description, dict) else None


def _with_provenance(dataset: Dataset | DatasetDict, provenance: dict[str, Any]) -> Dataset | DatasetDict:
    """``dataset`` carrying ``provenance``, keeping whatever other layers stored beside it."""
    if isinstance(dataset, DatasetDict):
        if METADATA not in dataset:
            return DatasetDict({name: _with_provenance(split, provenance) for name, split in dataset.items()})
        metadata = get_metadata(dataset)
        metadata.options = {**metadata.options, PROVENANCE_KEY: provenance}
        table = Dataset.from_dict({"metadata_json": [metadata.to_json()]}, features=METADATA_FEATURES)
        return DatasetDict({**dataset, METADATA: table})
    try:
        description = json.loads(dataset.info.description or "{}")
    except ValueError:
        description = dataset.info.description
    if not isinstance(description, dict):
        description = {"description": description}
    dataset.info.description = json.dumps({**description, PROVENANCE_KEY: provenance})
    return dataset


class RationaleGenerator:
    """Distil each review into ``user_preference`` / ``item_attribute`` sentences with a teacher LM.

    Args:
        teacher: a backend (:class:`TransformersTeacher`, :class:`OpenAICompatibleTeacher` or another
            :class:`Teacher`); ``None`` loads the one ``config`` describes.
        config: run settings; defaults to :class:`DistillationConfig` (greedy SmolLM2, batch 16).

    Work is split in fixed batches of ``config.batch_size`` rows; under ``accelerate launch`` process ``p``
    of ``n`` takes batches ``p, p + n, ...``. Each batch is written as a shard when done, so a restarted run
    with the same arguments redoes at most the batch in flight and, greedy, yields the identical dataset.
    """

    def __init__(self, teacher: Teacher | None = None, config: DistillationConfig | None = None):
        self.config = config if config is not None else DistillationConfig()
        # On a machine without CUDA, PartialState() stays single-process even under `accelerate launch`;
        # cpu=True makes it join the launched processes over gloo.
        self.state = PartialState(cpu=not torch.cuda.is_available())
        self._teacher = teacher
        self.last_summary: DistillationSummary | None = None

    @property
    def teacher(self) -> Teacher:
        """The backend, loaded on first use: bad input is reported before a model is read."""
        if self._teacher is None:
            self._teacher = load_teacher(self.config, self.state.device)
        return self._teacher

    def provenance(self, reviews: Dataset, source: str | None) -> dict[str, Any]:
        """What made this dataset: teacher, prompt, generation settings and the input rows."""
        return {
            "teacher": self.teacher.name,
            "teacher_revision": self.teacher.revision,
            **self._settings_provenance(reviews, source),
        }

    def _settings_provenance(self, reviews: Dataset, source: str | None) -> dict[str, Any]:
        """The provenance known without the teacher loaded: prompt, generation settings and the input rows."""
        return {
            "backend": self.config.backend.value,
            "prompt_version": PROMPT_VERSION,
            "generation": self.config.generation_settings(),
            "text_column": self.config.text_column,
            "source": source,
            "source_sha256": _source_hash(reviews, self.config.text_column),
            "rows": len(reviews),
        }

    def _check_shards_before_loading(self, reviews: Dataset, source: str | None) -> None:
        """``ShardStore.check`` of an existing run folder with the teacher's name from the config; its revision
        is compared only where the config fixes it (otherwise the loaded checkpoint tells it)."""
        store = ShardStore(self.config.output_dir, {
            "teacher": teacher_name(self.config), "teacher_revision": self.config.teacher_revision,
            **self._settings_provenance(reviews, source),
        })  # fmt: skip
        if store.run_file.exists():
            revision_known = self.config.teacher_revision is not None or self.config.backend is TeacherBackendType.OPENAI
            store.check(ignore=() if revision_known else ("teacher_revision",))

    def generate(
        self,
        dataset: Dataset | DatasetDict,
        source: str | None = None,
        on_batch_end: Sequence[Callable[[int], None]] = (),
    ) -> Dataset | DatasetDict:
        """Add ``user_preference``, ``item_attribute`` (str or None) and ``rationale_status`` to the reviews.

        Args:
            dataset: the reviews (a ``Dataset`` with ``config.text_column``), or a ``DatasetDict`` whose
                ``config.reviews_split`` holds them (other splits are returned unchanged).
            source: where the reviews came from (a path or Hub id), recorded as provenance.
            on_batch_end: called with the batch index after each batch's shard is written.

        Returns:
            The same type as ``dataset`` with the provenance (see :func:`read_provenance`). With
            ``config.limit`` only the first ``limit`` reviews are distilled; the others are kept with null
            ``user_preference``, ``item_attribute`` and ``rationale_status`` (not distilled), so the other
            tasks still see every review.
        """
        if isinstance(dataset, DatasetDict):
            if self.config.reviews_split not in dataset:
                raise ValueError(f"the dataset has no {self.config.reviews_split!r} split (has {list(dataset)}): "
                                 "there are no reviews to distil")
            reviews = dataset[self.config.reviews_split]
        else:
            reviews = dataset
        if self.config.text_column not in reviews.column_names:
            raise ValueError(f"the reviews have no {self.config.text_column!r} column (have {reviews.column_names})")
        if len(reviews) == 0:
            raise ValueError("the dataset holds no reviews to distil")
        limit = len(reviews) if self.config.limit is None else min(self.config.limit, len(reviews))
        to_distil = reviews.select(range(limit)) if limit < len(reviews) else reviews
        if self._teacher is None:  # a folder of another run is refused before minutes of loading the teacher
            self._check_shards_before_loading(to_distil, source)
        provenance = self.provenance(to_distil, source)
        store = ShardStore(self.config.output_dir, provenance)
        if self.state.is_main_process:
            store.claim()
        self.state.wait_for_everyone()
        store.check()

        summary = self._run_batches(to_distil, store, on_batch_end)
        self.state.wait_for_everyone()
        result = self._merge(reviews, store, summary)
        provenance["counts"] = summary.to_dict()
        self.last_summary = summary
        if self.state.is_main_process:
            tqdm.write(str(summary))
        if isinstance(dataset, DatasetDict):
            result = DatasetDict({**dataset, self.config.reviews_split: result})
        return _with_provenance(result, provenance)

    def _run_batches(
        self, reviews: Dataset, store: ShardStore, on_batch_end: Sequence[Callable[[int], None]]
    ) -> DistillationSummary:
        """Distil this process's batches that have no shard yet."""
        texts = list(reviews[self.config.text_column])
        order = batch_order(texts, self.config.sort_by_length)
        rows_of = process_batches(order, self.config.batch_size, self.state.process_index, self.state.num_processes)
        batches = list(rows_of)
        todo = [k for k in batches if not store.has(k)]
        summary = DistillationSummary(resumed_batches=len(batches) - len(todo))
        progress = tqdm(
            total=sum(map(len, rows_of.values())), initial=sum(len(rows_of[k]) for k in batches if k not in todo),
            unit="rows", desc=f"distilling (process {self.state.process_index})",
            disable=not (self.config.show_progress and self.state.is_main_process),
        )
        start = time.perf_counter()
        for batch_index in todo:
            payload = self._distil_batch(batch_index, [texts[i] for i in rows_of[batch_index]])
            payload["row_indices"] = rows_of[batch_index]
            store.write(batch_index, payload)
            summary.session_rows += len(rows_of[batch_index])
            summary.session_new_tokens += payload["stats"]["new_tokens"]
            progress.update(len(rows_of[batch_index]))
            for callback in on_batch_end:
                callback(batch_index)
        progress.close()
        summary.session_seconds = time.perf_counter() - start
        return summary

    def _distil_batch(self, batch_index: int, texts: list[str | None]) -> dict[str, Any]:
        """Ask the teacher both questions for each review of one batch; the shard payload of the batch."""
        stats = {"new_tokens": 0, "empty_reviews": 0, "truncated_reviews": 0}
        requests, asked = [], []
        for row, text in enumerate(texts):
            if text is None or not text.strip():
                stats["empty_reviews"] += 1
                continue
            review, truncated = self.teacher.truncate(text, self.config.max_review_tokens)
            stats["truncated_reviews"] += truncated
            asked.append(row)
            requests += [TeacherRequest(build_messages(review, field, not self.teacher.prefills_opening),
                                        ANSWER_OPENINGS[field], prefix_group=row) for field in RationaleField]
        sampling, seed = Sampling.from_config(self.config), self.config.seed + batch_index
        answers = self.teacher.answer(requests, sampling, seed) if requests else []
        stats["new_tokens"] = sum(answer.new_tokens for answer in answers)
        answers_of = {row: answers[2 * i: 2 * i + 2] for i, row in enumerate(asked)}
        rows = []
        for row, text in enumerate(texts):
            if row in answers_of:
                parsed = [self._parse(answer, field, text) for answer, field in zip(answers_of[row], RationaleField)]
            else:
                parsed = [failed_answer("empty_review")] * len(RationaleField)
            rows.append({
                **{field.value: answer.text for field, answer in zip(RationaleField, parsed)},
                "rationale_status": worst_status(*(answer.status for answer in parsed)).value,
                "failures": [answer.failure for answer in parsed if answer.failure],
                "repairs": [repair for answer in parsed for repair in answer.repairs],
                "answers": [answer.text for answer in answers_of.get(row, ())],  # raw, kept for audits
            })
        return {"batch": batch_index, "rows": rows, "stats": stats}

    @staticmethod
    def _parse(answer: TeacherAnswer, field: RationaleField, review: str) -> ParsedAnswer:
        if answer.error is not None:
            return failed_answer(f"endpoint_{answer.error}")
        return parse_answer(answer.text, field, review)

    def _merge(self, reviews: Dataset, store: ShardStore, summary: DistillationSummary) -> Dataset:
        """Read every shard (all processes' batches) and set the rationale columns of the distilled rows."""
        num_distilled = len(reviews) if self.config.limit is None else min(self.config.limit, len(reviews))
        texts = list(reviews[self.config.text_column])[:num_distilled]
        batches = process_batches(batch_order(texts, self.config.sort_by_length), self.config.batch_size, 0, 1)
        missing = [k for k in batches if not store.has(k)]
        if missing:
            raise RuntimeError(f"shards of batches {missing[:10]} are missing in {store.shard_folder}: "
                               "a process stopped early; run again with the same arguments to finish them")
        rows: list[dict[str, Any]] = [{}] * len(reviews)  # rows beyond the limit stay empty: null columns
        for batch_index, row_indices in batches.items():
            shard = store.read(batch_index)
            if shard["row_indices"] != row_indices or len(shard["rows"]) != len(row_indices):
                raise ValueError(f"{store.path(batch_index)} does not hold rows {row_indices}: it was changed "
                                 "after it was written; delete it to redo the batch")
            for index, row in zip(row_indices, shard["rows"]):
                rows[index] = row
            summary.empty_reviews += shard["stats"]["empty_reviews"]
            summary.truncated_reviews += shard["stats"]["truncated_reviews"]
        summary.rows, summary.not_distilled = num_distilled, len(reviews) - num_distilled
        for row in rows[:num_distilled]:
            summary.statuses[row["rationale_status"]] += 1
            summary.failures.update(row["failures"])
            summary.repairs.update(row["repairs"])
        existing = [name for name in RATIONALE_COLUMNS if name in reviews.column_names]
        result = reviews.remove_columns(existing)
        for name in RATIONALE_COLUMNS:
            result = result.add_column(name, [row.get(name) for row in rows], feature=Value("string"))
        if self.config.drop_failed:
            keep = [i for i, row in enumerate(rows) if row.get("rationale_status") != RationaleStatus.FAILED.value]
            summary.dropped_rows = len(rows) - len(keep)
            result = result.select(keep)
        return result
