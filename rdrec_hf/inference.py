"""Load a trained student and recommend with it: the Python face of `rdrec-hf recommend` and of the app.

`load_trained_student` reads a student folder (full or LoRA) onto a device in a dtype (`resolve_device` and
`resolve_dtype` parse and check the `--device` / `--dtype` options of every command; `default_batch_size` sizes
batches for the device); `recommend` answers one user (optionally with explanations) and `rank_candidates`
ranks given candidates exactly (both Hub code, `rdrec_hf.models.recommending`);
`recommend_users` ranks a whole list of users in batches; `write_recommendations` writes them as JSON lines and
resumes an interrupted file.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from functools import cache
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PretrainedConfig

from .integrity import check_safetensors
from .models import ITEM_INDEX_FILE, ItemIndex, RDRecConfig, RDRecForConditionalGeneration
from .models.configuration_rdrec import SIZE_PRESETS
from .models.recommending import (
    ANONYMOUS_USER,
    Recommendation,
    catalog_of,
    check_items,
    explanations_for,
    rank_candidates,
    rank_next_items,
    rationales,
    recommend,
)

logger = logging.getLogger(__name__)

STUDENT_BASE_MODEL_TYPES = ("t5", RDRecConfig.model_type)
HUB_MODEL_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # "t5-small", "owner/name"
FALLBACK_PRESET = {"t5-small": "t5-small", "google-t5/t5-small": "t5-small"}  # Hub id -> preset of its sizes


def check_base_checkpoint(name_or_path: str) -> str:
    """Return the checkpoint's ``model_type``; ``ValueError`` unless it is a T5 or an RDRec model."""
    try:
        config_dict, _ = PretrainedConfig.get_config_dict(name_or_path)
    except OSError as error:
        preset = FALLBACK_PRESET.get(name_or_path)
        fallback = (f"`model_preset: {preset}` (its dimensions, random weights)" if preset
                    else f"a size preset (`model_preset`: one of {', '.join(SIZE_PRESETS)})")
        raise ValueError(
            f"cannot read the checkpoint {name_or_path!r}: {str(error).splitlines()[0]}. Without its weights "
            f"(offline, no local folder), train from scratch by replacing `model_name_or_path` with {fallback}; "
            "it is never switched silently"
        ) from None
    model_type = config_dict.get("model_type")
    if model_type not in STUDENT_BASE_MODEL_TYPES:
        raise ValueError(
            f"checkpoint {name_or_path!r} is a {model_type!r} model; the RDRec student starts from a T5 or "
            f"an RDRec checkpoint ({', '.join(STUDENT_BASE_MODEL_TYPES)})"
        )
    return model_type


def check_model_reference(path: str) -> None:
    """Name the mistake when ``path`` is neither a folder nor a Hub id, or is a project dataset's folder."""
    folder = Path(path)
    if (folder / "dataset_dict.json").is_file():
        raise ValueError(f"{path} is a project dataset, not a model: give the trained student's folder")
    if folder.exists():
        return
    if not HUB_MODEL_ID.fullmatch(str(path)):
        raise FileNotFoundError(f"{path}: no such folder, and not a Hub id (owner/name)")
    try:
        PretrainedConfig.get_config_dict(path)
    except OSError as error:
        raise FileNotFoundError(
            f"{path}: no such folder, and not a Hub id that could be read ({str(error).splitlines()[0]})"
        ) from None


DEVICE_HELP = "cpu, cuda or cuda:N (default: CUDA when available, else the CPU)"
# The device types served, each with its examples per forward pass when none is given: 32 was the default on
# every path before (CPU-sized); a GPU gets 256, the largest batch the GPU check's bench_generation runs.
DEFAULT_BATCH_SIZES = {"cpu": 32, "cuda": 256}


class WeightsDType(str, Enum):
    """The dtype a student is loaded in: ``auto`` keeps the checkpoint's."""

    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"


DTYPE_HELP = f"weights' dtype: {', '.join(choice.value for choice in WeightsDType)} (auto: the checkpoint's)"


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """The device of a ``--device`` option: None (or ``auto``) is CUDA when available, else the CPU.

    Raises ``ValueError`` for a name that is not cpu, cuda or cuda:N, or a GPU this machine does not have.
    """
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in DEFAULT_BATCH_SIZES:
        raise ValueError(f"unknown device {str(name)!r}: {DEVICE_HELP}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(name)!r}: this machine has no CUDA GPU (torch {torch.__version__}); "
                             "use --device cpu")  # fmt: skip
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(name)!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def resolve_dtype(name: str | WeightsDType | torch.dtype | None = None) -> torch.dtype | None:
    """The dtype of a ``--dtype`` option, None for ``auto`` (the checkpoint's); ``ValueError`` for another name."""
    if isinstance(name, torch.dtype):
        name = str(name).removeprefix("torch.")
    try:
        choice = WeightsDType(name if name is not None else WeightsDType.AUTO)
    except ValueError:
        raise ValueError(f"unknown dtype {name!r}: {DTYPE_HELP}") from None
    return None if choice is WeightsDType.AUTO else getattr(torch, choice.value)


@cache
def _computes_in(dtype: torch.dtype, device_type: str) -> bool:
    """Whether torch runs a matrix product in ``dtype`` on this machine's ``device_type`` (CPUs: a probe)."""
    if device_type == "cuda" and dtype == torch.bfloat16:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    try:
        ones = torch.ones(2, 4, dtype=dtype, device=device_type)
        return bool((torch.nn.functional.linear(ones, ones) == 4).all())
    except RuntimeError:  # "... not implemented for 'BFloat16'"
        return False


def check_dtype_supported(dtype: torch.dtype, device: torch.device) -> None:
    """``ValueError`` unless ``device`` computes in ``dtype`` (float32 always does)."""
    if dtype != torch.float32 and not _computes_in(dtype, device.type):
        name = str(dtype).removeprefix("torch.")
        raise ValueError(f"this machine's {device.type} does not compute in {name}; use --dtype float32")


def default_batch_size(device: torch.device | str) -> int:
    """Examples (users) per forward pass when none is given, sized for the device (`DEFAULT_BATCH_SIZES`)."""
    return DEFAULT_BATCH_SIZES[torch.device(device).type]


def _device_option(text: str) -> str:
    """An argparse type: a device name `resolve_device` accepts on this machine (a usage error otherwise)."""
    try:
        resolve_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--dtype`` of a command that loads a student, checked as they are parsed."""
    parser.add_argument("--device", type=_device_option, help=DEVICE_HELP)
    parser.add_argument("--dtype", choices=[choice.value for choice in WeightsDType], default=WeightsDType.AUTO.value,
                        help=DTYPE_HELP)  # fmt: skip


def load_trained_student(path: str, device: str | torch.device | None = None,
                         dtype: str | torch.dtype | None = None):  # fmt: skip
    """``(model, tokenizer)`` of a trained student folder or Hub id: a full RDRec checkpoint, or a LoRA adapter
    folder (its base loaded from ``adapter_config.json``, the adapter merged, the catalog read from the folder).

    The model is on ``device`` (`resolve_device`: None is CUDA when available, else the CPU) in ``dtype``
    (`resolve_dtype`: float32, bfloat16, float16, or None / ``auto`` for the checkpoint's own), whatever the
    dtype it was saved in.

    Raises ``ValueError`` for a checkpoint of another model type or a dataset folder, an unknown device or
    dtype, a GPU the machine lacks or a dtype the device cannot compute in; ``FileNotFoundError`` for a path
    that is neither a folder nor a Hub id.
    """
    from .data import load_tokenizer

    device, dtype = resolve_device(device), resolve_dtype(dtype)
    loading = {"dtype": dtype if dtype is not None else "auto"}
    check_model_reference(path)
    for weights in Path(path).glob("*.safetensors"):  # a cut file: name it instead of a loader's traceback
        check_safetensors(weights)

    adapter_config = Path(path) / "adapter_config.json"
    if adapter_config.is_file():
        from peft import PeftConfig, PeftModel

        base_path = PeftConfig.from_pretrained(path).base_model_name_or_path
        check_base_checkpoint(base_path)
        base = RDRecForConditionalGeneration.from_pretrained(base_path, **loading)
        model = PeftModel.from_pretrained(base, path).merge_and_unload()
        if (Path(path) / ITEM_INDEX_FILE).is_file():
            model.set_item_index(ItemIndex.load(Path(path) / ITEM_INDEX_FILE))
    else:
        if check_base_checkpoint(path) != RDRecConfig.model_type:
            raise ValueError(f"{path} is a plain T5 checkpoint, not a trained RDRec student")
        model = RDRecForConditionalGeneration.from_pretrained(path, **loading)
    model = model.to(dtype=dtype if dtype is not None else model.dtype)  # PEFT may keep merged adapters in float32
    check_dtype_supported(model.dtype, device)
    return model.to(device).eval(), load_tokenizer(path)


@dataclass
class UserRecommendations:
    """The ranked items of one user: one line of `write_recommendations`' JSONL file."""

    user_id: str
    item_ids: list[str]
    original_ids: list[str]
    scores: list[float]
    num_missing: int  # how many of the k asked for were not returned (fewer allowed items remain)


def recommend_users(
    model,
    tokenizer,
    users: Sequence[tuple[str, Sequence[str]]],
    k: int = 10,
    num_beams: int = 20,
    batch_size: int | None = None,
    exclude_history: bool = True,
    decoding: str | None = None,
    progress: bool = True,
) -> Iterator[UserRecommendations]:
    """Top-``k`` next items of every ``(user_id, history)`` in ``users``, in batches (None: `default_batch_size`
    of the model's device), in input order.

    Every history is checked before the first batch runs (an empty history or an unknown item raises
    ``ValueError`` naming the user), so a bad input does not stop a long run half way.
    """
    item_index = catalog_of(model)
    for user_id, history in users:
        check_items(item_index, history, who=f" of user {user_id}")
    batch_size = default_batch_size(model.device) if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    bar = tqdm(total=len(users), desc="recommending", unit="user", disable=not progress)
    for start in range(0, len(users), batch_size):
        chunk = users[start : start + batch_size]
        output = rank_next_items(
            model, tokenizer, [history for _, history in chunk], [user for user, _ in chunk], k, num_beams,
            exclude_history, decoding,
        )  # fmt: skip
        for (user_id, _), items, scores, missing in zip(chunk, output.item_ids, output.scores, output.num_missing):
            yield UserRecommendations(
                str(user_id), items, [item_index.original_id(item) for item in items], [float(s) for s in scores], missing
            )
        bar.update(len(chunk))
    bar.close()


@dataclass
class RecommendationSummary:
    """What `write_recommendations` did."""

    num_users: int  # users in the file now
    num_resumed: int  # of them, already in the file before this run
    num_new: int
    seconds: float  # wall time of the new ones
    num_short: int  # users (in the file) with fewer than k items
    dropped_partial_line: bool  # an interrupted last line was removed and its user redone

    @property
    def users_per_second(self) -> float:
        return self.num_new / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        rate = f"{self.users_per_second:.2f} users/s" if self.num_new else "nothing new"
        return (
            f"{self.num_users:,} users in the file ({self.num_resumed:,} resumed, {self.num_new:,} new in "
            f"{self.seconds:.1f} s: {rate}); {self.num_short:,} with fewer than k allowed items"
            + ("; an interrupted last line was redone" if self.dropped_partial_line else "")
        )


def _read_finished(path: Path, k: int) -> tuple[dict[str, int], bool]:
    """``{user_id: num_missing}`` of the complete lines of ``path``; truncates an interrupted last line.

    Raises ``ValueError`` for a damaged line elsewhere, or a file written with another ``k``.
    """
    finished: dict[str, int] = {}
    if not path.is_file():
        return finished, False
    raw = path.read_bytes()
    complete_end = raw.rfind(b"\n") + 1  # a last line without its newline was cut by an interruption
    dropped = complete_end < len(raw)
    for number, line in enumerate(raw[:complete_end].decode("utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            user_id, items, missing = str(row["user_id"]), row["item_ids"], int(row["num_missing"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: line {number} is not a recommendation line; move the file away to start over") from None
        if len(items) + missing != k:
            raise ValueError(f"{path}: line {number} holds {len(items) + missing} slots, not k={k}; "
                             "resume with the same -k or write another file")  # fmt: skip
        finished[user_id] = missing
    if dropped:
        with path.open("r+b") as handle:
            handle.truncate(complete_end)
    return finished, dropped


def write_recommendations(
    model,
    tokenizer,
    users: Sequence[tuple[str, Sequence[str]]],
    output: str | Path,
    k: int = 10,
    batch_size: int | None = None,
    **options,
) -> RecommendationSummary:
    """Write one JSON line per user (``user_id``, ``item_ids``, ``original_ids``, ``scores``, ``num_missing``)
    to ``output``, resuming: users already in the file are skipped, an interrupted last line is redone, and
    each batch is flushed before the next starts, so an interruption loses at most the batch in flight.
    ``options`` are the other arguments of `recommend_users` (``num_beams``, ``decoding``, ...).
    """
    path = Path(output)
    batch_size = default_batch_size(model.device) if batch_size is None else batch_size
    repeated = next((user for user, count in Counter(str(user) for user, _ in users).items() if count > 1), None)
    if repeated is not None:
        raise ValueError(f"user {repeated!r} appears more than once in the users to recommend for")
    path.parent.mkdir(parents=True, exist_ok=True)
    finished, dropped = _read_finished(path, k)
    todo = [(str(user), history) for user, history in users if str(user) not in finished]
    num_short = sum(1 for missing in finished.values() if missing)
    started = time.perf_counter()
    with path.open("a", encoding="utf-8") as handle:
        for written, row in enumerate(
            recommend_users(model, tokenizer, todo, k=k, batch_size=batch_size, **options), 1
        ):
            handle.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
            num_short += row.num_missing > 0
            if written % batch_size == 0:
                handle.flush()
    summary = RecommendationSummary(
        len(finished) + len(todo), len(finished), len(todo), time.perf_counter() - started, num_short, dropped
    )
    logger.info("recommendations written to %s: %s", path, summary)
    return summary


__all__ = [
    "ANONYMOUS_USER",
    "Recommendation",
    "RecommendationSummary",
    "UserRecommendations",
    "add_device_arguments",
    "check_base_checkpoint",
    "check_dtype_supported",
    "check_model_reference",
    "default_batch_size",
    "explanations_for",
    "load_trained_student",
    "rank_candidates",
    "rank_next_items",
    "rationales",
    "recommend",
    "recommend_users",
    "resolve_device",
    "resolve_dtype",
    "write_recommendations",
    "WeightsDType",
]
