"""The devices and dtypes a student runs on: one owner for the `--device` / `--dtype` choices of every command.

`resolve_device` and `resolve_dtype` turn an option's text into torch's objects, with one clear error each;
`check_dtype_supported` refuses a dtype the device cannot compute in; `default_batch_size` sizes batches for
the device. No argument parsing here: the command line declares the options (`rdrec_hf.cli`).
"""

from __future__ import annotations

from enum import Enum
from functools import cache

import torch

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


__all__ = [
    "DEFAULT_BATCH_SIZES",
    "DEVICE_HELP",
    "DTYPE_HELP",
    "WeightsDType",
    "check_dtype_supported",
    "default_batch_size",
    "resolve_device",
    "resolve_dtype",
]
