"""Run one benchmark measurement in a fresh process, so that its peak resident memory is its own.

``resource.getrusage`` only reports the peak of a whole process and cannot be reset, so each measured point
(a preset, a catalog size, ...) runs in a child started with ``spawn`` (no memory inherited from the parent).
"""

from __future__ import annotations

import multiprocessing
import resource
from typing import Any, Callable


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _call_and_measure(function: Callable[..., dict], args: tuple) -> dict:
    result = function(*args)
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def run_isolated(function: Callable[..., dict], *args: Any) -> dict:
    """``function(*args)`` (a module-level function returning a dict) in a spawned child; its dict gains
    ``peak_rss_mib``, the child's peak resident set size in MiB (Python, torch and the work together)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_call_and_measure, (function, args))
