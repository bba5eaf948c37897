"""The `rdrec-hf` command line: real data in, real (tiny, untrained) checkpoints, user errors as exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from rdrec_hf import ItemIndex, RDRecConfig, RDRecForConditionalGeneration, load_rec_dataset
from rdrec_hf.cli import EXIT_USER_ERROR, build_parser, main
from rdrec_hf.paths import all_beauty_reviews, p5_dataset_dir


@pytest.fixture(scope="module")
def all_beauty_dataset(tmp_path_factory, shared):
    folder = tmp_path_factory.mktemp("cli") / "all_beauty"
    assert main(["prepare", "--source", str(all_beauty_reviews()), "--output", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, all_beauty_dataset, t5_tokenizer):
    """An untrained tiny student with the All_Beauty catalog, saved as `save_pretrained` writes it."""
    items = load_rec_dataset(all_beauty_dataset)["items"]
    torch.manual_seed(0)
    model = RDRecForConditionalGeneration(RDRecConfig.from_preset("tiny"))
    model.set_item_index(ItemIndex.from_catalog(items["item_id"], t5_tokenizer, original_ids=items["original_id"]))
    folder = tmp_path_factory.mktemp("cli") / "model"
    model.save_pretrained(folder)
    t5_tokenizer.save_pretrained(folder)
    return folder


def test_prepare_reports_counts_and_skips(all_beauty_dataset, capsys):
    data = load_rec_dataset(all_beauty_dataset)
    assert data["users"].num_rows == 976 and data["items"].num_rows == 83


@pytest.mark.parametrize("command", ["prepare", "distill", "train", "evaluate", "recommend", "push"])
def test_help_renders(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: rdrec-hf {command}" in capsys.readouterr().out


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "rdrec_hf.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "recommend" in result.stdout


def test_unknown_data_folder_is_a_user_error(tmp_path, capsys):
    assert main(["prepare", "--source", str(tmp_path), "--output", str(tmp_path / "out")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "not a known data folder" in err and "Traceback" not in err


def test_recommend_returns_k_valid_unseen_items(tiny_checkpoint, capsys):
    history = ["3", "17", "5"]
    code = main(["recommend", "--model", str(tiny_checkpoint), "--history", *history, "-k", "5", "--json"])
    assert code == 0
    recommendations = json.loads(capsys.readouterr().out)
    ids = [rec["item_id"] for rec in recommendations]
    catalog = set(ItemIndex.load(tiny_checkpoint / "item_index.json").item_ids)
    assert len(ids) == 5 and len(set(ids)) == 5
    assert set(ids) <= catalog and not set(ids) & set(history)
    assert all(rec["original_id"] and rec["original_id"] != rec["item_id"] for rec in recommendations)


def test_recommend_looks_up_a_users_history(tiny_checkpoint, all_beauty_dataset, capsys):
    user = load_rec_dataset(all_beauty_dataset)["users"][0]
    code = main(["recommend", "--model", str(tiny_checkpoint), "--user", user["user_id"],
                 "--dataset", str(all_beauty_dataset), "-k", "3", "--json"])
    assert code == 0
    ids = [rec["item_id"] for rec in json.loads(capsys.readouterr().out)]
    assert len(ids) == 3 and not set(ids) & set(user["items"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--history", "no-such-item"], "not in the model's catalog"),
        (["--user", "999999"], "needs --dataset"),
        ([], "nothing to recommend from"),
    ],
)
def test_recommend_user_errors(tiny_checkpoint, extra, message, capsys):
    assert main(["recommend", "--model", str(tiny_checkpoint), *extra]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_recommend_unknown_user(tiny_checkpoint, all_beauty_dataset, capsys):
    code = main(["recommend", "--model", str(tiny_checkpoint), "--user", "999999", "--dataset", str(all_beauty_dataset)])
    assert code == EXIT_USER_ERROR
    assert "unknown user id '999999'" in capsys.readouterr().err


def test_checkpoint_of_another_model_type_is_a_user_error(tmp_path, capsys):
    from transformers import T5Config, T5ForConditionalGeneration

    T5ForConditionalGeneration(T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)).save_pretrained(tmp_path)
    assert main(["recommend", "--model", str(tmp_path), "--history", "1"]) == EXIT_USER_ERROR
    assert "plain T5 checkpoint, not a trained RDRec student" in capsys.readouterr().err


def test_parser_requires_a_command():
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([])
    assert exit_info.value.code == 2


def test_evaluate_writes_a_report_with_baselines(tiny_checkpoint, all_beauty_dataset, tmp_path):
    out = tmp_path / "eval"
    code = main(["evaluate", "--model_name_or_path", str(tiny_checkpoint), "--dataset", str(all_beauty_dataset),
                 "--output_dir", str(out), "--tasks", "sequential", "topn", "--max_users", "4", "--num_beams", "10",
                 "--ks", "1", "5", "10"])
    assert code == 0
    results = json.loads((out / "metrics.json").read_text())
    assert results["sequential"]["num_examples"] == 4 and set(results["topn"]) >= {"model", "leak_rule", "popularity"}
    assert "random item indexing" in (out / "report.md").read_text()


def test_train_rejects_an_unknown_yaml_key(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(f"model_preset: tiny\noutput_dir: {tmp_path}\nlearning_rat: 0.001\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(config)])
    assert exit_info.value.code == 2
    assert "learning_rat" in capsys.readouterr().err


def test_evaluate_of_a_missing_model_is_a_user_error(all_beauty_dataset, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model_name_or_path", str(tmp_path / "none"), "--dataset", str(all_beauty_dataset),
              "--output_dir", str(tmp_path)])
    assert exit_info.value.code != 0 and "error:" in str(exit_info.value.code)


def test_p5_folder_is_detected(shared):
    from rdrec_hf.cli import detect_source_format

    assert detect_source_format(p5_dataset_dir("beauty")) == "p5"
