"""Reports: seed aggregation by hand, metrics.json round trip, the markdown table, the training-curve PNG."""

from __future__ import annotations

import json
import math

import pytest

from rdrec_hf.evaluation.report import (
    aggregate_seeds,
    markdown_tables,
    paired_difference,
    plot_training_curves,
    write_report,
)


def _results(hr1: float, bleu1: float) -> dict:
    return {
        "sequential": {
            "model": {"hr@1": hr1, "hr@5": 0.5, "ndcg@5": 0.25},
            "leak_rule": {"hr@1": 0.1, "hr@5": 0.2, "ndcg@5": 0.15},
            "popularity": {"hr@1": 0.0, "hr@5": 0.05, "ndcg@5": 0.02},
            "item_knn": {"hr@1": 0.3, "hr@5": 0.6, "ndcg@5": 0.4},
            "skipped_baselines": {},
            "num_examples": 4,
            "protocol": "full ranking over the catalog",
        },
        "explanation": {"model": {"bleu-1": bleu1, "distinct_share": 0.5}, "num_examples": 4},
    }


def test_aggregate_seeds_mean_and_sample_std_by_hand():
    aggregated = aggregate_seeds([_results(0.2, 10.0), _results(0.4, 14.0), _results(0.6, 12.0)])
    hr1 = aggregated["sequential"]["model"]["hr@1"]
    # mean (0.2 + 0.4 + 0.6) / 3 = 0.4; sample variance (0.04 + 0 + 0.04) / 2 = 0.04 -> std 0.2
    assert hr1["mean"] == pytest.approx(0.4)
    assert hr1["std"] == pytest.approx(0.2)
    assert hr1["values"] == [0.2, 0.4, 0.6]
    bleu1 = aggregated["explanation"]["model"]["bleu-1"]
    assert (bleu1["mean"], bleu1["std"]) == (pytest.approx(12.0), pytest.approx(2.0))
    assert aggregated["sequential"]["leak_rule"]["hr@5"]["std"] == 0.0
    assert aggregated["sequential"]["protocol"] == "full ranking over the catalog"


def test_aggregate_single_run_has_no_spread():
    aggregated = aggregate_seeds([_results(0.2, 10.0)])
    assert aggregated["sequential"]["model"]["hr@1"] == {"mean": 0.2, "std": None, "values": [0.2]}


def test_aggregate_rejects_runs_with_different_metrics():
    other = _results(0.2, 10.0)
    del other["sequential"]["popularity"]
    with pytest.raises(ValueError, match=r"run 1 differs from run 0 at results.sequential"):
        aggregate_seeds([_results(0.2, 10.0), other])
    flattened = _results(0.2, 10.0)
    flattened["sequential"]["model"] = 0.5
    with pytest.raises(ValueError, match=r"at results.sequential.model: keys a float"):
        aggregate_seeds([_results(0.2, 10.0), flattened])
    with pytest.raises(ValueError, match="no results"):
        aggregate_seeds([])


def test_paired_difference_by_hand():
    """Differences 0.1, 0.2, 0.3: mean 0.2, sample std 0.1, t(0.975, 2 df) = 4.303 -> half width 0.2484."""
    result = paired_difference([1.1, 1.2, 1.3], [1.0, 1.0, 1.0])
    assert result["per_seed"] == pytest.approx([0.1, 0.2, 0.3]) and result["mean"] == pytest.approx(0.2)
    assert result["ci95"] == pytest.approx([0.2 - 0.24841, 0.2 + 0.24841], abs=1e-4)
    assert paired_difference([0.5], [0.25]) == {"per_seed": [0.25], "mean": 0.25, "ci95": None}
    with pytest.raises(ValueError, match="paired runs needed"):
        paired_difference([1.0, 2.0], [1.0])


def test_markdown_table_orders_columns_and_rows():
    table = markdown_tables(_results(0.2, 10.0))
    lines = table.splitlines()
    assert lines[0] == "### sequential (4 examples)"
    assert "| system | HR@1 | HR@5 | NDCG@5 |" in lines
    row_labels = [line.split(" | ")[0] for line in lines if line.startswith("| ") and "system" not in line]
    assert row_labels[:4] == ["| RDRec student", "| leak rule (max history id + 1, ...)", "| popularity",
                              "| transition item-kNN (training pairs at most 3 positions apart)"]
    assert "| RDRec student | 0.2000 | 0.5000 | 0.2500 |" in lines
    assert "| transition item-kNN (training pairs at most 3 positions apart) | 0.3000 | 0.6000 | 0.4000 |" in lines
    assert "Baselines not run" not in table
    assert "| RDRec student | 10.0000 | 0.5000 |" in lines  # explanation: BLEU-1, distinct share


def test_markdown_table_of_aggregated_results_shows_spread():
    table = markdown_tables(aggregate_seeds([_results(0.2, 10.0), _results(0.4, 14.0)]))
    assert "| RDRec student | 0.3000 ± 0.1414 |" in table


def test_skipped_baselines_are_counted_and_named_also_across_seeds():
    runs = [_results(0.2, 10.0), _results(0.4, 14.0)]
    for run in runs:
        run["sequential"]["skipped_baselines"] = {"sasrec": "SASRec trains on batches of 128 users and the dataset has 40"}
    table = markdown_tables(aggregate_seeds(runs))
    assert ("Baselines not run: 1 (SASRec (full softmax, early stopping on validation): SASRec trains on batches "
            "of 128 users and the dataset has 40).") in table
    assert "| SASRec" not in table


def test_write_report_round_trips_metrics_and_shows_samples_and_skipped_tasks(tmp_path):
    results = _results(0.2, 10.0)
    results["sequential"]["samples"] = [{"user_id": "7", "target": "3", "model_top_10": ["12", "3"]}]
    results["rationale"] = {"skipped": "the dataset has no reviews", "num_examples": 0}
    paths = write_report(results, tmp_path / "run", notes=["top-N candidates: all unseen items"], curves_png="c.png")
    assert json.loads(paths["metrics"].read_text()) == results
    report = paths["report"].read_text()
    assert "- top-N candidates: all unseen items" in report
    assert "### rationale\n\nNot evaluated: the dataset has no reviews." in report
    assert "#### user 7\n\n- **target**: 3\n- **model_top_10**: 12, 3" in report
    assert "![training and validation loss](c.png)" in report


def test_aggregated_report_keeps_protocols_and_counts(tmp_path):
    runs = [_results(0.2, 10.0), _results(0.4, 14.0)]
    for run in runs:
        run["sequential"]["missing_ids"] = 2
    report = write_report(aggregate_seeds(runs), tmp_path)["report"].read_text()
    assert "### sequential (4 examples)\n\nfull ranking over the catalog" in report
    assert "counted as misses): 2." in report


def test_write_report_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        write_report({"sequential": {"model": {"hr@1": math.nan}, "num_examples": 1}}, tmp_path)


def test_plot_training_curves_from_a_trainer_log_history(tmp_path):
    log_history = [
        {"loss": 3.0, "loss_sequential": 2.5, "loss_explanation": 3.5, "epoch": 0.5, "step": 10},
        {"loss": 2.0, "loss_sequential": 1.5, "epoch": 1.0, "step": 20},  # a task missing from one entry
        {"eval_loss": 2.2, "eval_loss_sequential": 1.9, "epoch": 1.0, "step": 20},
        {"loss": float("nan"), "step": 30},  # not finite: left out
        {"train_loss": 2.5, "train_runtime": 9.0, "step": 30},  # the end-of-training summary
    ]
    png = tmp_path / "curves" / "training_curves.png"
    plotted = plot_training_curves(log_history, png)
    assert plotted == {
        "loss": 2, "loss_sequential": 2, "loss_explanation": 1, "eval_loss": 1, "eval_loss_sequential": 1
    }
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_training_curves_without_evaluation(tmp_path):
    plotted = plot_training_curves([{"loss": 1.0, "step": 1}], tmp_path / "curves.png")
    assert plotted == {"loss": 1}
    assert (tmp_path / "curves.png").stat().st_size > 0
