"""Per-batch result shards that make a distillation run resumable and loss-free.

``output_dir/run.json`` holds the run's fingerprint (teacher, prompt version, generation settings, a hash of
the input rows); ``output_dir/shards/batch-000042.json`` the results of batch 42. A shard is written to a
temporary file and renamed into place, so a crash leaves either the whole shard or none of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested keys joined by dots: ``{"generation": {"seed": 1}}`` -> ``{"generation.seed": 1}``."""
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class ShardStore:
    """The shards of one run in ``folder``; refuses a folder that holds shards of a different run."""

    def __init__(self, folder: str | os.PathLike, fingerprint: dict[str, Any]):
        self.folder = Path(folder)
        self.shard_folder = self.folder / "shards"
        self.fingerprint = fingerprint

    @property
    def run_file(self) -> Path:
        return self.folder / "run.json"

    def claim(self) -> None:
        """Record the fingerprint of a new run (main process only), or check it matches the stored one."""
        if self.run_file.exists():
            self.check()
            return
        self.shard_folder.mkdir(parents=True, exist_ok=True)
        self._atomic_write(self.run_file, self.fingerprint)

    def check(self, ignore: Collection[str] = ()) -> None:
        """Raise ``ValueError`` unless ``run.json`` holds this run's fingerprint (its ``ignore`` keys aside)."""
        stored = _flatten(json.loads(self.run_file.read_text()))
        expected = _flatten(json.loads(json.dumps(self.fingerprint)))  # through JSON: tuples become lists
        for key in ignore:
            stored.pop(key, None)
            expected.pop(key, None)
        if stored != expected:
            changed = sorted(key for key in stored.keys() | expected.keys() if stored.get(key) != expected.get(key))
            raise ValueError(
                f"{self.folder} holds shards of a different run (differs in: {', '.join(changed)}); "
                "use another output_dir or delete this one"
            )

    def path(self, batch_index: int) -> Path:
        return self.shard_folder / f"batch-{batch_index:06d}.json"

    def has(self, batch_index: int) -> bool:
        return self.path(batch_index).exists()

    def write(self, batch_index: int, payload: dict[str, Any]) -> None:
        self._atomic_write(self.path(batch_index), payload)

    def read(self, batch_index: int) -> dict[str, Any]:
        return json.loads(self.path(batch_index).read_text())

    @staticmethod
    def _atomic_write(path: Path, payload: dict[str, Any]) -> None:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(temporary, "w") as handle:
            json.dump(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
