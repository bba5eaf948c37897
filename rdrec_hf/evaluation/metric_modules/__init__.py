"""`evaluate` metric modules that load from local files (Hub metric names do not load offline).

Each module is a plain file so `evaluate.load(path)` can copy and import it; they are regular package
modules too, so they ship with the wheel. Load them with `load_metric(name)`.
"""

from __future__ import annotations

from pathlib import Path

import evaluate

METRIC_NAMES = ("rdrec_ranking", "rdrec_text")


def metric_module_path(name: str) -> Path:
    """Path of the module file of metric ``name`` (one of `METRIC_NAMES`)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; choose from {list(METRIC_NAMES)}")
    return Path(__file__).with_name(f"{name}.py")


def load_metric(name: str, **load_kwargs) -> evaluate.EvaluationModule:
    """``evaluate.load`` of a local metric module by name; works offline. Extra keyword arguments go to it."""
    return evaluate.load(str(metric_module_path(name)), **load_kwargs)
