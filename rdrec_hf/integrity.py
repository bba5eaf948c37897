"""Is a saved file whole? Checks that turn a file cut short (a process killed mid-save, a full disk) into a
message naming it, instead of a loader's traceback or, worse, a silently restarted run."""

from __future__ import annotations

import json
import struct
from pathlib import Path

SAFETENSORS_HEADER_BYTES = 8  # little-endian u64: the JSON header's length


def safetensors_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a complete safetensors file (missing, header cut or unreadable, tensors cut short),
    or None when its size is exactly what its header describes."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(SAFETENSORS_HEADER_BYTES)
        if len(prefix) < SAFETENSORS_HEADER_BYTES:
            return f"incomplete: {size} bytes, shorter than a safetensors header"
        (header_length,) = struct.unpack("<Q", prefix)
        if SAFETENSORS_HEADER_BYTES + header_length > size:
            return f"incomplete: its header claims {header_length:,} bytes but the file has {size:,}"
        try:
            header = json.loads(handle.read(header_length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "not a safetensors file: its header is not JSON"
    data_end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
    expected = SAFETENSORS_HEADER_BYTES + header_length + data_end
    if size < expected:
        return f"incomplete: {size:,} of {expected:,} bytes"
    return None


def check_safetensors(path: str | Path) -> None:
    """``ValueError`` naming ``path`` when it is not a complete safetensors file."""
    problem = safetensors_problem(path)
    if problem is not None:
        raise ValueError(f"{path}: {problem} (the save was interrupted or the file was cut short); "
                         "save or download it again")
