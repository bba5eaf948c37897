"""The scripts in examples/ run as written (on tiny settings)."""

from __future__ import annotations

import os
import subprocess
import sys
from helpers import REPOSITORY

EXAMPLES = REPOSITORY / "examples"


def run_example(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_quickstart_then_recommend_from_its_checkpoint(tmp_path, shared):
    output = run_example(
        "quickstart.py", "--preset", "tiny", "--max_steps", "4", "--users", "24", "--eval_users", "4",
        "--output_dir", str(tmp_path),
    )
    assert "trained 4 steps" in output and "sequential NDCG@10, model" in output
    assert output.count("(asin ") == 5
    output = run_example("recommend_with_checkpoint.py", str(tmp_path), "--history", "1", "2", "3", "-k", "3")
    assert "random indexing" in output and output.count("(asin ") == 3
