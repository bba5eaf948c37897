"""The evaluation's baselines: names, transition item-kNN by hand, item-kNN and SASRec recovering a known
second-order pattern, SASRec's cached weights, and SASRec skipped on too few users (all on real P5-format files
loaded by the real loader)."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from rdrec_hf.data import load_p5_dataset, split_target
from rdrec_hf.evaluation.baselines import DEFAULT_BASELINES, Baseline, TransitionItemKNN, baseline_rankers
from rdrec_hf.evaluation.evaluator import EvaluationConfig, evaluate_model
from rdrec_hf.evaluation.ranking import ranking_metrics
from rdrec_hf.evaluation.report import write_report
from rdrec_hf.models.sasrec import SASREC_WEIGHTS_FILE
from helpers import load_script

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models on one thread


NUM_ITEMS = 24


def back_and_forth(num_users: int) -> list[list[int]]:
    """Walks around a cycle of ``NUM_ITEMS`` items, half of them upwards and half downwards, from every start
    and of lengths 5 to 8. The next item is fixed by the last TWO (their order gives the direction): the last
    item alone leaves two equally likely neighbours."""
    walks = []
    for user in range(num_users):
        step, start, length = (1 if user % 2 else -1), (user // 2) % NUM_ITEMS, 5 + (user // 2) % 4
        walks.append([(start + step * position) % NUM_ITEMS + 1 for position in range(length)])
    return walks


def write_p5_folder(folder, sequences):
    """A P5 data folder (sequential.txt, datamaps.json) of these item sequences."""
    folder.mkdir(parents=True)
    lines = [" ".join(map(str, [user, *items])) for user, items in enumerate(sequences, start=1)]
    (folder / "sequential.txt").write_text("\n".join(lines) + "\n")
    maps = {"id2user": {str(u): f"U{u}" for u in range(1, len(sequences) + 1)},
            "id2item": {str(i): f"I{i}" for i in range(1, NUM_ITEMS + 1)}}  # fmt: skip
    (folder / "datamaps.json").write_text(json.dumps(maps))
    return folder


def toy_dataset(tmp_path, num_users: int):
    """The walks, renumbered at random (the leak rule cannot read the direction from the numbers)."""
    return load_p5_dataset(write_p5_folder(tmp_path / f"walks{num_users}", back_and_forth(num_users)), "random", seed=0)


def test_baseline_names_and_the_defaults():
    assert Baseline.parse("item-knn") is Baseline.ITEM_KNN and Baseline.parse("SASRec") is Baseline.SASREC
    assert EvaluationConfig().baselines == list(DEFAULT_BASELINES) == [
        Baseline.POPULARITY, Baseline.LEAK_RULE, Baseline.ITEM_KNN
    ]
    choices = r"choose from \['popularity', 'leak_rule', 'item_knn', 'sasrec'\]"
    with pytest.raises(ValueError, match="unknown baseline 'knn'; " + choices):
        EvaluationConfig(baselines=["popularity", "knn"])
    with pytest.raises(ValueError, match="a baseline is listed twice"):
        EvaluationConfig(baselines=["sasrec", "SASRec"])
    with pytest.raises(ValueError, match="sasrec_wall_budget_s must be positive"):
        EvaluationConfig(sasrec_wall_budget_s=0)


def test_an_unknown_baseline_in_an_evaluation_yaml_is_a_usage_error(tmp_path, capsys):
    from rdrec_hf.cli import main

    config = tmp_path / "evaluation.yaml"
    config.write_text(f"model_name_or_path: {tmp_path}\noutput_dir: {tmp_path}\nbaselines: [popularity, knn]\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--config", str(config)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "unknown baseline 'knn'; choose from ['popularity', 'leak_rule', 'item_knn', 'sasrec']" in error
    assert "Traceback" not in error


def test_item_knn_counts_training_pairs_within_the_window_by_hand():
    # Pairs at most 3 positions apart: item 1 meets 2 (twice), 3 (twice), 4 (once), 5 (never: 4 apart).
    training = [["1", "2", "3", "4", "5"], ["2", "1", "3"], ["6", "6"]]
    knn = TransitionItemKNN(training, num_items=7)
    assert knn.neighbours("1") == ["2", "3", "4"]  # 2 and 3 tie on pairs: 2 is the more popular (3 vs 2 rows)
    # History excluded; after the neighbours, the catalog by popularity (ties: smaller id), 7 never seen.
    assert knn.ranking(["4", "1"], k=5) == ["2", "3", "6", "5", "7"]
    assert knn.ranking(["1"], k=3, candidates=["7", "5", "3"]) == ["3", "5", "7"]
    with pytest.raises(ValueError, match="non-empty history"):
        knn.ranking([], k=3)


def test_item_knn_and_sasrec_recover_the_pattern_popularity_and_the_leak_rule_do_not(tmp_path):
    data = toy_dataset(tmp_path, num_users=192)
    tests = [split_target(items, "test") for items in data["users"]["items"]]
    histories, targets = [history for history, _ in tests], [target for _, target in tests]
    rankers, skipped = baseline_rankers(data, list(Baseline), seed=0)
    assert skipped == {} and list(rankers) == [baseline.value for baseline in Baseline]
    hit_rate = {name: ranking_metrics(ranker(histories, 10), targets)["hr@1"] for name, ranker in rankers.items()}
    assert hit_rate["item_knn"] == 1.0
    assert hit_rate["sasrec"] >= 0.95, hit_rate
    assert hit_rate["popularity"] < 0.2 and hit_rate["leak_rule"] < 0.2, hit_rate
    # Among candidates too: the target first, never an item outside the candidates.
    candidates = [[target, *(item for item in data["items"]["item_id"] if item not in history)][:6]
                  for history, target in tests]  # fmt: skip
    for name in ("item_knn", "sasrec"):
        ranked = rankers[name](histories, 3, list(map(sorted, candidates)))
        assert all(set(row) <= set(c) and len(row) == 3 for row, c in zip(ranked, candidates))
        assert ranking_metrics(ranked, targets, ks=(1,))["hr@1"] >= 0.95


def tiny_student(tokenizer, items):
    """An untrained tiny student with the catalog of ``items`` (a dataset's items table)."""
    from rdrec_hf.models import ItemIndex, RDRecConfig, RDRecForConditionalGeneration

    torch.manual_seed(0)
    model = RDRecForConditionalGeneration(RDRecConfig.from_preset("tiny"))
    model.set_item_index(ItemIndex.from_catalog(items["item_id"], tokenizer, original_ids=items["original_id"]))
    return model


def test_sasrec_weights_are_kept_beside_the_run_and_read_back(tmp_path, t5_tokenizer, caplog):
    data = toy_dataset(tmp_path, num_users=192)
    model = tiny_student(t5_tokenizer, data["items"])
    config = EvaluationConfig(tasks=["sequential"], baselines=["item_knn", "sasrec"], max_users=8, num_beams=10,
                              num_samples=0, seed=0)  # fmt: skip
    run = tmp_path / "eval"
    first = evaluate_model(model, data, t5_tokenizer, config, show_progress=False, baseline_dir=run)
    weights = run / SASREC_WEIGHTS_FILE
    trained_at = weights.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="rdrec_hf.evaluation"):
        second = evaluate_model(model, data, t5_tokenizer, config, show_progress=False, baseline_dir=run)
    assert weights.stat().st_mtime_ns == trained_at  # not trained (nor written) again
    assert any(record.getMessage().startswith("SASRec read back") for record in caplog.records)
    assert second == first and first["sequential"]["sasrec"]["hr@1"] >= 0.95
    # Another training recipe (the seed) does not reuse the file: trained again, written again.
    evaluate_model(model, data, t5_tokenizer, EvaluationConfig(**{**vars(config), "seed": 1}),
                   show_progress=False, baseline_dir=run)  # fmt: skip
    assert weights.stat().st_mtime_ns != trained_at


@pytest.mark.parametrize("protocol", ["project", "paper"])
def test_sasrec_on_fewer_users_than_a_batch_is_skipped_and_counted(tmp_path, t5_tokenizer, protocol):
    data = toy_dataset(tmp_path, num_users=40)
    model = tiny_student(t5_tokenizer, data["items"])
    config = EvaluationConfig(tasks=["sequential", "topn"], baselines=[*DEFAULT_BASELINES, "sasrec"], max_users=6,
                              num_beams=10, seed=0, protocols=[protocol])  # fmt: skip
    results = evaluate_model(model, data, t5_tokenizer, config, show_progress=False, baseline_dir=tmp_path / "eval")
    for task in ("sequential", "topn"):
        assert results[task]["skipped_baselines"] == {
            "sasrec": "SASRec trains on batches of 128 users and the dataset has 40"
        }
        assert "sasrec" not in results[task] and {"popularity", "leak_rule", "item_knn"} <= set(results[task])
        for sample in results[task]["samples"]:
            assert sample["item_knn_top_10"] and not set(sample["item_knn_top_10"]) & set(sample["recent_history"])
    assert not (tmp_path / "eval" / SASREC_WEIGHTS_FILE).exists()
    report = write_report(results, tmp_path / "eval", protocol=protocol)["report"].read_text()
    assert report.count("Baselines not run: 1 (SASRec (full softmax, early stopping on validation): SASRec trains "
                        "on batches of 128 users and the dataset has 40).") == 2
    assert report.count("| transition item-kNN (training pairs at most 3 positions apart) |") == 2


def test_rdrec_hf_evaluate_of_a_student_writes_an_item_knn_row(trained_student, tmp_path):
    from rdrec_hf.cli import main

    model, dataset = trained_student
    out = tmp_path / "eval"
    assert main(["evaluate", "--model_name_or_path", str(model), "--dataset", str(dataset), "--output_dir", str(out),
                 "--tasks", "sequential", "--max_users", "4", "--num_beams", "10"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["sequential"]
    assert set(metrics["item_knn"]) == {"hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10"}
    assert "| transition item-kNN (training pairs at most 3 positions apart) |" in (out / "report.md").read_text()


def test_the_apps_comparison_table_shows_the_chosen_baselines(tmp_path, t5_tokenizer):
    from rdrec_hf.serving.app import RecommenderPage

    data = toy_dataset(tmp_path, num_users=120)  # every transition seen in training, too few users for SASRec
    page = RecommenderPage(tiny_student(t5_tokenizer, data["items"]), t5_tokenizer, data,
                           baselines=["item_knn", "sasrec"])  # fmt: skip
    history, target = split_target(data["users"][0]["items"], "test")
    table = page.baselines_table(history, [], 3, target)
    assert '<th class="item-kNN">item-kNN</th>' in table and "popularity" not in table
    assert f'<td class="item-kNN">{target}</td>' in table and "item-kNN: rank 1" in table
    assert "SASRec not shown: SASRec trains on batches of 128 users and the dataset has 120." in table


def test_an_unknown_baseline_of_the_app_is_a_usage_error(tmp_path, capsys):
    from rdrec_hf.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["app", "--model", str(tmp_path), "--baselines", "item_knn", "knn"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'knn' (choose from 'popularity', 'leak_rule', 'item_knn', 'sasrec')" in capsys.readouterr().err


def student_results(tmp_path, popularity_ndcg: float, minutes: float, train_args=()):
    """A bench_item_ids.py results file of one seed on 5,000 users (the fields bench_student_vs_baselines reads)."""
    figures = {"ndcg@10": popularity_ndcg, "hr@10": 0.0126}
    summary = {
        "train_args": list(train_args), "seeds": [42], "seeds_of": {"independent": [42]}, "training_minutes": {"independent": [minutes]},
        "results": {"independent": {"sequential": {
            "num_examples": {"mean": 5000.0}, "popularity": {m: {"mean": v} for m, v in figures.items()},
            "model": {"ndcg@10": {"values": [0.05]}, "hr@10": {"values": [0.08]}},
        }}},
    }  # fmt: skip
    path = tmp_path / f"student_{popularity_ndcg}_{minutes}_{len(train_args)}.json"
    path.write_text(json.dumps(summary))
    return path


def test_bench_student_vs_baselines_reads_only_figures_of_the_same_users_within_the_budget(tmp_path):
    bench = load_script("benchmarks/bench_student_vs_baselines.py")
    popularity = {"ndcg@10": 0.0057, "hr@10": 0.0126}
    student = bench.read_student(student_results(tmp_path, 0.0057, 18.0), "independent", popularity, 5000, 30)
    assert (student["seeds"], student["ndcg@10"], student["hr@10"]) == ([42], [0.05], [0.08])
    with pytest.raises(SystemExit, match="not the same test users"):
        bench.read_student(student_results(tmp_path, 0.0058, 18.0), "independent", popularity, 5000, 30)
    # The budget is CPU time (`benchmark_cpu_minutes`): wall minutes over it under load are kept ...
    assert bench.read_student(student_results(tmp_path, 0.0057, 37.8), "independent", popularity, 5000,
                              30)["training_minutes"] == [37.8]
    # ... a run given a larger CPU budget is not.
    with pytest.raises(SystemExit, match="CPU budget over 30 minutes"):
        bench.read_student(student_results(tmp_path, 0.0057, 18.0, ["--benchmark_cpu_minutes", "45"]),
                           "independent", popularity, 5000, 30)
    with pytest.raises(SystemExit, match="not 4000"):
        bench.read_student(student_results(tmp_path, 0.0057, 18.0), "independent", popularity, 4000, 30)
    with pytest.raises(SystemExit, match="no scheme 'random'"):
        bench.read_student(student_results(tmp_path, 0.0057, 18.0), "random", popularity, 5000, 30)
