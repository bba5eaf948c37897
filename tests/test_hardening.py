"""No silent wrong results: a model meeting a dataset numbered otherwise, top-N without negatives and the
`recommend` edge cases end with one clear message (real files, a real trained model, the real CLI)."""

from __future__ import annotations

import pytest

from rdrec_hf.app import RecommenderPage
from rdrec_hf.cli import EXIT_USER_ERROR, main
from rdrec_hf.data import build_eval_dataset, load_amazon_reviews, load_rec_dataset, load_tokenizer
from rdrec_hf.inference import load_trained_student
from rdrec_hf.paths import all_beauty_reviews
from rdrec_hf.tasks import Task
from rdrec_hf.training import DataArguments, ModelArguments, RDRecTrainingArguments, train_rdrec


@pytest.fixture(scope="module")
def reseeded_dataset(tmp_path_factory, shared):
    """The trained student's source, prepared again with another seed: the same items under other ids."""
    folder = tmp_path_factory.mktemp("reseeded") / "data"
    assert main(["prepare", "--source", str(all_beauty_reviews()), "--indexing", "independent", "--seed", "1",
                 "--output", str(folder)]) == 0  # fmt: skip
    return folder


def assert_names_both_numberings(message: str) -> None:
    assert "number items differently" in message, message
    assert "independent indexing, seed 0" in message and "independent indexing, seed 1" in message, message


def test_recommend_refuses_a_dataset_numbered_otherwise(trained_student, reseeded_dataset, capsys):
    model_dir, data_dir = trained_student
    assert main(["recommend", "--model", str(model_dir), "--user", "12", "--dataset", str(reseeded_dataset)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert_names_both_numberings(err)
    assert "Traceback" not in err
    assert main(["recommend", "--model", str(model_dir), "--dataset", str(reseeded_dataset), "--users", "all",
                 "--output", str(reseeded_dataset.parent / "recs.jsonl")]) == EXIT_USER_ERROR  # fmt: skip
    assert_names_both_numberings(capsys.readouterr().err)
    assert main(["recommend", "--model", str(model_dir), "--user", "12", "--dataset", str(data_dir)]) == 0


def test_evaluate_refuses_a_dataset_numbered_otherwise(trained_student, reseeded_dataset, tmp_path):
    model_dir, _ = trained_student
    common = ["--model_name_or_path", str(model_dir), "--output_dir", str(tmp_path), "--tasks", "sequential",
              "--max_users", "3"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", *common, "--dataset", str(reseeded_dataset)])
    assert str(exit_info.value.code).startswith("error: ")
    assert_names_both_numberings(str(exit_info.value.code))
    # The raw source under the paper's numbering, as a recipe's `indexing: sequential` would load it.
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", *common, "--dataset", "all_beauty", "--indexing", "sequential"])
    assert "number items differently" in str(exit_info.value.code) and "sequential indexing, seed 0" in str(exit_info.value.code)
    assert not (tmp_path / "metrics.json").exists()


def test_training_on_from_a_checkpoint_and_the_app_refuse_it(trained_student, reseeded_dataset, tmp_path):
    model_dir, _ = trained_student
    args = RDRecTrainingArguments(output_dir=str(tmp_path / "more"), max_steps=1, per_device_train_batch_size=4,
                                  save_strategy="no", eval_strategy="no", rank_eval=False, use_cpu=True,
                                  report_to="none", max_source_length=128)  # fmt: skip
    with pytest.raises(ValueError, match="number items differently") as error:
        train_rdrec(ModelArguments(model_name_or_path=str(model_dir)), DataArguments(dataset=str(reseeded_dataset)), args)
    assert_names_both_numberings(str(error.value))
    model, tokenizer = load_trained_student(str(model_dir))
    with pytest.raises(ValueError, match="number items differently"):
        RecommenderPage(model, tokenizer, load_rec_dataset(reseeded_dataset), str(model_dir))


def test_prepare_refuses_zero_negatives(shared, tmp_path, capsys):
    for count in ("0", "-5"):
        with pytest.raises(SystemExit) as exit_info:
            main(["prepare", "--source", str(all_beauty_reviews()), "--num-negatives", count, "--output", str(tmp_path / "x")])
        assert exit_info.value.code == 2
        assert "--num-negatives: must be at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="num_negatives must be at least 1"):
        load_amazon_reviews(all_beauty_reviews(), num_negatives=0)
    assert not (tmp_path / "x").exists()


def test_top_n_evaluation_refuses_a_dataset_without_negatives(trained_student):
    tokenizer = load_tokenizer(trained_student[0])  # holds the independent item tokens
    data = load_rec_dataset(trained_student[1])
    data["users"] = data["users"].map(lambda row: {"test_negatives": [], "valid_negatives": []})
    with pytest.raises(ValueError, match="no user of this dataset has test_negatives"):
        build_eval_dataset(data, Task.TOPN, "test", tokenizer)
    assert build_eval_dataset(data, Task.SEQUENTIAL, "test", tokenizer).num_rows == data["users"].num_rows


@pytest.mark.parametrize("k", ["0", "-3", "two"])
def test_recommend_k_must_be_positive(trained_student, k, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["recommend", "--model", str(trained_student[0]), "--history", "3", "-k", k])
    assert exit_info.value.code == 2 and "argument -k" in capsys.readouterr().err


def test_recommend_edge_cases(trained_student, tmp_path, capsys):
    model_dir, data_dir = trained_student
    everything = [str(item) for item in range(1, 84)]
    assert main(["recommend", "--model", str(model_dir), "--history", *everything]) == 0
    assert "nothing to recommend for an anonymous user: the history holds all 83 catalog items" in capsys.readouterr().out
    for model, message in [
        (str(data_dir), "is a project dataset, not a model"),
        (str(tmp_path / "no-such-model"), "no such folder, and not a Hub id (owner/name)"),
        ("runs/no-such-model", "no such folder, and not a Hub id that could be read"),
    ]:
        assert main(["recommend", "--model", model, "--history", "3"]) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
