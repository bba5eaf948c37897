"""Inference Endpoints handler of an RDRec student (the custom-handler convention: ``EndpointHandler(path)``).

This file is copied as ``handler.py`` into exported and pushed model folders (``rdrec-hf push model``,
``rdrec-hf export model``). It runs the student on the endpoint's GPU when there is one. It imports only
``torch`` and ``transformers``: the model and its recommendation code load through ``trust_remote_code``, so
the endpoint needs no rdrec-hf install.

Request::

    {"inputs": {"user_id": "12",           # a project user id; its history comes from user_histories.json
                "history": ["3", "17"],    # or/and the items, oldest first (project ids)
                "k": 10,                   # how many items (1 .. catalog size; default 10)
                "explain": false,          # also generate an explanation per item
                "candidates": ["5", ...]}} # optional: rank exactly these items (top-N) instead of the catalog

Response: ``{"user_id", "mode": "next_item" | "top_n", "recommendations": [{"item_id", "original_id", "score",
"explanation"}], "num_missing"}``; a request that cannot be answered gives ``{"error": "<why>"}``.

`parse_request` and `response_for` are the one reading of a request and the one shape of an answer: the LitServe
server (``rdrec_hf.serving.server``, ``rdrec-hf serve``) imports them from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

USER_HISTORIES_FILE = "user_histories.json"
REQUEST_FIELDS = ("user_id", "history", "k", "explain", "candidates")
DEFAULT_K = 10  # rdrec_hf.models.item_decoding.DEFAULT_TOP_K, restated: this file is copied alone to the Hub


class RequestError(ValueError):
    """A request the handler answers with ``{"error": ...}``."""


def _item_list(value, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, (str, int)) and not isinstance(item, bool) for item in value):
        raise RequestError(f'"{name}" must be a list of item ids (strings), got {json.dumps(value)[:80]}')
    return [str(item) for item in value]


def read_user_histories(folder: str | Path) -> dict[str, list[str]] | None:
    """``{user_id: items}`` of an exported folder's ``user_histories.json``; None when it has none."""
    histories_file = Path(folder) / USER_HISTORIES_FILE
    return json.loads(histories_file.read_text(encoding="utf-8"))["users"] if histories_file.is_file() else None


def parse_request(data, item_index, user_histories: dict[str, list[str]] | None) -> dict:
    """The one reading of a request (see the module docstring), shared by `EndpointHandler` and the LitServe
    server (`rdrec_hf.serving.server`): ``{"user_id", "history", "k", "explain", "candidates"}``, the history
    looked up in ``user_histories`` when only ``user_id`` is given. ``item_index`` is the model's catalog (None:
    the model cannot recommend). Raises `RequestError` for anything the client must fix; the items themselves
    are checked against the catalog by the model (``ValueError``).
    """
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if not isinstance(inputs, dict):
        raise RequestError('the request must be {"inputs": {"user_id" or "history": ..., "k": ..., ...}}')
    unknown = sorted(set(inputs) - set(REQUEST_FIELDS))
    if unknown:
        raise RequestError(f"unknown request fields {unknown}; the fields are {list(REQUEST_FIELDS)}")
    user_id = inputs.get("user_id")
    if user_id is not None and (not isinstance(user_id, (str, int)) or isinstance(user_id, bool)):
        raise RequestError(f'"user_id" must be a string, got {json.dumps(user_id)}')
    user_id = None if user_id is None else str(user_id)
    candidates = _item_list(inputs["candidates"], "candidates") if "candidates" in inputs else None
    history = _item_list(inputs["history"], "history") if "history" in inputs else None
    if history is None and candidates is None:
        if user_id is None:
            raise RequestError('give "user_id" or "history" (the items the user interacted with, oldest first)')
        if user_histories is None:
            raise RequestError(f'this endpoint has no {USER_HISTORIES_FILE}, so "user_id" alone is not enough: '
                               'send "history"')
        if user_id not in user_histories:
            raise RequestError(f"unknown user id {user_id!r}")
        history = user_histories[user_id]
    if item_index is None:
        raise RequestError("the model has no item catalog (item_index.json); it cannot recommend")
    k = inputs.get("k", DEFAULT_K)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(item_index):
        raise RequestError(f'"k" must be an integer from 1 to {len(item_index)} (the catalog size), got {json.dumps(k)}')
    explain = inputs.get("explain", False)
    if not isinstance(explain, bool):
        raise RequestError(f'"explain" must be true or false, got {json.dumps(explain)}')
    return {"user_id": user_id, "history": history, "k": k, "explain": explain, "candidates": candidates}


def response_for(request: dict, ranked) -> dict:
    """The answer to a parsed request (`parse_request`) from its ranked items (``Recommendation``s, best first),
    shared by the handler and the server."""
    return {
        "user_id": request["user_id"],
        "mode": "top_n" if request["candidates"] is not None else "next_item",
        "recommendations": [vars(item) for item in ranked],
        "num_missing": request["k"] - len(ranked),
    }


class EndpointHandler:
    """Loads the student from ``path`` once, on the endpoint's GPU when it has one (in the checkpoint's dtype);
    each call answers one request (see the module docstring)."""

    def __init__(self, path: str = ""):
        # rdrec_hf.devices.resolve_device's default, restated: the endpoint has no rdrec_hf to import it from.
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = AutoModelForSeq2SeqLM.from_pretrained(path, trust_remote_code=True).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        self.user_histories = read_user_histories(path)

    def __call__(self, data: dict) -> dict:
        try:
            return self._answer(data)
        except ValueError as error:  # RequestError, and the model's own checks (e.g. no catalog)
            return {"error": str(error)}

    def _answer(self, data) -> dict:
        request = parse_request(data, self.model.item_index, self.user_histories)
        if request["candidates"] is not None:
            ranked = self.model.rank_candidates(
                self.tokenizer, request["candidates"], user_id=request["user_id"], k=request["k"],
                explain=request["explain"],
            )
        else:
            ranked = self.model.recommend(
                self.tokenizer, request["history"], user_id=request["user_id"], k=request["k"],
                explain=request["explain"],
            )
        return response_for(request, ranked)
