"""A recommendation server on LitServe (``rdrec-hf serve``): the Inference Endpoints request format over HTTP, with
dynamic batching of concurrent next-item requests.

``POST /predict`` takes and returns exactly what `EndpointHandler` does (``{"inputs": {...}}`` -> ``{"user_id",
"mode", "recommendations", "num_missing"}``), read by the same `handler.parse_request` and answered by the same
`handler.response_for`; ``GET /health`` says ``ok`` once the model is loaded (503 before).

Batching: LitServe collects up to ``max_batch_size`` requests that arrive within ``batch_timeout`` seconds;
the next-item requests among them that ask for the same ``k`` are ranked in one forward
(`rank_next_items`: exact one-step ranking for one-token ids, the trie search otherwise), as the handler ranks
one. Explanations are generated per request, each from the handler's seed: seeded sampling draws depend on the
batch a text is drawn in, so explanations batched across clients would change with whoever else was asking.
Top-N requests (``candidates``) are ranked one by one, exactly as the handler does.

Errors are the client's when the request is: a malformed or empty body, a body that is not one JSON object,
wrong types, unknown fields, ``k`` out of range, unknown users or items give HTTP 400 (413 for a body over
``max_body_bytes``), always as ``{"error": "<why>"}``; one bad request in a batch fails only itself.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import litserve as ls
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from ..checkpoints import load_trained_student
from ..devices import resolve_device
from ..models.recommending import (check_items, check_trained, rank_candidates, rank_next_items,
                                   recommendations_of)  # fmt: skip
from ..models.item_decoding import DEFAULT_NUM_BEAMS
from ..models.tasks import Task
from .handler import parse_request, read_user_histories, response_for

logger = logging.getLogger(__name__)

API_PATH = "/predict"
HEALTH_PATH = "/health"
DEFAULT_MAX_BODY_BYTES = 1_000_000  # 1 MB: a request is a history and a few options, a few kB at most
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_BATCH_TIMEOUT = 0.01  # seconds LitServe waits for a batch to fill
DEFAULT_REQUEST_TIMEOUT = 60.0  # seconds a request may wait in the queue before a 504
BAD_REQUEST = 400


@dataclass
class RequestFailure:
    """A request answered with an error instead of recommendations (``status``: its HTTP status)."""

    error: str
    status: int = BAD_REQUEST


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class RequestBodyGuard:
    """ASGI middleware in front of ``POST /predict``: a body over ``max_body_bytes`` gets 413 (read no further),
    an empty body or one that is not JSON gets 400, before LitServe parses it (which would answer 500)."""

    def __init__(self, app, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, path: str = API_PATH):
        self.app, self.max_body_bytes, self.path = app, max_body_bytes, path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        too_large = error_response(413, f"the request body is over the limit of {self.max_body_bytes:,} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await too_large(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = None
        if not body.strip():
            problem = 'an empty request body: send {"inputs": {...}} as JSON'
        else:
            try:
                json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                problem = f"the request body is not JSON ({error})"
        if problem is not None:
            await error_response(BAD_REQUEST, problem)(scope, receive, send)
            return
        # LitServe reads the body as JSON whatever the client's content type says (a form would be parsed as one)
        headers = [(key, value) for key, value in scope["headers"] if key != b"content-type"]
        scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def http_error_as_json(request: Request, error: StarletteHTTPException) -> JSONResponse:
    """Every HTTP error of the server (404, 405, LitServe's 504 and 500) as ``{"error": ...}``."""
    return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)


class RecommenderAPI(ls.LitAPI):
    """The LitAPI of a trained student: ``setup`` loads it on the worker's device, ``decode_request`` parses and
    checks one request (`parse_request`, the catalog), ``predict`` answers a batch of them."""

    def __init__(self, model_name_or_path: str, dataset: str | None = None, device: str | None = None,
                 dtype: str | None = None, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 batch_timeout: float = DEFAULT_BATCH_TIMEOUT):  # fmt: skip
        with warnings.catch_warnings():  # "batch and unbatch implemented but max_batch_size not set": on purpose
            warnings.simplefilter("ignore", UserWarning)
            super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path=API_PATH)
        self.model_name_or_path, self.dataset, self.device_name, self.dtype = model_name_or_path, dataset, device, dtype

    # ------------------------------------------------------------------------------------------------- setup
    def setup(self, device):
        """Load the student on ``--device`` when it names one (cuda:N), else on LitServe's device for this worker."""
        chosen = self.device_name if self.device_name not in (None, "auto", "cuda") else device
        self.model, self.tokenizer = load_trained_student(self.model_name_or_path, resolve_device(chosen), self.dtype)
        self.model.eval()
        self.user_histories = load_user_histories(self.model, self.model_name_or_path, self.dataset)
        logger.info("serving %s on %s (%s users known)", self.model_name_or_path, self.model.device,
                    "no" if self.user_histories is None else f"{len(self.user_histories):,}")  # fmt: skip

    # ------------------------------------------------------------------------------------------- requests
    def decode_request(self, request):
        """The parsed request (`parse_request`), its items checked against the catalog and its explanations
        against what the model trained, or a `RequestFailure` (never an exception: that would fail the batch)."""
        try:
            parsed = parse_request(request, self.model.item_index, self.user_histories)
            if parsed["candidates"] is None:
                check_items(self.model.item_index, parsed["history"])
            if parsed["explain"]:
                check_trained(self.model, Task.EXPLANATION)
            return parsed
        except ValueError as error:
            return RequestFailure(str(error))

    def batch(self, inputs):
        return list(inputs)

    def predict(self, requests):
        """The answers (response dicts or `RequestFailure`s) to a batch of decoded requests, in order; a single
        request when batching is off (``max_batch_size`` 1)."""
        if not isinstance(requests, list):
            return self.answer([requests])[0]
        return self.answer(requests)

    def unbatch(self, outputs):
        return list(outputs)

    def encode_response(self, output):
        if isinstance(output, RequestFailure):
            return error_response(output.status, output.error)
        return output

    # -------------------------------------------------------------------------------------------- answers
    def answer(self, requests: list) -> list:
        """Answer decoded requests: next-item requests with the same ``k`` in one ranking forward, then each
        request's explanations and each top-N request on its own."""
        answers: list = list(requests)  # the RequestFailures stay
        next_item = [i for i, request in enumerate(requests)
                     if not isinstance(request, RequestFailure) and request["candidates"] is None]  # fmt: skip
        for k in sorted({requests[i]["k"] for i in next_item}):
            group = [i for i in next_item if requests[i]["k"] == k]
            try:
                ranked = self.rank_group([requests[i] for i in group])
            except ValueError:  # something the checks let through: rank each alone, so that only it fails
                ranked = [self.rank_alone(requests[i]) for i in group]
            for i, items in zip(group, ranked):
                answers[i] = items if isinstance(items, RequestFailure) else self.finish(requests[i], items)
        for i, request in enumerate(requests):
            if not isinstance(request, RequestFailure) and request["candidates"] is not None:
                answers[i] = self.finish(request, None)
        return answers

    def rank_alone(self, request: dict):
        try:
            return self.rank_group([request])[0]
        except ValueError as error:
            return RequestFailure(str(error))

    def rank_group(self, requests: list) -> list[list[tuple[str, float]]]:
        """``(item, score)`` best first for next-item requests of one ``k``, in one `rank_next_items` call (the
        arguments of `recommend`, the handler's path)."""
        output = rank_next_items(self.model, self.tokenizer, [request["history"] for request in requests],
                                 [request["user_id"] for request in requests], requests[0]["k"],
                                 DEFAULT_NUM_BEAMS)  # fmt: skip
        return [[(item, float(score)) for item, score in zip(items, scores)]
                for items, scores in zip(output.item_ids, output.scores)]  # fmt: skip

    def finish(self, request: dict, ranked: list[tuple[str, float]] | None):
        """The response to one request (the handler's `response_for`) from its ranked items (None: a top-N
        request, ranked here); its explanations generated when asked for."""
        try:
            if ranked is None:
                recommendations = rank_candidates(self.model, self.tokenizer, request["candidates"],
                                                  user_id=request["user_id"], k=request["k"],
                                                  explain=request["explain"])  # fmt: skip
            else:
                recommendations = recommendations_of(self.model, self.tokenizer, request["user_id"],
                                                     [item for item, _ in ranked], [score for _, score in ranked],
                                                     request["explain"])  # fmt: skip
        except ValueError as error:
            return RequestFailure(str(error))
        return response_for(request, recommendations)


def load_user_histories(model, model_name_or_path: str, dataset: str | None) -> dict[str, list[str]] | None:
    """The users a request may name by ``user_id`` alone: the users of ``dataset`` (its numbering checked
    against the model's), else the model folder's ``user_histories.json`` (an exported folder), else None."""
    if dataset is not None:
        from ..data import check_numbering
        from ..data.loading import load_named_or_saved

        data = load_named_or_saved(dataset)
        check_numbering(model.item_index, data, f"model {model_name_or_path}", f"dataset {dataset}")
        return dict(zip(data["users"]["user_id"], data["users"]["items"]))
    return read_user_histories(model_name_or_path)


def build_server(model_name_or_path: str, dataset: str | None = None, device: str | None = None,
                 dtype: str | None = None, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 batch_timeout: float = DEFAULT_BATCH_TIMEOUT, workers_per_device: int = 1,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT) -> ls.LitServer:  # fmt: skip
    """The `ls.LitServer` of a student (``server.run(host=..., port=...)`` serves it): `RecommenderAPI` on
    ``device`` (None: CUDA when available), ``workers_per_device`` model copies, errors as ``{"error": ...}``."""
    accelerator = resolve_device(device).type
    api = RecommenderAPI(model_name_or_path, dataset, device, dtype, max_batch_size, batch_timeout)
    server = ls.LitServer(
        api, accelerator=accelerator, devices=1, workers_per_device=workers_per_device, timeout=request_timeout,
        healthcheck_path=HEALTH_PATH, middlewares=[(RequestBodyGuard, {"max_body_bytes": max_body_bytes})],
        model_metadata={"model": model_name_or_path, "max_batch_size": max_batch_size,
                        "batch_timeout": batch_timeout, "max_body_bytes": max_body_bytes},
    )  # fmt: skip
    server.app.add_exception_handler(StarletteHTTPException, http_error_as_json)
    return server


# ------------------------------------------------------------------------------------- a server of one's own
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (from the system's ephemeral range, so LitServe's 1024..65535)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def post_json(url: str, body: bytes | dict, timeout: float = 60.0) -> tuple[int, dict]:
    """``(HTTP status, JSON answer)`` of a POST of ``body`` (a dict is sent as JSON, bytes as they are)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@contextmanager
def serving(model_name_or_path: str, *options: str, host: str = "127.0.0.1", port: int | None = None,
            startup_timeout: float = 300.0, log: Path | None = None) -> Iterator[str]:  # fmt: skip
    """Run ``rdrec-hf serve`` (with ``options``, e.g. ``"--max_batch_size", "1"``) in a process of its own on
    ``host`` and a free port; yields its base URL once ``GET /health`` answers 200, and stops it (SIGTERM: its
    graceful shutdown, then its whole process group) on leaving. Output goes to ``log`` (default: discarded)."""
    port = free_port(host) if port is None else port
    command = [sys.executable, "-m", "rdrec_hf.cli", "serve", "--model_name_or_path", str(model_name_or_path),
               "--host", host, "--port", str(port), *options]  # fmt: skip
    url = f"http://{host}:{port}"
    with open(log if log is not None else os.devnull, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + startup_timeout
            while not _healthy(url):
                if process.poll() is not None:
                    raise RuntimeError(f"rdrec-hf serve exited with status {process.returncode} before it was ready"
                                       + (f" (log: {log})" if log else ""))  # fmt: skip
                if time.monotonic() > deadline:
                    raise TimeoutError(f"rdrec-hf serve was not ready after {startup_timeout:.0f} s")
                time.sleep(0.2)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            with suppress(ProcessLookupError):  # its workers, should any outlive it
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + HEALTH_PATH, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


__all__ = ["API_PATH", "DEFAULT_MAX_BODY_BYTES", "HEALTH_PATH", "RecommenderAPI", "RequestBodyGuard",
           "build_server", "free_port", "load_user_histories", "post_json", "serving"]  # fmt: skip
