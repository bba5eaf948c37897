"""Evaluation: pure metric functions, baselines and the evaluation loop. Never imports the trainer."""

from .baselines import Baseline, TransitionItemKNN, baseline_rankers, item_popularity, leak_rule_ranking, popularity_ranking
from .evaluator import EvaluationConfig, evaluate_model, sample_users
from .metric_modules import METRIC_NAMES, load_metric
from .protocols import EvalProtocol
from .ranking import hit_at_k, ndcg_at_k, rank_by_score, ranking_metrics
from .report import aggregate_seeds, markdown_tables, plot_training_curves, write_report
from .text_metrics import corpus_bleu, distinct_share, nmt_rouge_f_scores, rouge_f_scores, text_generation_metrics

__all__ = [
    "METRIC_NAMES",
    "Baseline",
    "EvalProtocol",
    "EvaluationConfig",
    "TransitionItemKNN",
    "aggregate_seeds",
    "baseline_rankers",
    "corpus_bleu",
    "distinct_share",
    "evaluate_model",
    "hit_at_k",
    "item_popularity",
    "leak_rule_ranking",
    "load_metric",
    "markdown_tables",
    "ndcg_at_k",
    "plot_training_curves",
    "popularity_ranking",
    "rank_by_score",
    "ranking_metrics",
    "nmt_rouge_f_scores",
    "rouge_f_scores",
    "sample_users",
    "text_generation_metrics",
    "write_report",
]
