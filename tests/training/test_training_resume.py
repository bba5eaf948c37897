"""Training is never lost: a real `rdrec-hf train` process killed with SIGKILL resumes from its last complete
checkpoint on the rerun, incomplete checkpoints are skipped with a warning naming them, and
`--overwrite_output_dir` starts over."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rdrec_hf.cli import main
from rdrec_hf.integrity import safetensors_problem
from rdrec_hf.training.checkpoints import checkpoint_problem, last_complete_checkpoint

RDREC = str(Path(sys.executable).with_name("rdrec-hf"))
MAX_STEPS, SAVE_STEPS = 40, 8


def train_args(output_dir: Path, *extra: str) -> list[str]:
    return [
        "train", "--model_preset", "tiny", "--dataset", "all_beauty", "--user_limit", "48", "--task_mixture", "1:1:0:1",
        "--output_dir", str(output_dir), "--max_steps", str(MAX_STEPS), "--save_strategy", "steps",
        "--save_steps", str(SAVE_STEPS), "--per_device_train_batch_size", "4", "--eval_strategy", "no",
        "--rank_eval", "false", "--use_cpu", "true", "--report_to", "none", "--max_source_length", "128",
        "--logging_steps", "1", "--seed", "5", "--dataloader_num_workers", "0", *extra,
    ]  # fmt: skip


def train_command(output_dir: Path, *extra: str) -> list[str]:
    """The same training as a separate `rdrec-hf train` process (the one that is killed)."""
    return [RDREC, *train_args(output_dir, *extra)]


def run_to_end(args: list[str], capsys) -> str:
    """The rerun, in this process (the CLI's own `main`); returns its log (stdout and stderr)."""
    capsys.readouterr()
    assert main(args) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err


def kill_when(command: list[str], ready) -> None:
    """Start ``command`` and SIGKILL it as soon as ``ready()`` holds (polled every 10 ms)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    try:
        while not ready():
            assert process.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL


def state(output_dir: Path) -> dict:
    return json.loads((output_dir / "trainer_state.json").read_text())


def logged_steps(output_dir: Path) -> list[int]:
    return [entry["step"] for entry in state(output_dir)["log_history"] if "loss" in entry]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, shared):
    output_dir = tmp_path_factory.mktemp("resume") / "uninterrupted"
    assert main(train_args(output_dir)) == 0
    return output_dir


def test_sigkill_after_a_checkpoint_resumes_there(uninterrupted, tmp_path, capsys):
    output_dir = tmp_path / "run"
    first = output_dir / f"checkpoint-{SAVE_STEPS}"
    kill_when(train_command(output_dir), lambda: checkpoint_problem(first) is None)
    assert not (output_dir / "model.safetensors").exists()
    log = run_to_end(train_args(output_dir), capsys)
    assert "holds checkpoints: resuming from" in log and "(pass --overwrite_output_dir to start over)" in log
    assert state(output_dir)["global_step"] == MAX_STEPS
    assert logged_steps(output_dir) == list(range(1, MAX_STEPS + 1))  # every step once: resumed, not restarted
    # The resumed run ends where the uninterrupted one does (same seed, data order and RNG states restored).
    resumed_losses = [e["loss"] for e in state(output_dir)["log_history"] if "loss" in e]
    straight_losses = [e["loss"] for e in state(uninterrupted)["log_history"] if "loss" in e]
    assert resumed_losses[-1] == pytest.approx(straight_losses[-1], rel=1e-3)
    assert "missing keys" not in log.lower()  # tied weights are not reported as missing on resume


def test_sigkill_during_saves_and_cut_files_are_skipped(uninterrupted, tmp_path, capsys):
    output_dir = tmp_path / "run"

    def saving_or_saved() -> bool:  # a checkpoint folder exists: killed mid-save or just after
        return any(output_dir.glob("checkpoint-*"))

    kill_when(train_command(output_dir), saving_or_saved)
    killed = sorted(output_dir.glob("checkpoint-*"))
    assert killed
    # The states a kill mid-save leaves, built from a complete checkpoint of the uninterrupted run: the weights
    # written but not the trainer state, and weights cut short.
    good = uninterrupted / f"checkpoint-{SAVE_STEPS * 2}"
    shutil.copytree(good, output_dir / good.name, dirs_exist_ok=True)
    no_state = shutil.copytree(good, output_dir / f"checkpoint-{SAVE_STEPS * 4}")
    (no_state / "trainer_state.json").unlink()
    cut = shutil.copytree(good, output_dir / f"checkpoint-{SAVE_STEPS * 3}")
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert "incomplete" in safetensors_problem(weights)
    assert checkpoint_problem(no_state) == "no trainer_state.json (the save did not finish)"
    assert last_complete_checkpoint(output_dir) == str(output_dir / good.name)

    log = run_to_end(train_args(output_dir), capsys)
    assert f"skipping the incomplete checkpoint {no_state}: no trainer_state.json" in log
    assert f"skipping the incomplete checkpoint {cut}: model.safetensors is incomplete" in log
    assert f"resuming from {output_dir / good.name}" in log
    assert logged_steps(output_dir)[-1] == MAX_STEPS and state(output_dir)["global_step"] == MAX_STEPS


def test_overwrite_output_dir_starts_over(uninterrupted, tmp_path, capsys):
    output_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, output_dir)
    log = run_to_end(train_args(output_dir, "--overwrite_output_dir", "true"), capsys)
    assert "removing" in log and "starting at step 0" in log and "resuming" not in log
    assert logged_steps(output_dir) == list(range(1, MAX_STEPS + 1))


def test_an_explicit_incomplete_checkpoint_is_refused(uninterrupted, tmp_path):
    broken = shutil.copytree(uninterrupted / f"checkpoint-{SAVE_STEPS}", tmp_path / f"checkpoint-{SAVE_STEPS}")
    (broken / "trainer_state.json").write_text('{"global_step": 8, "log_hi')
    with pytest.raises(SystemExit) as exit_info:
        main(train_args(tmp_path / "out", "--resume_from_checkpoint", str(broken)))
    assert exit_info.value.code == f"error: checkpoint {broken} cannot be resumed from: trainer_state.json is cut short"
