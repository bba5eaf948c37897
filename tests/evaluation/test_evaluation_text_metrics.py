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
    longest_common_subsequence,
    longest_token_run,
    looping_share,
    loops,
    most_repeated_ngram,
    nmt_rouge_f_scores,
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


def test_reference_rouge_by_hand():
    """The reference's ROUGE (tensorflow/nmt) from its definition: single-space tokens, case and punctuation
    kept, n-gram sets, ROUGE-L with beta = P / R."""
    references = ["the cat sat on the mat", "Great smell, lasts long"]
    predictions = ["the cat is on the mat", "great smell lasts"]
    # pair 1: unigram sets {the cat sat on mat} / {the cat is on mat}: 4 of 5 each way -> F1 0.8 (rouge-score's
    # counts give 5/6); bigrams 3 of 5 -> 0.6; LCS "the cat on the mat" 5 of 6 both ways -> beta 1, F 5/6.
    # pair 2: "Great" != "great", "smell," != "smell": one shared unigram, P 1/3, R 1/4 -> F1 2/7; no shared
    # bigram; LCS 1: R 1/4, P 1/3, beta 4/3 -> F = (1 + 16/9)(1/12) / (1/4 + 16/27) = 25/91.
    scores = nmt_rouge_f_scores(references, predictions)
    assert scores["rouge1"] == pytest.approx((0.8 + 2 / 7) / 2, abs=1e-7)
    assert scores["rouge2"] == pytest.approx((0.6 + 0.0) / 2, abs=1e-7)
    assert scores["rougeL"] == pytest.approx((5 / 6 + 25 / 91) / 2, abs=1e-7)
    # rouge-score lower-cases and drops punctuation: pair 2 is 6/7 there.
    assert rouge_f_scores(references[1:], predictions[1:])["rouge1"] == pytest.approx(6 / 7)
    assert nmt_rouge_f_scores(["a b"], [""]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    assert longest_common_subsequence("a b c b d a b".split(), "b d c a b a".split()) == 4


def test_distinct_share_normalises_whitespace():
    assert distinct_share(["good product", "good  product ", "bad"]) == pytest.approx(2 / 3)
    assert distinct_share(["same"] * 4) == pytest.approx(1 / 4)


def test_longest_token_run_counts_consecutive_repeats_only():
    assert longest_token_run([]) == 0
    assert longest_token_run("a b a b".split()) == 1
    assert longest_token_run("I I I I I I love it".split()) == 6
    assert longest_token_run("so good so so good good good".split()) == 3


def test_most_repeated_ngram_counts_overlapping_occurrences():
    assert most_repeated_ngram("one two".split()) == (None, 0)
    text = "it's made with love and it's made with love and it's made with"
    assert most_repeated_ngram(text.split()) == (("it's", "made", "with"), 3)
    assert most_repeated_ngram("a a a a a".split(), order=3) == (("a", "a", "a"), 3)
    assert most_repeated_ngram("x y x y".split(), order=2) == (("x", "y"), 2)  # first on a tie
    with pytest.raises(ValueError, match="order"):
        most_repeated_ngram(["a"], order=0)


def test_loops_at_four_in_a_row_or_a_trigram_three_times():
    assert loops("I I I I I I I I")
    assert not loops("I I I love it")  # three in a row is not yet a loop
    assert loops("made with love and made with love and made with love")
    assert not loops("made with love and made with love")  # a 3-gram twice is not yet a loop
    assert loops("GreetingGreetingGreetingGreeting") and loops("so hahahaha") and not loops("hahaha, 2000 Mississippi")
    assert looping_share(["I I I I", "a fine cream", "made with love made with love made with love", "ok"]) == 0.5
    with pytest.raises(ValueError, match="no texts"):
        looping_share([])


def test_text_generation_metrics_scales_by_100_and_names_every_metric():
    metrics = text_generation_metrics(["the cat is on the mat"], ["the cat sat on the mat"])
    assert tuple(metrics) == TEXT_METRIC_NAMES
    assert metrics["bleu-1"] == pytest.approx(100 * 5 / 6)
    assert metrics["bleu-4"] == 0.0
    assert metrics["rouge-2"] == pytest.approx(60.0)
    assert metrics["nmt-rouge-1"] == pytest.approx(80.0) and metrics["rouge-1"] == pytest.approx(100 * 5 / 6)
    assert metrics["distinct_share"] == 1.0 and metrics["looping_share"] == 0.0


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [([], [], "no examples"), (["a"], ["a", "b"], "1 predictions but 2 references")],
)
def test_bad_input_is_rejected(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        text_generation_metrics(predictions, references)
