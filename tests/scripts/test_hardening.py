"""No silent wrong results: a model meeting a dataset numbered otherwise, top-N without negatives and the
`recommend` edge cases end with one clear message (real files, a real trained model, the real CLI)."""

from __future__ import annotations

import pytest

from rdrec_hf.serving.app import RecommenderPage
from rdrec_hf.cli import EXIT_USER_ERROR, main
from rdrec_hf.data import build_eval_dataset, load_amazon_reviews, load_rec_dataset, load_tokenizer
from rdrec_hf.checkpoints import load_trained_student
from rdrec_hf.paths import all_beauty_reviews
from rdrec_hf.models.tasks import Task
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
    assert main(["recommend", "--model_name_or_path", str(model_dir), "--user", "12", "--dataset", str(reseeded_dataset)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert_names_both_numberings(err)
    assert "Traceback" not in err
    assert main(["recommend", "--model_name_or_path", str(model_dir), "--dataset", str(reseeded_dataset), "--users", "all",
                 "--output", str(reseeded_dataset.parent / "recs.jsonl")]) == EXIT_USER_ERROR  # fmt: skip
    assert_names_both_numberings(capsys.readouterr().err)
    assert main(["recommend", "--model_name_or_path", str(model_dir), "--user", "12", "--dataset", str(data_dir)]) == 0


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
                                  report_to="none", max_source_length=128, task_mixture="1:1:0:1")  # fmt: skip
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
        assert exit_info.value.code == 2  # the old spelling (kept for one release) is checked as the new one
        assert "argument --num_stored_negatives: must be at least 1" in capsys.readouterr().err
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
        main(["recommend", "--model_name_or_path", str(trained_student[0]), "--history", "3", "-k", k])
    assert exit_info.value.code == 2 and "argument --k/-k" in capsys.readouterr().err


def test_recommend_edge_cases(trained_student, tmp_path, capsys):
    model_dir, data_dir = trained_student
    everything = [str(item) for item in range(1, 84)]
    assert main(["recommend", "--model_name_or_path", str(model_dir), "--history", *everything]) == 0
    assert "nothing to recommend for an anonymous user: the history holds all 83 catalog items" in capsys.readouterr().out
    for model, message in [
        (str(data_dir), "is a project dataset, not a model"),
        (str(tmp_path / "no-such-model"), "no such folder, and not a Hub id (owner/name)"),
        ("runs/no-such-model", "no such folder, and not a Hub id that could be read"),
    ]:
        assert main(["recommend", "--model_name_or_path", model, "--history", "3"]) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


# ------------------------------------------------------------------------ one message, not a traceback
ALL_COMMANDS = ["prepare", "distill", "train", "evaluate", "recommend", "push", "export", "app"]


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_every_help_lists_config_and_debug(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "--config YAML" in out
    assert "--debug" in out


@pytest.mark.parametrize("command", ["prepare", "train"])
def test_config_file_errors_are_usage_errors(command, tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("source: [1, 2\n")
    for path, message in [(broken, "while parsing a flow sequence"),  # one YAML reader: TrlParser's
                          (tmp_path / "missing.yaml", "No such file or directory")]:  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--config", str(path), "--output", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"--config {path}: " in err and message in err, err


def test_prepare_reads_a_config_file_and_the_command_line_wins(shared, tmp_path, capsys):
    config = tmp_path / "prepare.yaml"
    config.write_text(f"source: {all_beauty_reviews()}\nindexing: independent\nseed: 3\nnum_negatives: 5\n")
    assert main(["prepare", "--config", str(config), "--seed", "4", "--output", str(tmp_path / "data")]) == 0
    assert "saved (independent indexing, seed 4)" in capsys.readouterr().out
    users = load_rec_dataset(tmp_path / "data")["users"]
    assert {len(negatives) for negatives in users["test_negatives"]} == {5}
    config.write_text("sourc: x\n")
    with pytest.raises(SystemExit):
        main(["prepare", "--config", str(config), "--output", str(tmp_path / "other")])
    assert "Unknown arguments from config file: ['--sourc', 'x']" in capsys.readouterr().err


@pytest.mark.parametrize("command, keys", [
    ("recommend", "model_name_or_path: m\nhistory: ['3', '4']\nnum_beams: 7\n"),
    ("recommend", "model: m\nhistory: ['3', '4']\nnum-beams: 7\n"),  # old spellings, kept for one release
])  # fmt: skip
def test_every_command_reads_its_options_from_a_config_file(command, keys, tmp_path):
    from rdrec_hf.cli import subcommand_parser

    config = tmp_path / "config.yaml"
    config.write_text(keys)
    (options,) = subcommand_parser(command).parse_args_and_config(["--config", str(config), "--k", "5"])
    assert (options.model_name_or_path, options.history, options.num_beams, options.k) == ("m", ["3", "4"], 7, 5)


def test_debug_shows_the_traceback_for_every_kind_of_command(tmp_path):
    with pytest.raises(Exception, match="no such file or folder"):
        main(["prepare", "--source", str(tmp_path / "nope"), "--output", str(tmp_path / "x"), "--debug"])
    with pytest.raises(FileNotFoundError):
        main(["train", "--debug", "--config", str(tmp_path / "missing.yaml")])


def test_broken_catalog_and_cut_weights_name_the_file(trained_student, tmp_path, capsys):
    import json
    import shutil

    model = shutil.copytree(trained_student[0], tmp_path / "model")
    catalog = model / "item_index.json"
    original = catalog.read_text()
    payload = json.loads(original)
    for broken, message in [
        ([1, 2], "an item index is a JSON object"),
        ({**payload, "original_ids": payload["original_ids"][:1]}, "the catalog's columns differ in length"),
        ({**payload, "format_version": 2, "items": [{"item_id": "1", "original_id": "B1"}]},  # an earlier format
         "items[0] lacks ['token_ids']"),
    ]:
        catalog.write_text(json.dumps(broken))
        assert main(["recommend", "--model_name_or_path", str(model), "--history", "3"]) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert f"{catalog}: " in err and message in err and "Traceback" not in err, err
    catalog.write_text(original)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert main(["recommend", "--model_name_or_path", str(model), "--history", "3"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"{weights}: incomplete" in err and "Traceback" not in err, err


def test_distill_without_reviews_stops_before_the_teacher_loads(trained_student, tmp_path):
    from rdrec_hf.data import save_rec_dataset

    data = load_rec_dataset(trained_student[1])
    del data["reviews"]
    save_rec_dataset(data, tmp_path / "no_reviews")
    with pytest.raises(SystemExit) as exit_info:  # the teacher named does not exist: loading it would fail first
        main(["distill", "--dataset_path", str(tmp_path / "no_reviews"), "--teacher", str(tmp_path / "no-teacher"),
              "--output_dir", str(tmp_path / "out")])  # fmt: skip
    assert exit_info.value.code == "error: the dataset has no 'reviews' split (has ['users', 'items', 'metadata']): there are no reviews to distil"


def test_recipe_paths_under_shared_follow_the_variable(shared, tmp_path, monkeypatch):
    from rdrec_hf.paths import resolve_shared
    from rdrec_hf.scripts.distill import load_reviews

    elsewhere = tmp_path / "elsewhere"
    elsewhere.symlink_to(shared, target_is_directory=True)
    monkeypatch.setenv("RDREC_SHARED", str(elsewhere))
    monkeypatch.chdir(tmp_path)  # no ../shared beside this folder
    recipe_path = "../shared/data/amazon-2018/All_Beauty_5.json.gz"
    assert resolve_shared(recipe_path) == str(elsewhere / "data/amazon-2018/All_Beauty_5.json.gz")
    assert load_reviews(recipe_path)["reviews"].num_rows == 4068
    assert DataArguments(dataset="../shared/data/amazon-p5/beauty").dataset == str(elsewhere / "data/amazon-p5/beauty")
    assert resolve_shared("runs/data") == "runs/data"


# ----------------------------------------------------------------------------- prepare on bad files
def test_prepare_names_the_file_line_and_reason(shared, tmp_path, capsys):
    import gzip

    lines = gzip.open(all_beauty_reviews(), "rt", encoding="utf-8").read().splitlines()[:400]
    whole = gzip.compress(("\n".join(lines) + "\n").encode())
    cases = {
        "empty.json": (b"", "no user has 3 or more distinct items (0 users read, the input is empty)"),
        "few.json": (("\n".join(lines[:2]) + "\n").encode(), "no user has 3 or more distinct items ("),
        "cut.json.gz": (whole[: len(whole) // 2], "the gzip file is cut short or damaged"),
        "latin1.json": (b'{"reviewerID": "A", "asin": "B", "unixReviewTime": 1, "reviewText": "caf\xe9"}\n',
                        "latin1.json:1: not UTF-8 text (byte "),
        "rating.json": ((lines[0].replace('"overall": 5.0', '"overall": "five"') + "\n").encode(),
                        "rating.json:1: non-numeric rating 'five'"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert main(["prepare", "--source", str(tmp_path / name), "--output", str(tmp_path / f"out-{name}")]) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (name, err)
        if name != "few.json" and name != "empty.json":
            assert f"{tmp_path / name}:" in err


def test_prepare_needs_overwrite_for_an_existing_folder(trained_student, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    source = ["prepare", "--source", str(all_beauty_reviews()), "--indexing", "independent"]
    assert main([*source, "--output", str(other), "--overwrite"]) == EXIT_USER_ERROR
    assert "already exists and is not a project dataset" in capsys.readouterr().err
    assert (other / "keep.txt").read_text() == "mine"
    data = shutil.copytree(trained_student[1], tmp_path / "data")
    assert main([*source, "--seed", "2", "--output", str(data)]) == EXIT_USER_ERROR
    assert "already holds a dataset; pass --overwrite" in capsys.readouterr().err
    assert main([*source, "--seed", "2", "--output", str(data), "--overwrite"]) == 0
    assert "seed 2" in capsys.readouterr().out


def test_prepare_counts_non_string_review_text(shared, tmp_path, capsys):
    import gzip
    import json

    records = [json.loads(line) for line in gzip.open(all_beauty_reviews(), "rt", encoding="utf-8")]
    for record, odd in zip(records, (5, ["a", "list"], {"an": "object"})):
        record["reviewText"] = odd
    source = tmp_path / "odd.json"
    source.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    assert main(["prepare", "--source", str(source), "--output", str(tmp_path / "out")]) == 0
    assert "review_text_not_string 3" in capsys.readouterr().out
    data = load_rec_dataset(tmp_path / "out")
    assert not any(review in ("5", "['a', 'list']", "{'an': 'object'}") for review in data["reviews"]["review"])
    assert data["reviews"].num_rows == load_amazon_reviews(all_beauty_reviews())["reviews"].num_rows - 3


def _p5_folder(folder, shared, sequential: str, datamaps: str | None = None):
    import shutil

    beauty = shared / "data" / "amazon-p5" / "beauty"
    folder.mkdir()
    (folder / "sequential.txt").write_text(sequential, encoding="utf-8")
    if datamaps is None:
        shutil.copy(beauty / "datamaps.json", folder / "datamaps.json")
    else:
        (folder / "datamaps.json").write_text(datamaps, encoding="utf-8")
    return folder


def test_prepare_p5_bad_separator_datamaps_and_repeated_items(shared, tmp_path, capsys):
    beauty_lines = (shared / "data" / "amazon-p5" / "beauty" / "sequential.txt").read_text().splitlines()[:50]
    cases = {
        "tabs": (_p5_folder(tmp_path / "tabs", shared, "\n".join([*beauty_lines[:3], beauty_lines[3].replace(" ", "\t")])),
                 "sequential.txt:4: ids separated by tabs; sequential.txt separates them with single spaces"),
        "list": (_p5_folder(tmp_path / "list", shared, "\n".join(beauty_lines), datamaps='[{"id2user": {}}]'),
                 "datamaps.json: expected a JSON object with 'id2user' and 'id2item', got a list"),
    }
    for name, (folder, message) in cases.items():
        assert main(["prepare", "--source", str(folder), "--output", str(tmp_path / f"out-{name}")]) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (name, err)

    user, *items = beauty_lines[0].split()
    repeated = [user, *items[:2], items[0], *items[2:], items[1]]  # two repeats, one of them the last item
    folder = _p5_folder(tmp_path / "repeats", shared, "\n".join([" ".join(repeated), *beauty_lines[1:]]) + "\n")
    output = tmp_path / "out-repeats"
    assert main(["prepare", "--source", str(folder), "--indexing", "sequential", "--output", str(output)]) == 0
    assert "repeated_item_in_sequence 2" in capsys.readouterr().out
    users = load_rec_dataset(output)["users"]
    row = users[users["user_id"].index(user)]
    assert row["items"] == items  # first occurrences, in order: the same sequence as without the repeats
