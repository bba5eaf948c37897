"""recipes/train.py as a user runs it: killed and resumed from its last checkpoint, and launched as two
data-parallel CPU processes with `accelerate launch`. Slow: each starts fresh Python processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPOSITORY

ROOT = REPOSITORY
TRAIN = ROOT / "recipes" / "train.py"
TINY_RUN = [
    "--model_preset", "tiny", "--dataset", "all_beauty", "--user_limit", "24", "--task_mixture", "0:1:0:1",
    "--max_source_length", "128", "--max_target_length", "8", "--per_device_train_batch_size", "4",
    "--eval_strategy", "no", "--rank_eval", "false", "--report_to", "none", "--seed", "5",
]


def environment() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def trainer_state(folder: Path) -> dict:
    return json.loads((folder / "trainer_state.json").read_text())


@pytest.mark.slow
def test_training_killed_after_a_checkpoint_resumes_from_it(tmp_path):
    output_dir = tmp_path / "run"
    arguments = [sys.executable, str(TRAIN), *TINY_RUN, "--output_dir", str(output_dir), "--max_steps", "12",
                 "--save_strategy", "steps", "--save_steps", "2", "--logging_steps", "1", "--use_cpu", "true"]
    process = subprocess.Popen(arguments, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    try:
        # checkpoint-4 existing means checkpoint-2 is complete; stop the run as a crash would (SIGKILL).
        while not (output_dir / "checkpoint-4").exists():
            assert process.poll() is None, "training ended before the kill"
            assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.2)
    finally:
        process.kill()
        process.wait()
    assert not (output_dir / "model.safetensors").exists(), "the first run finished before it was killed"
    complete = sorted(
        (path for path in output_dir.glob("checkpoint-*") if (path / "trainer_state.json").is_file()),
        key=lambda path: int(path.name.split("-")[1]),
    )
    last_step = trainer_state(complete[-1])["global_step"]

    resumed = subprocess.run(
        [*arguments, "--resume_from_checkpoint", "true"], env=environment(), capture_output=True, text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The progress callback prints each step's log: only the steps after the checkpoint ran again.
    printed_step_logs = (resumed.stdout + resumed.stderr).count("{'loss': '")
    assert printed_step_logs == 12 - last_step
    state = trainer_state(output_dir)
    assert state["global_step"] == 12
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps == list(range(1, 13))  # the history before the kill came back with the checkpoint


@pytest.mark.slow
@pytest.mark.parametrize(
    "launch",
    [["--multi_gpu", "--num_processes", "2"],
     ["--config_file", str(ROOT / "recipes" / "accelerate_configs" / "multi_cpu.yaml")]],
    ids=["multi_gpu-flag", "multi_cpu.yaml"],
)
def test_two_cpu_processes_train_one_model_and_learn(tmp_path, launch):
    output_dir = tmp_path / "run"
    accelerate = Path(sys.executable).parent / "accelerate"
    result = subprocess.run(
        [str(accelerate), "launch", *launch, "--main_process_port", "0", str(TRAIN), *TINY_RUN,
         "--output_dir", str(output_dir), "--max_steps", "30", "--learning_rate", "1e-2", "--logging_steps", "5",
         "--save_strategy", "no", "--log_level", "info"],
        env=environment(), capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # One data-parallel run: 2 processes x 4 examples per device make each optimizer step.
    assert "Total train batch size (w. parallel, distributed & accumulation) = 8" in result.stdout + result.stderr
    losses = [entry["loss"] for entry in trainer_state(output_dir)["log_history"] if "loss" in entry]
    assert len(losses) == 6
    assert losses[-1] < 0.8 * losses[0], losses
    assert (output_dir / "model.safetensors").is_file()
