"""Text-generation metrics for the explanation and rationale tasks. Pure functions.

BLEU follows the corpus BLEU that P5, POD and RDRec report (``compute_bleu`` of tensorflow/nmt, called on
whitespace tokens of the decoded text, no smoothing, scaled x100): modified n-gram precisions are summed
over the whole corpus, combined by a geometric mean, and multiplied by a brevity penalty computed from the
total hypothesis and reference lengths. It is written here (a few lines) rather than taken from sacrebleu
because sacrebleu re-tokenises its input (13a by default) and works on strings; the tests check that both
agree when sacrebleu is told not to tokenise.

Two ROUGEs are reported side by side, both mean per-example F-measures scaled x100:

- ``rouge-1/2/l``: the ``rouge-score`` package (its default tokenizer: lowercase, alphanumeric runs; no
  stemming; n-gram counts; ROUGE-L F1);
- ``nmt-rouge-1/2/l``: the reference's (RDRec's ``utils/rouge.py``, from tensorflow/nmt), written here from its
  definition: tokens split on single spaces, case and punctuation kept, n-gram *sets*, ROUGE-N
  ``2PR / (P + R + 1e-8)``, ROUGE-L over the longest common subsequence with ``beta = P / R``:
  ``(1 + beta^2) R P / (R + beta^2 P)``. These are the numbers comparable with the paper's.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
# Public metric names of `text_generation_metrics`, in the order reports show them.
TEXT_METRIC_NAMES = (
    "bleu-1", "bleu-4", "rouge-1", "rouge-2", "rouge-l", "nmt-rouge-1", "nmt-rouge-2", "nmt-rouge-l", "distinct_share",
    "looping_share",
)
# A text loops when one token comes this many times in a row or one 3-gram this many times (issue 28's bar).
LOOP_RUN_LENGTH = 4
LOOP_TRIGRAM_COUNT = 3
# Sub-word pieces glued together loop inside one whitespace token ("GreetingGreetingGreetingGreeting").
GLUED_LOOP = re.compile(r"(\S{2,}?)\1{%d}" % (LOOP_RUN_LENGTH - 1))


def whitespace_tokens(text: str) -> list[str]:
    """The tokens BLEU is computed on: the text split on runs of whitespace."""
    return text.split()


def ngram_counts(tokens: Sequence[str], order: int) -> Counter:
    """Multiset of the ``order``-grams of ``tokens`` (as tuples)."""
    return Counter(tuple(tokens[start : start + order]) for start in range(len(tokens) - order + 1))


def corpus_bleu(
    references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]], max_order: int = 4
) -> float:
    """Corpus BLEU in [0, 1] with one reference per hypothesis and uniform weights over orders 1..max_order.

    ``p_n = sum(clipped n-gram matches) / sum(hypothesis n-grams)`` over the corpus;
    ``BLEU = BP * exp(mean(log p_n))``, 0 when any ``p_n`` is 0 (no smoothing);
    ``BP = 1`` when the hypotheses are longer than the references in total, else ``exp(1 - ref_len / hyp_len)``.
    """
    _check_pairs(references, hypotheses)
    if max_order < 1:
        raise ValueError(f"max_order must be >= 1, got {max_order}")
    matches = [0] * max_order
    possible = [0] * max_order
    reference_length = hypothesis_length = 0
    for reference, hypothesis in zip(references, hypotheses):
        reference_length += len(reference)
        hypothesis_length += len(hypothesis)
        for order in range(1, max_order + 1):
            hypothesis_ngrams = ngram_counts(hypothesis, order)
            overlap = hypothesis_ngrams & ngram_counts(reference, order)  # clipped counts
            matches[order - 1] += sum(overlap.values())
            possible[order - 1] += sum(hypothesis_ngrams.values())
    if min(matches) == 0:  # also covers empty hypotheses (no n-grams at all)
        return 0.0
    log_precision_mean = sum(math.log(m / p) for m, p in zip(matches, possible)) / max_order
    ratio = hypothesis_length / reference_length
    brevity_penalty = 1.0 if ratio > 1.0 else math.exp(1.0 - 1.0 / ratio)
    return brevity_penalty * math.exp(log_precision_mean)


def rouge_f_scores(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures in [0, 1], keyed ``rouge1``, ``rouge2``, ``rougeL``."""
    _check_pairs(references, predictions)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for reference, prediction in zip(references, predictions):
        scores = scorer.score(reference, prediction)  # argument order: target, prediction
        for rouge_type in ROUGE_TYPES:
            totals[rouge_type] += scores[rouge_type].fmeasure
    return {rouge_type: total / len(predictions) for rouge_type, total in totals.items()}


def nmt_tokens(text: str) -> list[str]:
    """The reference ROUGE's tokens: ``text.split(" ")`` (so two spaces make an empty token, as there)."""
    return text.split(" ")


def longest_common_subsequence(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (dynamic programming, one row kept)."""
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for column, other in enumerate(second, start=1):
            current.append(previous[column - 1] + 1 if token == other else max(previous[column], current[-1]))
        previous = current
    return previous[-1]


def nmt_rouge_n(reference: str, prediction: str, order: int) -> float:
    """ROUGE-N F1 of one pair as tensorflow/nmt computes it: over the *sets* of n-grams,
    ``2PR / (P + R + 1e-8)``, with P or R 0 when the prediction or the reference has no n-gram."""
    predicted, wanted = (set(ngram_counts(nmt_tokens(text), order)) for text in (prediction, reference))
    overlap = len(predicted & wanted)
    precision = overlap / len(predicted) if predicted else 0.0
    recall = overlap / len(wanted) if wanted else 0.0
    return 2.0 * precision * recall / (precision + recall + 1e-8)


def nmt_rouge_l(reference: str, prediction: str) -> float:
    """Sentence-level ROUGE-L F of one pair as tensorflow/nmt computes it: ``R = LCS / len(reference)``,
    ``P = LCS / len(prediction)``, ``beta = P / R``, ``F = (1 + beta^2) R P / (R + beta^2 P)``."""
    reference_tokens, prediction_tokens = nmt_tokens(reference), nmt_tokens(prediction)
    common = longest_common_subsequence(prediction_tokens, reference_tokens)
    recall, precision = common / len(reference_tokens), common / len(prediction_tokens)
    beta = precision / (recall + 1e-12)
    return (1 + beta**2) * recall * precision / (recall + beta**2 * precision + 1e-12)


def nmt_rouge_f_scores(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures in [0, 1] of the reference's ROUGE (``nmt_rouge_n``,
    ``nmt_rouge_l``), keyed ``rouge1``, ``rouge2``, ``rougeL``."""
    _check_pairs(references, predictions)
    pairs = list(zip(references, predictions))
    return {
        "rouge1": sum(nmt_rouge_n(ref, pred, 1) for ref, pred in pairs) / len(pairs),
        "rouge2": sum(nmt_rouge_n(ref, pred, 2) for ref, pred in pairs) / len(pairs),
        "rougeL": sum(nmt_rouge_l(ref, pred) for ref, pred in pairs) / len(pairs),
    }


def distinct_share(texts: Sequence[str]) -> float:
    """Share in (0, 1] of distinct texts (whitespace-normalised): 1/N when a generator repeats one sentence."""
    if not texts:
        raise ValueError("no texts to count")
    return len({" ".join(whitespace_tokens(text)) for text in texts}) / len(texts)


def longest_token_run(tokens: Sequence[str]) -> int:
    """How many times in a row the most repeated token comes (0 for no tokens): 4 for ``I I I I``."""
    longest = run = 0
    for position, token in enumerate(tokens):
        run = run + 1 if position and token == tokens[position - 1] else 1
        longest = max(longest, run)
    return longest


def most_repeated_ngram(tokens: Sequence[str], order: int = 3) -> tuple[tuple[str, ...] | None, int]:
    """The ``order``-gram of ``tokens`` that occurs most often (overlapping occurrences count; the first one
    on a tie) and its count; ``(None, 0)`` when there are fewer than ``order`` tokens."""
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    counts = ngram_counts(tokens, order)
    return counts.most_common(1)[0] if counts else (None, 0)


def loops(text: str) -> bool:
    """Whether a generated text loops: a whitespace token ``LOOP_RUN_LENGTH`` times in a row, a 3-gram
    ``LOOP_TRIGRAM_COUNT`` times, or a piece of two or more characters ``LOOP_RUN_LENGTH`` times in a row
    without spaces (`GLUED_LOOP`)."""
    tokens = whitespace_tokens(text)
    return (longest_token_run(tokens) >= LOOP_RUN_LENGTH or most_repeated_ngram(tokens, 3)[1] >= LOOP_TRIGRAM_COUNT
            or GLUED_LOOP.search(text) is not None)


def looping_share(texts: Sequence[str]) -> float:
    """Share in [0, 1] of texts that loop (`loops`)."""
    if not texts:
        raise ValueError("no texts to count")
    return sum(map(loops, texts)) / len(texts)


def text_generation_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """BLEU-1/4, ROUGE-1/2/L of rouge-score and of the reference (``nmt-``) (x100, as the papers report them)
    and the distinct and looping shares (fractions).

    Keys are `TEXT_METRIC_NAMES`. ``predictions[i]`` is scored against ``references[i]``.
    """
    _check_pairs(references, predictions)
    reference_tokens = [whitespace_tokens(text) for text in references]
    prediction_tokens = [whitespace_tokens(text) for text in predictions]
    rouge, nmt_rouge = rouge_f_scores(references, predictions), nmt_rouge_f_scores(references, predictions)
    return {
        "bleu-1": 100 * corpus_bleu(reference_tokens, prediction_tokens, max_order=1),
        "bleu-4": 100 * corpus_bleu(reference_tokens, prediction_tokens, max_order=4),
        **{f"{prefix}rouge-{suffix}": 100 * scores[key]
           for prefix, scores in (("", rouge), ("nmt-", nmt_rouge))
           for suffix, key in (("1", "rouge1"), ("2", "rouge2"), ("l", "rougeL"))},
        "distinct_share": distinct_share(predictions),
        "looping_share": looping_share(predictions),
    }


def _check_pairs(references: Sequence, hypotheses: Sequence) -> None:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(hypotheses)} predictions but {len(references)} references")
    if not references:
        raise ValueError("no examples to score")
