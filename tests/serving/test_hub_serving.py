"""The Inference Endpoints handler and the exported folders: a real trained tiny student, real requests, and
the handler loaded in a `python -I` process where rdrec_hf cannot be imported."""

from __future__ import annotations

import json

import pytest
from helpers import run_without_rdrec_hf

from rdrec_hf.cli import EXIT_USER_ERROR, main
from rdrec_hf.data import load_rec_dataset
from rdrec_hf.serving.export import export_model, write_space
from rdrec_hf.serving.handler import USER_HISTORIES_FILE, EndpointHandler
from rdrec_hf.checkpoints import load_trained_student
from rdrec_hf.devices import resolve_device
from rdrec_hf.models.recommending import rank_candidates, recommend


@pytest.fixture(scope="module")
def endpoint_folder(trained_student, tmp_path_factory):
    model_dir, data_dir = trained_student
    return export_model(model_dir, tmp_path_factory.mktemp("endpoint") / "model", load_rec_dataset(data_dir))


@pytest.fixture(scope="module")
def handler(endpoint_folder):
    return EndpointHandler(str(endpoint_folder))


@pytest.fixture(scope="module")
def student(trained_student):
    return load_trained_student(str(trained_student[0]))


def test_exported_folder_holds_the_handler_code_and_histories(endpoint_folder, trained_student):
    files = {path.name for path in endpoint_folder.iterdir()}
    assert {"handler.py", USER_HISTORIES_FILE, "model.safetensors", "item_index.json", "README.md", "config.json",
            "modeling_rdrec.py", "recommending.py", "prompting.py", "tasks.py", "tokenizer.json"} <= files
    histories = json.loads((endpoint_folder / USER_HISTORIES_FILE).read_text())
    users = load_rec_dataset(trained_student[1])["users"]
    assert histories["indexing"] == "independent" and len(histories["users"]) == users.num_rows == 976
    assert histories["users"][users[0]["user_id"]] == users[0]["items"]


def test_the_handler_runs_on_the_endpoints_gpu_when_it_has_one(handler):
    # CUDA when available, else the CPU (a model on CUDA reports cuda:0, so the types are compared)
    assert handler.device.type == handler.model.device.type == resolve_device(None).type


def test_next_items_for_a_user_match_the_library(handler, student, trained_student):
    users = load_rec_dataset(trained_student[1])["users"]
    user, history = users[3]["user_id"], users[3]["items"]
    answer = handler({"inputs": {"user_id": user, "k": 5, "explain": True}})
    expected = recommend(*student, history, user_id=user, k=5, explain=True)
    assert answer["mode"] == "next_item" and answer["num_missing"] == 0 and answer["user_id"] == user
    assert [r["item_id"] for r in answer["recommendations"]] == [r.item_id for r in expected]
    assert [r["explanation"] for r in answer["recommendations"]] == [r.explanation for r in expected]
    assert all(r["explanation"] and r["original_id"].startswith("B") for r in answer["recommendations"])
    assert not set(history) & {r["item_id"] for r in answer["recommendations"]}
    json.dumps(answer)  # the endpoint returns it as JSON


def test_history_and_candidates(handler, student):
    answer = handler({"inputs": {"history": ["3", "17"], "k": 3}})
    assert [r["item_id"] for r in answer["recommendations"]] == [r.item_id for r in recommend(*student, ["3", "17"], k=3)]
    candidates = [str(item) for item in range(1, 21)]
    ranked = handler({"inputs": {"user_id": "5", "candidates": candidates, "k": 20}})
    assert ranked["mode"] == "top_n" and sorted(r["item_id"] for r in ranked["recommendations"]) == sorted(candidates)
    scores = [r["score"] for r in ranked["recommendations"]]
    assert scores == sorted(scores, reverse=True)
    assert [r["item_id"] for r in ranked["recommendations"]] == [
        r.item_id for r in rank_candidates(*student, candidates, user_id="5")
    ]


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"history": ["3"]}, "the request must be"),
        ({"inputs": ["3"]}, "the request must be"),
        ({"inputs": {}}, 'give "user_id" or "history"'),
        ({"inputs": {"user": "3"}}, "unknown request fields ['user']"),
        ({"inputs": {"user_id": "no-such-user"}}, "unknown user id 'no-such-user'"),
        ({"inputs": {"user_id": ["1"]}}, '"user_id" must be a string'),
        ({"inputs": {"history": []}}, "an empty history"),
        ({"inputs": {"history": "3 17"}}, '"history" must be a list'),
        ({"inputs": {"history": ["3", "99999"]}}, "history items not in the model's catalog: ['99999']"),
        ({"inputs": {"history": ["3"], "k": 0}}, '"k" must be an integer from 1 to 83'),
        ({"inputs": {"history": ["3"], "k": 84}}, '"k" must be an integer from 1 to 83'),
        ({"inputs": {"history": ["3"], "k": "ten"}}, '"k" must be an integer'),
        ({"inputs": {"history": ["3"], "k": True}}, '"k" must be an integer'),
        ({"inputs": {"history": ["3"], "explain": "yes"}}, '"explain" must be true or false'),
        ({"inputs": {"candidates": []}}, "an empty candidate list"),
        ({"inputs": {"candidates": ["1", "1"]}}, "appear more than once: ['1']"),
        ({"inputs": {"candidates": ["1", "0"]}}, "candidate list items not in the model's catalog: ['0']"),
    ],
)
def test_bad_requests_get_a_json_message(handler, request_body, message):
    answer = handler(request_body)
    assert set(answer) == {"error"} and message in answer["error"], answer


def test_user_id_without_histories_file_and_model_without_catalog(trained_student, tmp_path):
    folder = export_model(trained_student[0], tmp_path / "bare")  # no dataset: no user_histories.json
    handler = EndpointHandler(str(folder))
    assert "has no user_histories.json" in handler({"inputs": {"user_id": "3"}})["error"]
    assert handler({"inputs": {"user_id": "3", "history": ["5"], "k": 2}})["recommendations"]
    handler.model.set_item_index(None)
    assert "no item catalog" in handler({"inputs": {"history": ["5"]}})["error"]


def test_explanations_of_a_model_that_never_trained_them_are_an_error(endpoint_folder):
    """The Hub copy of the code reads `config.trained_tasks` too: a ranking-only checkpoint answers `explain` with
    an error, never with an untrained decoder's tokens, and still recommends."""
    handler = EndpointHandler(str(endpoint_folder))
    handler.model.config.trained_tasks = ["sequential", "topn"]
    answer = handler({"inputs": {"history": ["5", "3"], "k": 3, "explain": True}})
    assert set(answer) == {"error"} and "not trained on the explanation task" in answer["error"]
    assert len(handler({"inputs": {"history": ["5", "3"], "k": 3}})["recommendations"]) == 3


HANDLER_SCRIPT = """
sys.path.insert(0, sys.argv[2])  # as Inference Endpoints imports the repository's handler.py
from handler import EndpointHandler
handler = EndpointHandler(sys.argv[2])
answers = [handler(request) for request in json.loads(sys.argv[3])]
print(json.dumps({"module": type(handler.model).__module__, "answers": answers}))
"""


def test_handler_runs_with_trust_remote_code_alone(endpoint_folder, handler, tmp_path):
    requests = [{"inputs": {"user_id": "7", "k": 4, "explain": True}}, {"inputs": {"history": ["0"]}}]
    report = run_without_rdrec_hf(HANDLER_SCRIPT, [str(endpoint_folder), json.dumps(requests)], tmp_path)
    assert report["module"].startswith("transformers_modules.")
    assert report["answers"] == [handler(request) for request in requests]
    assert "not in the model's catalog" in report["answers"][1]["error"]


def test_export_commands(trained_student, tmp_path, capsys):
    model_dir, data_dir = trained_student
    output = tmp_path / "out"
    assert main(["export", "model", str(model_dir), "--output", str(output), "--dataset", str(data_dir)]) == 0
    assert (output / "handler.py").is_file() and (output / USER_HISTORIES_FILE).is_file()
    assert main(["export", "model", str(model_dir), "--output", str(output)]) == EXIT_USER_ERROR
    assert "not empty" in capsys.readouterr().err
    assert main(["export", "model", str(data_dir), "--output", str(tmp_path / "x")]) == EXIT_USER_ERROR
    assert "is a project dataset, not a model" in capsys.readouterr().err
    space = write_space(tmp_path / "space", "someone/rdrec-beauty", "someone/beauty-rationales")
    card = (space / "README.md").read_text()
    assert "sdk: gradio" in card and "app_file: app.py" in card and "- someone/rdrec-beauty" in card
    assert (space / "requirements.txt").read_text().startswith("rdrec-hf[app]==")
    assert "someone/rdrec-beauty" in (space / "app.py").read_text()


def test_the_handler_restates_the_librarys_default_k():
    """handler.py is copied alone into exported folders, so it restates the default instead of importing it."""
    from rdrec_hf.models.item_decoding import DEFAULT_TOP_K
    from rdrec_hf.serving.handler import DEFAULT_K

    assert DEFAULT_K == DEFAULT_TOP_K
