"""Text-generation metrics for the explanation and rationale tasks. Pure functions.

BLEU follows the corpus BLEU that P5, POD and RDRec report (``compute_bleu`` of tensorflow/nmt, called on
whitespace tokens of the decoded text, no smoothing, scaled x100): modified n-gram precisions are summed
over the whole corpus, combined by a geometric mean, and multiplied by a brevity penalty computed from the
total hypothesis and reference lengths. It is written here (a few lines) rather than taken from sacrebleu
because sacrebleu re-tokenises its input (13a by default) and works on strings; the tests check that both
agree when sacrebleu is told not to tokenise.

ROUGE-1/2/L are the mean per-example F-measures of the ``rouge-score`` package (its default tokenizer:
lowercase, alphanumeric runs; no stemming), scaled x100 like the papers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
# Public metric names of `text_generation_metrics`, in the order reports show them.
TEXT_METRIC_NAMES = ("bleu-1", "bleu-4", "rouge-1", "rouge-2", "rouge-l", "distinct_share")


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


def distinct_share(texts: Sequence[str]) -> float:
    """Share in (0, 1] of distinct texts (whitespace-normalised): 1/N when a generator repeats one sentence."""
    if not texts:
        raise ValueError("no texts to count")
    return len({" ".join(whitespace_tokens(text)) for text in texts}) / len(texts)


def text_generation_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """BLEU-1/4 and ROUGE-1/2/L (x100, as the papers report them) and the distinct share (a fraction).

    Keys are `TEXT_METRIC_NAMES`. ``predictions[i]`` is scored against ``references[i]``.
    """
    _check_pairs(references, predictions)
    reference_tokens = [whitespace_tokens(text) for text in references]
    prediction_tokens = [whitespace_tokens(text) for text in predictions]
    rouge = rouge_f_scores(references, predictions)
    return {
        "bleu-1": 100 * corpus_bleu(reference_tokens, prediction_tokens, max_order=1),
        "bleu-4": 100 * corpus_bleu(reference_tokens, prediction_tokens, max_order=4),
        "rouge-1": 100 * rouge["rouge1"],
        "rouge-2": 100 * rouge["rouge2"],
        "rouge-l": 100 * rouge["rougeL"],
        "distinct_share": distinct_share(predictions),
    }


def _check_pairs(references: Sequence, hypotheses: Sequence) -> None:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(hypotheses)} predictions but {len(references)} references")
    if not references:
        raise ValueError("no examples to score")
