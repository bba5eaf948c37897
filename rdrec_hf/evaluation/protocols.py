"""The two evaluation protocols and the files each writes (one owner for both facts; pure, no torch)."""

from __future__ import annotations

from enum import Enum

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"


class EvalProtocol(str, Enum):
    """Which evaluation protocol: this project's stricter one, or the paper's (see `rdrec_hf.evaluation.evaluator`)."""

    PROJECT = "project"
    PAPER = "paper"


PROTOCOL_TITLES = {EvalProtocol.PROJECT: "this project's protocol", EvalProtocol.PAPER: "the paper's protocol"}


def protocol_files(protocol: EvalProtocol | str) -> tuple[str, str]:
    """``(metrics file, report file)`` names of an evaluation protocol: ``metrics.json`` / ``report.md`` for
    this project's, ``metrics_<protocol>.json`` / ``report_<protocol>.md`` for another, so they never mix."""
    protocol = EvalProtocol(protocol)
    if protocol is EvalProtocol.PROJECT:
        return METRICS_FILE, REPORT_FILE
    return f"metrics_{protocol.value}.json", f"report_{protocol.value}.md"
