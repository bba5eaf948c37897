"""`evaluate` module for generated explanations and rationales: BLEU-1/4, two ROUGE-1/2/L, distinct share."""

import datasets
import evaluate

from rdrec_hf.evaluation.text_metrics import text_generation_metrics

_DESCRIPTION = """Corpus BLEU-1 and BLEU-4 on whitespace tokens without smoothing (the compute_bleu of tensorflow/nmt
that P5, POD and RDRec use), mean ROUGE-1/2/L F-measures of rouge-score and of the reference's tensorflow/nmt
ROUGE (n-gram sets, case and punctuation kept, ROUGE-L with beta = P/R), all scaled x100, and the share of
distinct generated texts (a fraction: 1/N when the generator writes the same sentence for every example)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): generated texts.
    references (list of str): one reference text per prediction.
Returns:
    dict with "bleu-1", "bleu-4", "rouge-1", "rouge-2", "rouge-l", "nmt-rouge-1", "nmt-rouge-2",
    "nmt-rouge-l" (0-100) and "distinct_share" (0-1).
Examples:
    >>> metric = rdrec_hf.evaluation.load_metric("rdrec_text")
    >>> metric.compute(predictions=["the cat is on the mat"], references=["the cat sat on the mat"])["bleu-1"]
    83.33333333333334
"""

_CITATION = """@inproceedings{papineni-etal-2002-bleu,
  title={Bleu: a Method for Automatic Evaluation of Machine Translation},
  author={Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing},
  booktitle={Proceedings of ACL 2002},
  year={2002}
}
@inproceedings{lin-2004-rouge,
  title={ROUGE: A Package for Automatic Evaluation of Summaries},
  author={Lin, Chin-Yew},
  booktitle={Text Summarization Branches Out},
  year={2004}
}"""


class RDRecText(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        return text_generation_metrics(predictions, references)
