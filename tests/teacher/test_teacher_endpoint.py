"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1: answers in several formats,
500s, timeouts, bad bodies, retries with backoff, the concurrency limit, and the counted statuses."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from datasets import Dataset

from rdrec_hf.teacher import DistillationConfig, RationaleGenerator, read_provenance

SLOW_SECONDS, TIMEOUT_SECONDS = 1.0, 0.25


class ChatServer(ThreadingHTTPServer):
    """``POST /v1/chat/completions``; what it answers depends on a keyword in the review."""

    daemon_threads = True

    def __init__(self, delay: float = 0.0):
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.delay = delay
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.attempts: Counter = Counter()  # prompt -> requests received
        self.in_flight = self.max_in_flight = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class ChatHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def _reply(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def do_POST(self):
        server: ChatServer = self.server
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = payload["messages"][-1]["content"]
        with server.lock:
            server.requests.append({**payload, "path": self.path, "auth": self.headers.get("Authorization")})
            server.attempts[prompt] += 1
            attempt = server.attempts[prompt]
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            time.sleep(server.delay)
            status, body = self._answer(prompt, attempt)
        finally:
            # Out of flight before the reply leaves: once the client has it, it may send the next request.
            with server.lock:
                server.in_flight -= 1
        self._reply(status, body)

    def _answer(self, prompt: str, attempt: int) -> tuple[int, bytes]:
        asks_user = "prefer?" in prompt
        if "BROKEN" in prompt or ("FLAKY" in prompt and attempt == 1):
            return 500, b'{"error": "overloaded"}'
        if "BADREQUEST" in prompt:
            return 400, b'{"error": "bad request"}'
        if "NOTJSON" in prompt:
            return 200, b"<html>proxy error</html>"
        if "SLOW" in prompt:
            time.sleep(SLOW_SECONDS)
        if "GARBAGE" in prompt:
            text = "@@@ ### 123 !!!"
        elif "SILENT" in prompt:
            text = ""
        elif asks_user:
            text = "Sure! Based on the review, the user prefers gentle products for dry skin."
        else:
            text = "**Item attributes:** a light scent and a thick texture"
        body = {"choices": [{"message": {"role": "assistant", "content": text}}], "usage": {"completion_tokens": 7}}
        return 200, json.dumps(body).encode()


@pytest.fixture
def server():
    chat_server = ChatServer()
    thread = threading.Thread(target=chat_server.serve_forever, daemon=True)
    thread.start()
    yield chat_server
    chat_server.shutdown()
    chat_server.server_close()


def endpoint_config(base_url: str, output_dir, **overrides) -> DistillationConfig:
    settings = {"batch_size": 4, "concurrency": 3, "request_timeout": TIMEOUT_SECONDS, "max_retries": 2,
                "retry_backoff": 0.01, "show_progress": False, **overrides}
    return DistillationConfig(backend="openai", base_url=base_url, endpoint_model="tiny-chat",
                              output_dir=str(output_dir), **settings)


REVIEWS = {
    "plain": "Lovely cream, my dry skin drinks it up.",
    "flaky": "FLAKY server but a fine soap.",
    "broken": "BROKEN server, never answers.",
    "slow": "SLOW server, always too late.",
    "garbage": "GARBAGE answer from the teacher.",
    "silent": "SILENT teacher answers nothing.",
    "not_json": "NOTJSON body from a proxy.",
    "bad_request": "BADREQUEST rejected by the server.",
    "empty": "   ",
    "long": "Plain words about a rich lotion. " * 30,
}


def test_endpoint_answers_errors_and_timeouts_end_as_counted_statuses(server, tmp_path, monkeypatch):
    monkeypatch.setenv("RDREC_TEST_KEY", "secret-token")
    dataset = Dataset.from_dict({"user_id": [str(i) for i in range(len(REVIEWS))],
                                 "item_id": ["1"] * len(REVIEWS), "review": list(REVIEWS.values())})
    config = endpoint_config(server.base_url, tmp_path, max_review_tokens=20, api_key_env="RDREC_TEST_KEY")
    generator = RationaleGenerator(config=config)
    result = generator.generate(dataset, source="endpoint-test")
    rows = dict(zip(REVIEWS, result))

    for name in ("plain", "flaky", "long"):  # chatty user answer and labelled item answer, both repaired
        assert rows[name]["rationale_status"] == "repaired"
        assert rows[name]["user_preference"] == "The user prefers gentle products for dry skin."
        assert rows[name]["item_attribute"] == "The item's attributes are a light scent and a thick texture."
    for name in ("broken", "slow", "garbage", "silent", "not_json", "bad_request", "empty"):
        row = rows[name]
        assert (row["user_preference"], row["item_attribute"], row["rationale_status"]) == (None, None, "failed")

    summary = generator.last_summary
    assert summary.statuses == Counter({"failed": 7, "repaired": 3})
    assert summary.failures == Counter({
        "endpoint_http_500": 2, "endpoint_timeout": 2, "no_answer": 2, "empty_output": 2,
        "endpoint_bad_response": 2, "endpoint_http_400": 2, "empty_review": 2,
    })
    assert summary.empty_reviews == 1 and summary.truncated_reviews == 1
    assert summary.session_new_tokens == 7 * 2 * 5  # five reviews answered with a 200 carrying usage

    attempts = {name: count for prompt, count in server.attempts.items()
                for name, review in REVIEWS.items() if review[:12] in prompt}
    assert attempts["broken"] == 3 and attempts["slow"] == 3  # 1 try + max_retries=2
    assert attempts["flaky"] == 2 and attempts["bad_request"] == 1 and attempts["plain"] == 1  # no retry on 400
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["model"] == "tiny-chat"
    assert sent["temperature"] == 0.0 and sent["max_tokens"] == config.max_new_tokens
    assert sent["auth"] == "Bearer secret-token"
    assert all('Start your answer with "The' in request["messages"][-1]["content"] for request in server.requests)
    prompts = [request["messages"][-1]["content"] for request in server.requests]
    long_review = next(prompt for prompt in prompts if "rich lotion" in prompt).split("Review: ")[1].split("\n\n")[0]
    assert len(long_review.split()) == 20  # max_review_tokens words kept of 180
    assert read_provenance(result)["backend"] == "openai"


def test_requests_in_flight_never_exceed_the_concurrency_limit(tmp_path):
    slow_server = ChatServer(delay=0.2)
    threading.Thread(target=slow_server.serve_forever, daemon=True).start()
    try:
        dataset = Dataset.from_dict({"user_id": ["1"] * 6, "item_id": ["1"] * 6,
                                     "review": [f"Review {i} of a good soap." for i in range(6)]})
        config = endpoint_config(slow_server.base_url, tmp_path, batch_size=6, concurrency=2, request_timeout=10)
        result = RationaleGenerator(config=config).generate(dataset)
    finally:
        slow_server.shutdown()
        slow_server.server_close()
    assert len(slow_server.requests) == 12 and set(result["rationale_status"]) == {"repaired"}
    assert slow_server.max_in_flight == 2


def test_unreachable_endpoint_fails_rows_and_the_run_finishes(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dataset = Dataset.from_dict({"user_id": ["1", "2"], "item_id": ["1", "1"], "review": ["Nice.", "Bad."]})
    generator = RationaleGenerator(config=endpoint_config(f"http://127.0.0.1:{port}/v1", tmp_path, max_retries=1))
    result = generator.generate(dataset)
    assert result["rationale_status"] == ["failed", "failed"]
    assert generator.last_summary.failures == Counter({"endpoint_connection": 4})
