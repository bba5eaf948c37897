"""`evaluate` module for leave-one-out ranking: HR@k and NDCG@k (one relevant item per example)."""

import datasets
import evaluate

from rdrec_hf.evaluation.ranking import DEFAULT_KS, ranking_metrics

_DESCRIPTION = """Hit ratio (HR@k) and normalised discounted cumulative gain (NDCG@k) for next-item recommendation
with a single relevant item per user, as in P5, POD and RDRec. NDCG@1 equals HR@1 and is not reported."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of str): ranked item ids per example, best first.
    references (list of str): the relevant (held-out) item id per example.
    ks (tuple of int, optional): cut-offs, default (1, 5, 10).
Returns:
    dict with "hr@k" for every k and "ndcg@k" for every k > 1, means over the examples in [0, 1].
Examples:
    >>> metric = rdrec_hf.evaluation.load_metric("rdrec_ranking")
    >>> metric.compute(predictions=[["3", "7"]], references=["7"], ks=(1, 2))
    {'hr@1': 0.0, 'hr@2': 1.0, 'ndcg@2': 0.6309297535714575}
"""

_CITATION = """@inproceedings{wang-etal-2024-rdrec,
  title={RDRec: Rationale Distillation for LLM-based Recommendation},
  author={Wang, Xinfeng and Cui, Jin and Suzuki, Yoshimi and Fukumoto, Fumiyo},
  booktitle={Proceedings of ACL 2024 (Volume 2: Short Papers)},
  year={2024}
}"""


class RDRecRanking(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.List(datasets.Value("string")), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, ks=DEFAULT_KS):
        return ranking_metrics(predictions, references, ks=tuple(ks))
