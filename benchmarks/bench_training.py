"""Training throughput of RDRecTrainer per student size on the real All_Beauty reviews (sizes `make demo`).

For each size preset, in one run: the same data and task mixture through ``build_trainer`` (the code path
of ``train_rdrec``), ``--steps`` optimiser steps timed by a callback; the first ``--warmup`` steps are left
out. Reports the median seconds per step, examples per second, the ratio to the smallest preset and the peak
resident memory of the run (each preset in its own process, ``isolation.run_isolated``).

    .venv/bin/python benchmarks/bench_training.py                         # tiny, mini, small; 2 threads
    .venv/bin/python benchmarks/bench_training.py --presets small t5-small --steps 6 --batch-size 32
    .venv/bin/python benchmarks/bench_training.py --presets mini --task-mixture 1:1:1:1 --ranking-softmax catalog \
        --dataset runs/demo/rationales                                   # the demo's mixture (after `make demo`)

Weights are random (no pretrained T5 is reachable offline); step time does not depend on them.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import tempfile
import time

import torch
from isolation import run_isolated
from transformers import TrainerCallback

from rdrec_hf.training import DataArguments, ModelArguments, RDRecTrainingArguments, build_trainer


class StepTimer(TrainerCallback):
    """Wall-clock seconds of every optimiser step."""

    def __init__(self):
        self.seconds: list[float] = []
        self._start = None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._start)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "mini", "small"], help="RDRecConfig size presets")
    parser.add_argument("--dataset", default="all_beauty", help="all_beauty, beauty, sports or a dataset folder")
    parser.add_argument("--task-mixture", default="1:1:0:1", help="explanation:sequential:rationale:top-N")
    parser.add_argument("--ranking-softmax", default="vocabulary", choices=["vocabulary", "catalog"],
                        help="catalog: ranking rows over the item tokens, text rows over the vocabulary (the demo's)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per preset (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    return parser.parse_args()


def time_preset(preset: str, options: argparse.Namespace, output_dir: str) -> dict:
    torch.set_num_threads(options.threads)
    logging.basicConfig(level=logging.WARNING)
    training_args = RDRecTrainingArguments(
        output_dir=output_dir, max_steps=options.warmup + options.steps, per_device_train_batch_size=options.batch_size,
        task_mixture=options.task_mixture, save_strategy="no", logging_steps=10**6, report_to="none", use_cpu=True,
        disable_tqdm=True, seed=0, ranking_softmax=options.ranking_softmax,
    )
    trainer = build_trainer(ModelArguments(model_preset=preset), DataArguments(dataset=options.dataset), training_args)
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    seconds = statistics.median(timer.seconds[options.warmup:])
    return {
        "preset": preset,
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "seconds_per_step": seconds,
        "examples_per_second": options.batch_size / seconds,
        "examples_per_epoch": len(trainer.train_dataset),
    }


def main() -> None:
    options = parse_args()
    with tempfile.TemporaryDirectory() as output_dir:
        rows = [run_isolated(time_preset, preset, options, output_dir) for preset in options.presets]
    print(f"machine: {platform.processor() or platform.machine()}, {options.threads} torch threads; "
          f"dataset {options.dataset}, mixture {options.task_mixture}, {options.ranking_softmax} softmax, "
          f"batch {options.batch_size}, "
          f"median of {options.steps} steps after {options.warmup} warm-up")
    print("| preset | parameters | s / step | examples / s | ratio to first | one epoch | peak memory |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        epoch_minutes = row["examples_per_epoch"] / row["examples_per_second"] / 60
        print(f"| {row['preset']} | {row['parameters'] / 1e6:.1f} M | {row['seconds_per_step']:.2f} | "
              f"{row['examples_per_second']:.1f} | {row['seconds_per_step'] / rows[0]['seconds_per_step']:.1f}x | "
              f"{row['examples_per_epoch']:,} examples, {epoch_minutes:.1f} min | {row['peak_rss_mib']:,.0f} MiB |")


if __name__ == "__main__":
    main()
