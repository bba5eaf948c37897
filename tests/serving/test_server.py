"""`rdrec-hf serve` (LitServe): a real server in its own process on 127.0.0.1, a trained tiny student, real
concurrent requests; its answers are the in-process `EndpointHandler`'s, and bad requests are the client's (4xx)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from rdrec_hf.cli import EXIT_USER_ERROR, main
from rdrec_hf.data import load_rec_dataset
from rdrec_hf.serving.export import export_model
from rdrec_hf.serving.handler import EndpointHandler
from rdrec_hf.serving.server import post_json, serving

MAX_BODY_BYTES = 20_000


@pytest.fixture(scope="module")
def endpoint_folder(trained_student, tmp_path_factory):
    model_dir, data_dir = trained_student
    return export_model(model_dir, tmp_path_factory.mktemp("served") / "model", load_rec_dataset(data_dir))


@pytest.fixture(scope="module")
def server(endpoint_folder, tmp_path_factory):
    """The base URL of the exported student served with batching (up to 8 requests, 50 ms to fill a batch)."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with serving(endpoint_folder, "--device", "cpu", "--max_batch_size", "8", "--batch_timeout", "0.05",
                 "--max_body_bytes", str(MAX_BODY_BYTES), log=log) as url:  # fmt: skip
        yield url


@pytest.fixture(scope="module")
def handler(endpoint_folder):
    return EndpointHandler(str(endpoint_folder))


def same_answer(served: dict, expected: dict) -> bool:
    """Same items in the same order with the same explanations; scores equal up to float rounding of a batched
    forward (padding to the longest prompt of the batch)."""
    if set(expected) == {"error"}:
        return served == expected
    items = [[(r["item_id"], r["original_id"], r["explanation"]) for r in answer["recommendations"]]
             for answer in (served, expected)]  # fmt: skip
    scores = zip(*([r["score"] for r in answer["recommendations"]] for answer in (served, expected)))
    return (items[0] == items[1] and all(served[key] == expected[key] for key in ("user_id", "mode", "num_missing"))
            and all(a == pytest.approx(b, rel=1e-4, abs=1e-4) for a, b in scores))  # fmt: skip


def test_concurrent_requests_are_answered_as_the_handler_answers_them(server, handler, trained_student):
    users = load_rec_dataset(trained_student[1])["users"]
    requests = [{"inputs": {"user_id": users[i]["user_id"], "k": 5}} for i in range(16)]
    requests += [{"inputs": {"history": users[i]["items"][:-1], "k": 3}} for i in range(16, 24)]  # another k
    requests += [{"inputs": {"user_id": users[30]["user_id"], "k": 4, "explain": True}},
                 {"inputs": {"user_id": "5", "candidates": [str(item) for item in range(1, 21)], "k": 6}},
                 {"inputs": {"history": ["3", "no-such-item"]}}]  # one bad request in the same batches
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda request: post_json(server + "/predict", request), requests))
    expected = [handler(request) for request in requests]
    statuses = [status for status, _ in answers]
    assert statuses == [200] * (len(requests) - 1) + [400], answers
    assert [same_answer(served, wanted) for (_, served), wanted in zip(answers, expected)] == [True] * len(requests)
    assert answers[24][1]["recommendations"][0]["explanation"] and answers[25][1]["mode"] == "top_n"


def test_one_batch_of_mixed_requests_is_the_handlers_answers(endpoint_folder, handler, trained_student):
    """The batch path itself, in this process: LitServe hands `predict` whatever arrived together."""
    from rdrec_hf.serving.server import RecommenderAPI, RequestFailure

    api = RecommenderAPI(str(endpoint_folder), device="cpu", max_batch_size=16)
    api.setup("cpu")
    users = load_rec_dataset(trained_student[1])["users"]
    requests = [{"inputs": {"user_id": users[i]["user_id"], "k": 5 if i % 3 else 2}} for i in range(40, 52)]
    requests += [{"inputs": {"history": ["0"]}}, {"inputs": {"user_id": "7", "candidates": ["4", "2", "9"]}},
                 {"inputs": {"history": users[3]["items"], "k": 3, "explain": True}}, {"inputs": {"k": 3}}]
    answers = api.predict(api.batch([api.decode_request(request) for request in requests]))
    assert [isinstance(answer, RequestFailure) for answer in answers] == [False] * 12 + [True, False, False, True]
    as_json = [{"error": a.error} if isinstance(a, RequestFailure) else a for a in answers]
    expected = [handler(request) for request in requests]
    assert [same_answer(served, wanted) for served, wanted in zip(as_json, expected)] == [True] * len(requests)
    single = api.predict(api.decode_request(requests[0]))  # max_batch_size 1: LitServe passes one request
    assert same_answer(single, expected[0])


BAD_REQUESTS = [
    (b"", 400, "an empty request body"),
    (b"   ", 400, "an empty request body"),
    (b'{"inputs": {"history": ["3"]', 400, "the request body is not JSON"),
    (b"\xff\xfe", 400, "the request body is not JSON"),
    (b'["3"]', 400, "the request must be"),
    (b'{"history": ["3"]}', 400, "the request must be"),
    (b'{"inputs": {"user": "3"}}', 400, "unknown request fields ['user']"),
    (b'{"inputs": {"user_id": ["1"]}}', 400, '"user_id" must be a string'),
    (b'{"inputs": {"history": "3 17"}}', 400, '"history" must be a list'),
    (b'{"inputs": {"history": ["3"], "k": 0}}', 400, '"k" must be an integer from 1 to 83'),
    (b'{"inputs": {"history": ["3"], "k": 84}}', 400, '"k" must be an integer from 1 to 83'),
    (b'{"inputs": {"history": ["3"], "k": "ten"}}', 400, '"k" must be an integer'),
    (b'{"inputs": {"history": ["3"], "explain": "yes"}}', 400, '"explain" must be true or false'),
    (b'{"inputs": {"user_id": "no-such-user"}}', 400, "unknown user id 'no-such-user'"),
    (b'{"inputs": {"history": ["3", "99999"]}}', 400, "history items not in the model's catalog: ['99999']"),
    (b'{"inputs": {"history": []}}', 400, "an empty history"),
    (b'{"inputs": {"candidates": ["1", "1"]}}', 400, "appear more than once"),
    (b'{"inputs": {"candidates": ["1", "0"]}}', 400, "candidate list items not in the model's catalog"),
]


def test_bad_requests_get_4xx_and_the_server_goes_on(server, handler):
    for body, status, message in BAD_REQUESTS:
        code, answer = post_json(server + "/predict", body)
        assert (code, set(answer)) == (status, {"error"}) and message in answer["error"], (body, code, answer)
    assert post_json(server + "/predict", {"inputs": {"history": ["3", "17"], "k": 2}})[0] == 200


def test_an_oversized_body_gets_413(server):
    history = ["3"] * (MAX_BODY_BYTES // 5)
    code, answer = post_json(server + "/predict", {"inputs": {"history": history}})
    assert code == 413 and f"over the limit of {MAX_BODY_BYTES:,} bytes" in answer["error"]
    assert post_json(server + "/predict", {"inputs": {"history": ["3"], "k": 1}})[0] == 200


def test_health_and_other_paths(server):
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(server + "/health", timeout=10) as response:
        assert response.status == 200 and response.read() == b"ok"
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(server + "/recommend", timeout=10)
    assert error.value.code == 404 and json.loads(error.value.read()) == {"error": "Not Found"}


def test_serve_refuses_bad_options(tmp_path, capsys):
    assert main(["serve", "--model_name_or_path", str(tmp_path / "missing")]) == EXIT_USER_ERROR
    assert "no such folder" in capsys.readouterr().err
    for bad in (["--port", "80"], ["--max_batch_size", "0"], ["--host", "example.org"]):
        with pytest.raises(SystemExit) as exit_:
            main(["serve", "--model_name_or_path", str(tmp_path), *bad])
        assert exit_.value.code == 2


def test_serve_help_lists_its_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "--config YAML" in out and "--debug" in out
    assert all(option in out for option in ("--max_batch_size", "--batch_timeout", "--workers_per_device",
                                            "--max_body_bytes", "--device", "--dtype"))  # fmt: skip


@pytest.mark.slow
def test_the_serving_benchmark_runs_end_to_end(endpoint_folder, trained_student, tmp_path):
    """benchmarks/bench_serving.py on the tiny student: two servers, every figure, the handler check (~40 s)."""
    from helpers import load_script

    bench = load_script("benchmarks/bench_serving.py")
    output = tmp_path / "serving.json"
    args = bench.make_parser().parse_args(["--model_name_or_path", str(endpoint_folder), "--dataset",
                                           str(trained_student[1]), "--requests", "24", "--concurrency", "1", "8",
                                           "--check", "24", "--device", "cpu", "--output", str(output)])  # fmt: skip
    report = bench.main(args)
    assert json.loads(output.read_text()) == report
    assert set(report["concurrency"]) == {"1", "8"} and report["requests"] == 24
    for by_mode in report["concurrency"].values():
        assert set(by_mode) == {"batched", "unbatched"}
        assert all(figures["errors"] == 0 and figures["req_per_s"] > 0 for figures in by_mode.values())
    assert report["identical_to_handler"]["checked"] == report["identical_to_handler"]["equal"] == 24


# ------------------------------------------------------------------ batch recommendation over processes (accelerate)
class OneOfProcesses:
    """What `write_recommendations_sharded` uses of `accelerate.PartialState`, for process ``index`` of ``num``
    run one after the other in this process (the main one last: its barriers would have waited for the rest)."""

    from accelerate import PartialState

    split_between_processes = PartialState.split_between_processes  # accelerate's own split

    def __init__(self, index: int, num: int):
        self.process_index, self.num_processes, self.is_main_process = index, num, index == 0

    def wait_for_everyone(self):
        pass


@pytest.fixture(scope="module")
def student_and_users(trained_student):
    from rdrec_hf.checkpoints import load_trained_student

    users = load_rec_dataset(trained_student[1])["users"]
    return (*load_trained_student(str(trained_student[0]), "cpu"), list(zip(users["user_id"], users["items"])))


def test_sharded_batch_recommendation_merges_into_the_one_process_file(student_and_users, tmp_path, one_thread):
    from rdrec_hf.serving.batch import shard_path, write_recommendations, write_recommendations_sharded

    model, tokenizer, users = student_and_users
    options = dict(k=4, batch_size=100, progress=False)
    reference = tmp_path / "one.jsonl"
    write_recommendations(model, tokenizer, users, reference, **options)
    output = tmp_path / "three.jsonl"
    for index in (2, 1, 0):
        write_recommendations_sharded(model, tokenizer, users, output, state=OneOfProcesses(index, 3), **options)
    assert output.read_bytes() == reference.read_bytes()  # the same lines in the same order: the same batches
    assert not list(tmp_path.glob("*.shard-*"))
    # Killed while ranking: process 1 had written 30 lines and half of the next, process 0 nothing. Rerun: same file.
    again = tmp_path / "again.jsonl"
    write_recommendations_sharded(model, tokenizer, users, again, state=OneOfProcesses(1, 2), **options)
    lines = shard_path(again, 1).read_text().splitlines(keepends=True)
    shard_path(again, 1).write_text("".join(lines[:30]) + lines[30][:20])
    for index in (1, 0):
        summary = write_recommendations_sharded(model, tokenizer, users, again, state=OneOfProcesses(index, 2),
                                                **options)  # fmt: skip
    assert again.read_bytes() == reference.read_bytes() and summary.num_users == len(users) == summary.num_new
    # Killed while merging (500 lines and half of the next in the file): the rest is ranked and appended.
    merged = reference.read_text().splitlines(keepends=True)
    again.write_text("".join(merged[:500]) + merged[500][:10])
    for index in (1, 0):
        summary = write_recommendations_sharded(model, tokenizer, users, again, state=OneOfProcesses(index, 2),
                                                **options)  # fmt: skip
    resumed = [json.loads(line) for line in again.read_text().splitlines()]
    assert [line["user_id"] for line in resumed] == [user for user, _ in users]
    assert (summary.num_users, summary.num_resumed, summary.num_new) == (len(users), 500, len(users) - 500)
    for line, expected in zip(resumed, map(json.loads, merged)):
        assert line["item_ids"] == expected["item_ids"] or line["scores"] == pytest.approx(expected["scores"], abs=1e-4)


@pytest.mark.slow
def test_accelerate_launch_splits_users_between_two_cpu_processes(trained_student, tmp_path):
    """`accelerate launch --num_processes 2 -m rdrec_hf.cli recommend --users all` (gloo on CPUs: the multi_cpu config)
    writes the one-process file, and resumes a killed run from its shards (~40 s)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    model_dir, data_dir = trained_student
    options = ["--model_name_or_path", str(model_dir), "--dataset", str(data_dir), "--users", "all", "-k", "5",
               "--batch_size", "64", "--device", "cpu"]  # fmt: skip
    assert main(["recommend", *options, "--output", str(tmp_path / "one.jsonl")]) == 0
    launch = [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file",
              "recipes/accelerate_configs/multi_cpu.yaml", "--num_processes", "2", "-m", "rdrec_hf.cli", "recommend",
              *options]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launch, "--output", str(tmp_path / "two.jsonl")], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    reference = (tmp_path / "one.jsonl").read_bytes()
    assert (tmp_path / "two.jsonl").read_bytes() == reference
    assert "976 users in the file (0 resumed, 976 new" in done.stdout and not list(tmp_path.glob("*.shard-*"))
    # Killed while ranking: process 1 (users 512 on: the batches 8 to 15 of 64) had written 30 lines and a half.
    lines = reference.decode().splitlines(keepends=True)
    (tmp_path / "three.jsonl.shard-1").write_text("".join(lines[512:542]) + lines[542][:20])
    done = subprocess.run([*launch, "--output", str(tmp_path / "three.jsonl")], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0 and (tmp_path / "three.jsonl").read_bytes() == reference, done.stderr[-3000:]
