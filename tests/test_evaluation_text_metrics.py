"""Text metrics against hand-worked examples, and BLEU against sacrebleu as an independent implementation."""

from __future__ import annotations

import math
import random

import pytest
import sacrebleu

from rdrec_hf.evaluation.text_metrics import (
    TEXT_METRIC_NAMES,
    corpus_bleu,
    distinct_share,
    rouge_f_scores,
    text_generation_metrics,
)


def _tokens(*texts):
    return [text.split() for text in texts]


def test_bleu_single_pair_by_hand():
    # ref "the cat sat on the mat", hyp "the cat is on the mat": equal lengths, so no brevity penalty.
    # unigrams: the x2, cat, on, mat match -> 5/6; 4-grams: none of the 3 match -> BLEU-4 = 0 (no smoothing).
    references = _tokens("the cat sat on the mat")
    hypotheses = _tokens("the cat is on the mat")
    assert corpus_bleu(references, hypotheses, max_order=1) == pytest.approx(5 / 6)
    # bigrams 3/5 (the cat, on the, the mat): BLEU-2 = sqrt(5/6 * 3/5)
    assert corpus_bleu(references, hypotheses, max_order=2) == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    assert corpus_bleu(references, hypotheses, max_order=4) == 0.0


def test_bleu_sums_counts_over_the_corpus_and_applies_brevity_penalty():
    # pair A: "a b c d" vs ref "a b c d e": 4/4, 3/3, 2/2, 1/1.
    # pair B: "x y q w" vs ref "x y z w": 3/4, 1/3 (x y), 0/2, 0/1.
    # corpus: 7/8, 4/6, 2/4, 1/2; hypothesis length 8 < reference length 9 -> BP = exp(1 - 9/8).
    references = _tokens("a b c d e", "x y z w")
    hypotheses = _tokens("a b c d", "x y q w")
    penalty = math.exp(1 - 9 / 8)
    assert corpus_bleu(references, hypotheses, max_order=1) == pytest.approx(penalty * 7 / 8)
    expected_bleu4 = penalty * (7 / 8 * 4 / 6 * 2 / 4 * 1 / 2) ** 0.25
    assert corpus_bleu(references, hypotheses, max_order=4) == pytest.approx(expected_bleu4)


def test_bleu_clips_repeated_ngrams():
    # "the" four times against a reference holding it once: 1/4; hypothesis longer -> BP = 1.
    assert corpus_bleu(_tokens("the cat"), _tokens("the the the the"), max_order=1) == pytest.approx(0.25)


def test_bleu_of_empty_hypotheses_is_zero():
    assert corpus_bleu(_tokens("a b"), [[]], max_order=1) == 0.0


def test_bleu_matches_sacrebleu_without_tokenisation():
    rng = random.Random(0)
    vocabulary = [f"w{i}" for i in range(8)]

    def sentence():
        return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(3, 12)))

    references = [sentence() for _ in range(40)]
    hypotheses = [sentence() for _ in range(40)]
    for order in (1, 4):
        reference = sacrebleu.BLEU(tokenize="none", smooth_method="none", max_ngram_order=order)
        expected = reference.corpus_score(hypotheses, [references]).score
        ours = 100 * corpus_bleu(_tokens(*references), _tokens(*hypotheses), max_order=order)
        assert expected > 0
        assert ours == pytest.approx(expected, rel=1e-9)


def test_rouge_by_hand():
    # pair 1: ROUGE-1 5/6 (the x2, cat, on, mat), ROUGE-2 3/5, ROUGE-L: LCS "the cat on the mat" = 5 -> 5/6.
    # pair 2: "c b a" vs "a b c": ROUGE-1 1, ROUGE-2 0, ROUGE-L: LCS of length 1 -> P = R = F = 1/3.
    scores = rouge_f_scores(["the cat sat on the mat", "a b c"], ["the cat is on the mat", "c b a"])
    assert scores["rouge1"] == pytest.approx((5 / 6 + 1) / 2)
    assert scores["rouge2"] == pytest.approx((3 / 5 + 0) / 2)
    assert scores["rougeL"] == pytest.approx((5 / 6 + 1 / 3) / 2)


def test_distinct_share_normalises_whitespace():
    assert distinct_share(["good product", "good  product ", "bad"]) == pytest.approx(2 / 3)
    assert distinct_share(["same"] * 4) == pytest.approx(1 / 4)


def test_text_generation_metrics_scales_by_100_and_names_every_metric():
    metrics = text_generation_metrics(["the cat is on the mat"], ["the cat sat on the mat"])
    assert tuple(metrics) == TEXT_METRIC_NAMES
    assert metrics["bleu-1"] == pytest.approx(100 * 5 / 6)
    assert metrics["bleu-4"] == 0.0
    assert metrics["rouge-2"] == pytest.approx(60.0)
    assert metrics["distinct_share"] == 1.0


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [([], [], "no examples"), (["a"], ["a", "b"], "1 predictions but 2 references")],
)
def test_bad_input_is_rejected(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        text_generation_metrics(predictions, references)
