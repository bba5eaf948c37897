"""Turn a teacher's raw answer into one rationale sentence, or a counted failure. Pure functions.

Rules, in order (each repair is named in ``ParsedAnswer.repairs`` and makes the status ``repaired``):

1. Empty or whitespace-only text fails (``empty_output``).
2. Markdown emphasis (``**``, ``__``, backticks, leading ``#``) is removed silently.
3. ``list_marker``: a leading ``1.``, ``2)``, ``-``, ``*`` or ``•`` is stripped from a line; a line holding
   only a marker (``4.``, cut off by the token budget) is dropped.
4. The answer opening is searched for (``The user prefers`` / ``The item's attributes are`` and close
   variants such as ``The customer likes``, ``The product's attributes include``).
   - At the very start of the answer: no repair.
   - Later, after chatter such as "Sure! Based on the review, ...": ``leading_text``, the text before it
     is dropped.
   - Absent, but a line is labelled (``User preference: ...``, ``Item attributes - ...``): ``label``, the
     sentence is rebuilt as the canonical opening followed by the label's content.
   - Absent and unlabelled: fails (``no_answer``).
   - ``list_joined``: the opening ends its line ("The item's attributes are:") and items follow one per
     line, or a numbered list follows on the same line ("... are: 1. Soft. 2. Light"): the items are
     joined with commas into one sentence (up to a line holding the other answer or a label).
   - ``colon``: a colon right after the opening is dropped ("The item's attributes are: soft" -> "... are soft").
5. The rationale is the first sentence from the opening (ended by ``.``, ``!`` or ``?`` before a space or
   the end); later sentences are generation past the answer and are dropped without a repair.
   ``unterminated``: no sentence end (the token budget ran out): dangling words (``and``, ``with``, ...)
   and punctuation are trimmed and a full stop added.
6. Failures of the sentence itself: ``no_content`` (nothing after the opening), ``garbage`` (under 70 %
   letters and spaces after the opening), ``repetitive`` (6+ words, under 40 % distinct), ``copies_review``
   (8+ consecutive words of the review: the rationale must be the teacher's words, never the review's).

A failed answer has ``text=None``: the review is never substituted for a rationale.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .prompts import ANSWER_OPENINGS, RationaleField


class RationaleStatus(str, enum.Enum):
    """Outcome of a row (the ``rationale_status`` column). A row takes the worst status of its two answers."""

    OK = "ok"
    REPAIRED = "repaired"
    FAILED = "failed"


_SEVERITY = {RationaleStatus.OK: 0, RationaleStatus.REPAIRED: 1, RationaleStatus.FAILED: 2}

_OPENING_PATTERNS = {
    RationaleField.USER_PREFERENCE: re.compile(
        r"\bthe (?:user|customer|reviewer)(?:'s)? (?:prefers|preferences? (?:is|are|include)|likes|wants|values)",
        re.IGNORECASE,
    ),
    RationaleField.ITEM_ATTRIBUTE: re.compile(
        r"\bthe (?:item|product)(?:'s)? (?:attributes? (?:is|are|include)|features? (?:is|are|include))",
        re.IGNORECASE,
    ),
}
_LABEL_PATTERNS = {
    RationaleField.USER_PREFERENCE: re.compile(
        r"^(?:the )?(?:user|customer)?(?:'s)?\s*preferences?\s*[:\-–]\s*(.+)$", re.IGNORECASE
    ),
    RationaleField.ITEM_ATTRIBUTE: re.compile(
        r"^(?:the )?(?:item|product)?(?:'s)?\s*(?:attributes?|features?)\s*[:\-–]\s*(.+)$", re.IGNORECASE
    ),
}
_MARKDOWN = re.compile(r"\*\*|__|`|^#+\s*", re.MULTILINE)
_LIST_MARKER = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")
_INLINE_MARKER = re.compile(r"(?:^|\s)\d+[.)]\s+")
_BARE_MARKER = re.compile(r"(?:\d+[.)]?|[-*•])")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_DANGLING_WORDS = {"and", "or", "but", "with", "of", "to", "for", "a", "an", "the", "in", "on", "that", "which", "as"}
_WORD = re.compile(r"[A-Za-z0-9']+")
COPY_RUN_WORDS = 8


@dataclass(frozen=True)
class ParsedAnswer:
    """One parsed answer: the rationale sentence (``None`` when failed), its status and why."""

    text: str | None
    status: RationaleStatus
    repairs: tuple[str, ...] = ()
    failure: str | None = None


def failed_answer(reason: str) -> ParsedAnswer:
    """A failed answer: no text, the reason counted in the run summary."""
    return ParsedAnswer(text=None, status=RationaleStatus.FAILED, failure=reason)


def _first_sentence(text: str) -> tuple[str, bool]:
    """The first sentence of ``text`` and whether it had its own end mark."""
    match = _SENTENCE_END.search(text)
    if match:
        return text[: match.end()].strip(), True
    words = text.strip().rstrip(",;:-–—").split()
    while len(words) > 1 and words[-1].lower().strip(",;:") in _DANGLING_WORDS:
        words.pop()
    return " ".join(words).rstrip(",;:-–—") + ".", False


def longest_shared_word_run(text: str, reference: str) -> int:
    """Length of the longest run of consecutive words (case-folded) that ``text`` shares with ``reference``."""
    words = [w.lower() for w in _WORD.findall(text)]
    reference_words = [w.lower() for w in _WORD.findall(reference)]
    best = 0
    previous = [0] * (len(reference_words) + 1)
    for word in words:
        current = [0] * (len(reference_words) + 1)
        for j, reference_word in enumerate(reference_words, start=1):
            if word == reference_word:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def _validate(sentence: str, opening_end: int, review: str) -> str | None:
    """The failure reason of an extracted sentence, or ``None`` when it is usable."""
    content = sentence[opening_end:].strip(" .!?:,")
    if not _WORD.search(content):
        return "no_content"
    letters = sum(ch.isalpha() or ch.isspace() for ch in content)
    if letters / len(content) < 0.7:
        return "garbage"
    words = [w.lower() for w in _WORD.findall(content)]
    if len(words) >= 6 and len(set(words)) / len(words) < 0.4:
        return "repetitive"
    if longest_shared_word_run(content, review) >= COPY_RUN_WORDS:
        return "copies_review"
    return None


def _lower_first(text: str) -> str:
    """Lower-case the first letter of a capitalised word ("Soft" -> "soft"), not of an acronym ("UV")."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _clean_lines(text: str, repairs: list[str]) -> list[str]:
    """Lines without markdown, list markers, bare markers (``4.``) or extra whitespace."""
    lines = []
    for line in _MARKDOWN.sub("", text).splitlines():
        line, markers = _LIST_MARKER.subn("", line)
        if markers:
            repairs.append("list_marker")
        line = " ".join(line.split())
        if line and not _BARE_MARKER.fullmatch(line):
            lines.append(line)
    return lines


def _from_opening(lines: list[str], field: RationaleField, repairs: list[str]) -> tuple[str, int] | None:
    """The text from the answer opening on, and the opening's length; ``None`` without an opening."""
    for index, line in enumerate(lines):
        opening = _OPENING_PATTERNS[field].search(line)
        if opening is None:
            continue
        if index > 0 or opening.start() > 0:
            repairs.append("leading_text")
        head, after = opening.group(0), line[opening.end():].strip()
        items = lines[index + 1:]
        if after in ("", ":") and items:  # "The item's attributes are:" then one item per line
            repairs.append("list_joined")
            other = [pattern for key, pattern in _OPENING_PATTERNS.items() if key is not field]
            other += list(_LABEL_PATTERNS.values())
            stop = next((i for i, item in enumerate(items) if any(p.search(item) for p in other)), len(items))
            content = ", ".join(_lower_first(item.rstrip(".;,")) for item in items[:stop])
            return f"{head} {content}.", len(head)
        if after.startswith(":"):  # "The item's attributes are: soft, light."
            repairs.append("colon")
            after = _lower_first(after[1:].strip())
        if _LIST_MARKER.match(after):  # "The item's attributes are: 1. Soft. 2. Light" on one line
            repairs.append("list_joined")
            inline_items = [item.strip().rstrip(".;,") for item in _INLINE_MARKER.split(after)]
            after = ", ".join(_lower_first(item) for item in inline_items if item)
        return " ".join([f"{head} {after}".rstrip(), *items]), len(head)
    return None


def parse_answer(text: str | None, field: RationaleField, review: str) -> ParsedAnswer:
    """Parse one teacher answer for ``field`` (see the module docstring for the rules)."""
    if text is None or not text.strip():
        return failed_answer("empty_output")
    repairs: list[str] = []
    lines = _clean_lines(text, repairs)
    found = _from_opening(lines, field, repairs)
    if found is None:
        labelled = next((m for m in map(_LABEL_PATTERNS[field].match, lines) if m), None)
        if labelled is None:
            return failed_answer("no_answer")
        repairs.append("label")
        canonical = ANSWER_OPENINGS[field]
        found = f"{canonical} {_lower_first(labelled.group(1).strip())}", len(canonical)
    candidate, opening_end = found
    sentence, terminated = _first_sentence(candidate)
    if not terminated:
        repairs.append("unterminated")
    failure = _validate(sentence, opening_end, review)
    if failure is not None:
        return failed_answer(failure)
    sentence = sentence[:1].upper() + sentence[1:]
    status = RationaleStatus.REPAIRED if repairs else RationaleStatus.OK
    return ParsedAnswer(text=sentence, status=status, repairs=tuple(dict.fromkeys(repairs)))


def worst_status(*statuses: RationaleStatus) -> RationaleStatus:
    """The row status: ``failed`` if any answer failed, else ``repaired`` if any was repaired, else ``ok``."""
    return max(statuses, key=_SEVERITY.__getitem__)
