"""The page of `rdrec-hf app`: a Gradio page to look at a trained student (Spaces-ready; Gradio is the `app`
extra; the command line is `rdrec_hf.scripts.app`).

Pick a user (project id or original reviewer id, or a random one) and see the history, the model's top-k with
scores, the student's explanation and rationales for each item beside the teacher's, and the same user's top-k
from the baselines (popularity, the leak rule, item-kNN; SASRec when asked); or paste / sample top-N candidates
and see them ranked exactly.

The page logic is :class:`RecommenderPage` (plain Python, returns HTML strings; tested without a browser);
:func:`build_app` wires it to Gradio Blocks. Bad input is a message in the page (``#status``), never a traceback.
"""

from __future__ import annotations

import html
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..data.schema import TEST, check_numbering, get_metadata, split_target, training_history
from ..evaluation.baselines import DEFAULT_BASELINES, Baseline, baseline_rankers, leak_rule_ranking
from ..checkpoints import load_trained_student
from ..models.recommending import rationales
from ..models.item_decoding import DEFAULT_TOP_K
from ..models.item_ids import ItemIndexing
from ..models.recommending import catalog_of, rank_candidates, recommend, trained_on
from ..models.tasks import Task

logger = logging.getLogger(__name__)

REVIEW_SNIPPET_CHARS = 160
REVIEW_FIELDS = ("rating", "review", "user_preference", "item_attribute")  # what the page shows of a review
NUM_CANDIDATES = 100  # the paper's top-N: the test item and 99 negatives
BASELINE_COLUMNS = {"popularity": "popularity", "leak_rule": "leak rule", "item_knn": "item-kNN", "sasrec": "SASRec"}
Progress = Callable[[float, str], None]


def _no_progress(fraction: float, desc: str) -> None:
    """Progress callback of non-Gradio callers."""


@dataclass
class DatasetView:
    """What the page reads from a project dataset, computed once at start-up."""

    histories: dict[str, list[str]]  # user id -> items, oldest first
    user_of_reviewer: dict[str, str]  # original reviewer id -> user id
    reviewer_of_user: dict[str, str]
    reviews: dict[tuple[str, str], dict]  # (user, item) -> rating, review, teacher rationales
    test_negatives: dict[str, list[str]]
    indexing: ItemIndexing
    teacher_item_attribute: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dataset(cls, data) -> "DatasetView":
        users = data["users"]
        histories = dict(zip(users["user_id"], users["items"]))
        reviewers = dict(zip(users["user_id"], users["original_id"]))
        reviews, item_attribute = {}, {}
        if "reviews" in data:
            table = data["reviews"]
            names = [name for name in REVIEW_FIELDS if name in table.column_names]
            for user, item, split, *values in zip(table["user_id"], table["item_id"], table["split"],
                                                  *(table[name] for name in names)):  # fmt: skip
                row = dict(zip(names, values))
                reviews[(user, item)] = row
                if row.get("item_attribute") and split == "train":
                    item_attribute.setdefault(item, row["item_attribute"])
        metadata = get_metadata(data)
        return cls(
            histories=histories,
            user_of_reviewer={reviewer: user for user, reviewer in reviewers.items()},
            reviewer_of_user=reviewers,
            reviews=reviews,
            test_negatives=dict(zip(users["user_id"], users["test_negatives"])),
            indexing=metadata.indexing,
            teacher_item_attribute=item_attribute,
        )

    def teacher_user_preference(self, user_id: str) -> str | None:
        """The teacher's rationale of the user's latest training review that has one."""
        for item in reversed(training_history(self.histories[user_id])):
            text = self.reviews.get((user_id, item), {}).get("user_preference")
            if text:
                return text
        return None


def _table(headers: Sequence[str], rows: Sequence[Sequence], classes: Sequence[str], table_id: str) -> str:
    """An HTML table; ``classes`` names each column's cells (the browser test reads them)."""
    head = "".join(f'<th class="{c}">{html.escape(h)}</th>' for c, h in zip(classes, headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{c}">{html.escape("" if v is None else str(v))}</td>' for c, v in zip(classes, row))
        + "</tr>"
        for row in rows
    )  # fmt: skip
    return f'<table id="{table_id}" class="rdrec-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _error(message: str) -> str:
    return f"**Error:** {message}"


def parse_item_list(text: str | None) -> list[str]:
    """``"3, 17 42"`` -> ``["3", "17", "42"]`` (commas or whitespace between ids)."""
    return (text or "").replace(",", " ").split()


class RecommenderPage:
    """The page's answers, as Markdown / HTML strings; every method turns bad input into a message."""

    def __init__(self, model, tokenizer, data=None, model_name: str = "", seed: int = 0,
                 baselines: Sequence[Baseline | str] = DEFAULT_BASELINES):  # fmt: skip
        self.model, self.tokenizer = model, tokenizer
        self.item_index = getattr(model, "item_index", None)
        if data is not None:
            check_numbering(self.item_index, data, f"model {model_name}".strip(), "the dataset")
        self.view = DatasetView.from_dataset(data) if data is not None else None
        # The evaluation's baselines on the same user; without a dataset (no training histories) the leak rule alone.
        chosen = [Baseline.parse(baseline) for baseline in baselines]
        self.baselines, self.skipped_baselines = (
            baseline_rankers(data, chosen, seed=seed, device=model.device) if data is not None else ({}, {})
        )
        self.leak_rule_alone = data is None and Baseline.LEAK_RULE in chosen
        self.model_name = model_name
        self.rng = random.Random(seed)

    # ---------------------------------------------------------------------------------------- header
    def header(self) -> str:
        lines = [f"### RDRec student `{self.model_name}`"]
        if self.item_index is None:
            lines.append(_error("this model has no item catalog (item_index.json), so it cannot recommend."))
        else:
            lines.append(f"Catalog: {len(self.item_index):,} items, `{self.item_index.indexing.value}` item ids.")
        if self.view is None:
            lines.append("No dataset loaded: type a history of item ids (start with `--dataset` to pick users).")
        else:
            lines.append(f"Dataset: {len(self.view.histories):,} users. " + self.leak_note())
        return "\n\n".join(lines)

    def leak_note(self) -> str:
        if self.view is not None and self.view.indexing is ItemIndexing.SEQUENTIAL:
            return ("**Numbering leaks:** this dataset numbers items in the order users first bought them "
                    "(`sequential`, as P5 and RDRec), so the leak rule (the number after the history's largest) "
                    "often names the test item. Scores on it are not evidence of learning.")
        return ("Numbering is leak-free here: the leak rule is a control and should do no better than chance.")

    # ------------------------------------------------------------------------------------------ users
    def resolve_user(self, query: str | None) -> str | None:
        """The project user id of a user id or reviewer id; None for an empty query."""
        query = (query or "").strip()
        if not query:
            return None
        if self.view is None:
            raise ValueError("no dataset is loaded, so users cannot be looked up: type a history instead")
        if query in self.view.histories:
            return query
        if query in self.view.user_of_reviewer:
            return self.view.user_of_reviewer[query]
        raise ValueError(f"unknown user {query!r}: not a user id or reviewer id of the dataset")

    def random_user(self) -> str:
        if self.view is None:
            return ""
        return self.rng.choice(list(self.view.histories))

    def _check_k(self, k) -> int:
        catalog = catalog_of(self.model)
        try:
            value = int(k)
        except (TypeError, ValueError):
            raise ValueError(f"k must be a whole number, got {k!r}") from None
        if value != k or not 1 <= value <= len(catalog):
            raise ValueError(f"k must be from 1 to {len(catalog)} (the catalog size), got {k}")
        return value

    def _history_of(self, user_id: str | None, history_text: str | None, hold_out: bool) -> tuple[list, str | None]:
        """(history the model sees, the held-out next item or None)."""
        if user_id is None:
            history = parse_item_list(history_text)
            if not history:
                raise ValueError("give a user (id or reviewer id) or a history of item ids")
            return history, None
        items = self.view.histories[user_id]
        if hold_out:
            return split_target(items, TEST)
        return list(items), None

    def history_table(self, user_id: str | None, history: Sequence[str], held_out: str | None) -> str:
        rows = []
        for position, item in enumerate([*history, *([held_out] if held_out else [])], 1):
            review = self.view.reviews.get((user_id, item), {}) if self.view is not None and user_id else {}
            text = (review.get("review") or "")[:REVIEW_SNIPPET_CHARS]
            rows.append([
                position, item, self._original_id(item), review.get("rating"), text,
                "held out (the test item)" if item == held_out else "",
            ])  # fmt: skip
        return _table(["#", "item id", "original id", "rating", "review", ""], rows,
                      ["position", "item-id", "original-id", "rating", "review", "note"], "history")  # fmt: skip

    def _original_id(self, item: str) -> str:
        return self.item_index.original_id(item) if self.item_index is not None and item in self.item_index.position else ""

    # ------------------------------------------------------------------------------------ recommend
    def recommend(
        self, query, history_text, k, explain: bool = True, hold_out: bool = True, progress: Progress = _no_progress
    ) -> tuple[str, str, str, str, str]:
        """(status, history, recommendations, baselines, user rationales) for the page."""
        empty = ("", "", "", "")
        try:
            catalog_of(self.model)
            k = self._check_k(k)
            user_id = self.resolve_user(query)
            history, held_out = self._history_of(user_id, history_text, hold_out)
            progress(0.1, "ranking the catalog")
            started = time.perf_counter()
            # A model that never trained a text task shows its items without that text, and says so.
            untrained = [task for task in (Task.EXPLANATION, Task.RATIONALE) if explain and not trained_on(self.model, task)]
            recs = recommend(self.model, self.tokenizer, history, user_id=user_id, k=k,
                             explain=explain and Task.EXPLANATION not in untrained)
            items = [rec.item_id for rec in recs]
            student_user, student_items = None, None
            if explain and items and Task.RATIONALE not in untrained:
                progress(0.6, "writing rationales")
                student_user, student_items = rationales(self.model, self.tokenizer, user_id, items)
            seconds = time.perf_counter() - started
        except ValueError as error:
            return (_error(str(error)), *empty)
        progress(1.0, "done")
        who = (f"user {user_id} (reviewer {self.view.reviewer_of_user[user_id]})" if user_id is not None
               else "a typed history (anonymous user)")  # fmt: skip
        status = [f"Top {len(recs)} for {who} from {len(history)} history items, in {seconds:.2f} s."]
        if len(recs) < k:
            status.append(f"Only {len(recs)} catalog items remain outside the history.")
        if untrained:
            status.append(f"This model was not trained on {' or '.join(t.name.lower() + 's' for t in untrained)}: "
                          "none are shown (an untrained decoder writes tokens, not sentences).")
        if held_out is not None:
            rank = items.index(held_out) + 1 if held_out in items else None
            status.append(f"Held-out next item {held_out}: " + (f"rank {rank}." if rank else f"not in the top {k}."))
        teacher = self.view.teacher_item_attribute if self.view is not None else {}
        rows = [
            [rank, rec.item_id, rec.original_id, f"{rec.score:.3f}", rec.explanation,
             student_items[rank - 1] if student_items else "",
             teacher.get(rec.item_id, "")]
            for rank, rec in enumerate(recs, 1)
        ]  # fmt: skip
        recs_html = _table(
            ["rank", "item id", "original id", "log-likelihood", "student's explanation", "student's item rationale",
             "teacher's item rationale"],
            rows, ["rank", "item-id", "original-id", "score", "explanation", "student-rationale", "teacher-rationale"],
            "recommendations",
        )  # fmt: skip
        return (
            " ".join(status),
            self.history_table(user_id, history, held_out),
            recs_html,
            self.baselines_table(history, items, k, held_out),
            self.user_rationales(user_id, "(this model did not train the rationale task)" if Task.RATIONALE in untrained
                                 else student_user),
        )

    def baselines_table(self, history: Sequence[str], items: Sequence[str], k: int, held_out: str | None) -> str:
        columns = {"model": list(items)}
        for name, ranker in self.baselines.items():
            columns[BASELINE_COLUMNS[name]] = ranker([history], k)[0]
        if self.leak_rule_alone:
            columns[BASELINE_COLUMNS[Baseline.LEAK_RULE.value]] = leak_rule_ranking(history, len(self.item_index), k)
        rows = [[rank + 1, *[(col[rank] if rank < len(col) else "") for col in columns.values()]] for rank in range(k)]
        note = "" if held_out is None else f"<p>The held-out item is {html.escape(held_out)}; " + ", ".join(
            f"{name}: {'rank ' + str(col.index(held_out) + 1) if held_out in col else 'missed'}" for name, col in columns.items()
        ) + ".</p>"  # fmt: skip
        note += "".join(f"<p>{html.escape(BASELINE_COLUMNS[name])} not shown: {html.escape(reason)}.</p>"
                        for name, reason in self.skipped_baselines.items())  # fmt: skip
        classes = ["rank", *[name.replace(" ", "-") for name in columns]]
        return (_table(["rank", *columns], rows, classes, "baselines") + note
                + f"<p>{html.escape(self.leak_note().replace('**', ''))}</p>")  # fmt: skip

    def user_rationales(self, user_id: str | None, student: str | None) -> str:
        teacher = self.view.teacher_user_preference(user_id) if self.view is not None and user_id else None
        return _table(["", "the user's preference"],
                      [["student", student or "(ask with explanations)"], ["teacher", teacher or "(none in the dataset)"]],
                      ["who", "text"], "user-rationales")  # fmt: skip

    # ----------------------------------------------------------------------------------------- top-N
    def sample_candidates(self, query) -> tuple[str, str]:
        """(status, candidates text): the user's test item and stored test negatives, else a seeded sample."""
        try:
            catalog = catalog_of(self.model)
            user_id = self.resolve_user(query)
        except ValueError as error:
            return _error(str(error)), ""
        if user_id is not None:
            _, target = split_target(self.view.histories[user_id], TEST)
            candidates = [target, *self.view.test_negatives[user_id]][:NUM_CANDIDATES]
            self.rng.shuffle(candidates)
            return f"The test item of user {user_id} and its {len(candidates) - 1} stored negatives.", " ".join(candidates)
        size = min(NUM_CANDIDATES, len(catalog))
        return f"{size} catalog items drawn at random.", " ".join(self.rng.sample(list(catalog.item_ids), size))

    def rank(self, query, candidates_text, progress: Progress = _no_progress) -> tuple[str, str]:
        """(status, ranked candidates)."""
        try:
            catalog_of(self.model)
            user_id = self.resolve_user(query)
            candidates = parse_item_list(candidates_text)
            progress(0.2, "scoring every candidate")
            started = time.perf_counter()
            ranked = rank_candidates(self.model, self.tokenizer, candidates, user_id=user_id)
            seconds = time.perf_counter() - started
        except ValueError as error:
            return _error(str(error)), ""
        progress(1.0, "done")
        target = split_target(self.view.histories[user_id], TEST)[1] if user_id is not None else None
        status = f"{len(ranked)} candidates ranked exactly in {seconds:.2f} s."
        if target in candidates:
            status += f" The test item {target} is ranked {[r.item_id for r in ranked].index(target) + 1}."
        rows = [[rank, r.item_id, r.original_id, f"{r.score:.3f}", "test item" if r.item_id == target else ""]
                for rank, r in enumerate(ranked, 1)]  # fmt: skip
        return status, _table(["rank", "item id", "original id", "log-likelihood", ""], rows,
                              ["rank", "item-id", "original-id", "score", "note"], "ranked-candidates")  # fmt: skip


CSS = """
.rdrec-table {width: 100%; table-layout: fixed; font-size: 0.85em; border-collapse: collapse;}
.rdrec-table td, .rdrec-table th {padding: 3px 6px; vertical-align: top; overflow-wrap: anywhere; text-align: left;}
.rdrec-table .explanation, .rdrec-table .student-rationale, .rdrec-table .teacher-rationale {width: 25%;}
.rdrec-table .review, .rdrec-table .text {width: 60%;}
#status {font-size: 1.05em;}
"""


def build_app(model: str, dataset: str | None = None, seed: int = 0, device: str | None = None, dtype: str | None = None,
              baselines: Sequence[Baseline | str] = DEFAULT_BASELINES):
    """The Gradio Blocks app of a student folder or Hub id, with an optional project dataset (folder or Hub id);
    the student on ``device`` in ``dtype`` (`load_trained_student`: CUDA when available, the checkpoint's dtype)."""
    try:
        import gradio as gr
    except ImportError:
        raise ImportError("the app needs Gradio: pip install 'rdrec-hf[app]'") from None
    from ..data import load_rec_dataset

    student, tokenizer = load_trained_student(model, device, dtype)
    page = RecommenderPage(student, tokenizer, load_rec_dataset(dataset) if dataset else None, str(model), seed,
                           baselines)  # fmt: skip

    def on_recommend(query, history_text, k, explain, hold_out, progress=gr.Progress()):
        return page.recommend(query, history_text, k, explain, hold_out, lambda f, d: progress(f, desc=d))

    def on_rank(query, candidates_text, progress=gr.Progress()):
        return page.rank(query, candidates_text, lambda f, d: progress(f, desc=d))

    with gr.Blocks(title="RDRec recommender") as app:
        gr.Markdown(page.header(), elem_id="header")
        with gr.Row():
            user = gr.Textbox(label="User id or reviewer id", elem_id="user", scale=3)
            random_button = gr.Button("Random user", elem_id="random-user", scale=1)
        history_text = gr.Textbox(label="...or a history of item ids, oldest first (used when no user is given)",
                                  elem_id="history-input")  # fmt: skip
        status = gr.Markdown(elem_id="status")
        with gr.Tab("Next items"):
            with gr.Row():
                k = gr.Number(value=DEFAULT_TOP_K, precision=0, label="k", elem_id="k")
                explain = gr.Checkbox(value=True, label="explanations and rationales", elem_id="explain")
                hold_out = gr.Checkbox(value=True, label="hold out the last item (the test protocol)", elem_id="hold-out")
            recommend_button = gr.Button("Recommend", variant="primary", elem_id="recommend")
            gr.Markdown("#### Recommendations")
            recommendations = gr.HTML(elem_id="recommendations-panel")
            gr.Markdown("#### The same user by the baselines")
            baselines = gr.HTML(elem_id="baselines-panel")
            gr.Markdown("#### The user's rationale")
            user_rationale = gr.HTML(elem_id="user-rationales-panel")
            gr.Markdown("#### History")
            history = gr.HTML(elem_id="history-panel")
        with gr.Tab("Top-N candidates"):
            candidates = gr.Textbox(label=f"Candidate item ids (e.g. {NUM_CANDIDATES})", lines=3, elem_id="candidates")
            with gr.Row():
                sample_button = gr.Button("Sample candidates", elem_id="sample-candidates")
                rank_button = gr.Button("Rank exactly", variant="primary", elem_id="rank")
            ranked = gr.HTML(elem_id="ranked-panel")
        random_button.click(page.random_user, outputs=user)
        recommend_button.click(on_recommend, [user, history_text, k, explain, hold_out],
                               [status, history, recommendations, baselines, user_rationale])  # fmt: skip
        sample_button.click(page.sample_candidates, [user], [status, candidates])
        rank_button.click(on_rank, [user, candidates], [status, ranked])
    return app
