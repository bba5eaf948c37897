"""The training data path alone, previous against new, on beauty: one epoch's redraw and examples per second.

The mixture of the item-id recipe (``recipes/beauty/train/config_item_ids_catalog.yaml``: independent ids,
``0:7:0:0`` unit counts, prompts of at most 128 tokens), batches of 256. Measured per path, in a child process
with one thread, alternating previous / new ``--repeats`` times in one run (medians reported):

- ``redraw_s``: drawing one epoch afresh. Previous: a whole ``build_training_dataset`` (Python sampling, then
  the tokenizer over every prompt), as ``EpochResampledDataset.set_epoch`` did; new: ``TrainingMixture.set_epoch``.
- ``examples_per_s``: the epoch's examples over (redraw + collation of every batch into tensors), no model.
- ``collate_ms``: median milliseconds to collate one batch of 256 (the data path's share of a training step).
- ``step_overhead_ms`` (new path, a tiny student): the median ``RDRecTrainer`` step against a bare loop of the
  same model's forward, backward and AdamW step on the same batches: what the trainer and the data path add.

The previous path runs from a ``git worktree`` of ``--previous-ref`` (the last commit before the array path).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_data_path.py            # writes benchmarks/results/data_path.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREVIOUS_REF = "35c8613"  # the last commit whose training mixture was tokenised per epoch
BATCH_SIZE = 256


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--previous-ref", default=PREVIOUS_REF, help="git revision of the previous data path")
    parser.add_argument("--repeats", type=int, default=3, help="epochs measured per path (alternating)")
    parser.add_argument("--dataset", default="beauty", help="beauty or sports")
    parser.add_argument("--overhead-steps", type=int, default=40, help="timed steps of the step-overhead measure")
    parser.add_argument("--output", default=str(ROOT / "benchmarks/results/data_path.json"))
    parser.add_argument("--measure", choices=["previous", "new"], help=argparse.SUPPRESS)  # the child's role
    parser.add_argument("--epoch", type=int, default=1, help=argparse.SUPPRESS)
    return parser


def measure(options: argparse.Namespace) -> dict:
    """In the child: build the mixture once, then time epoch ``options.epoch``'s redraw and its collation."""
    import copy

    import numpy as np
    import torch
    from datasets import Dataset

    from rdrec_hf.data import RDRecDataCollator, build_training_dataset, load_p5_dataset, load_tokenizer
    from rdrec_hf.data.schema import item_id_scheme
    from rdrec_hf.paths import p5_dataset_dir, t5_tokenizer_dir

    torch.set_num_threads(1)
    data = load_p5_dataset(p5_dataset_dir(options.dataset), indexing="independent")
    tokenizer = copy.deepcopy(load_tokenizer(t5_tokenizer_dir()))
    item_id_scheme(data).add_tokens(tokenizer, data["items"]["item_id"])
    options_of_recipe = dict(mode="unit_counts", max_source_length=128, max_target_length=16)
    started = time.perf_counter()
    first, _ = build_training_dataset(data, tokenizer, {"sequential": 7.0}, seed=0, **options_of_recipe)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    if isinstance(first, Dataset):  # previous: an epoch was a whole build with that epoch's seed
        seed = int(np.random.SeedSequence([0, options.epoch]).generate_state(1)[0])
        epoch, _ = build_training_dataset(data, tokenizer, {"sequential": 7.0}, seed=seed, **options_of_recipe)

        def rows(indices):  # what EpochResampledDataset.__getitems__ handed the collator
            columns = epoch[indices]
            return [dict(zip(columns, row)) for row in zip(*columns.values())]
    else:
        epoch = first
        epoch.set_epoch(options.epoch)
        rows = epoch.__getitems__
    redraw_s = time.perf_counter() - started
    collator = RDRecDataCollator(pad_token_id=tokenizer.pad_token_id)
    order = np.random.default_rng(options.epoch).permutation(len(epoch))
    collate_s = []
    for start in range(0, len(order), BATCH_SIZE):
        batch_started = time.perf_counter()
        batch = collator(rows(order[start:start + BATCH_SIZE].tolist()))
        collate_s.append(time.perf_counter() - batch_started)
    assert batch["input_ids"].dtype == torch.long
    return {"examples": len(epoch), "build_s": build_s, "redraw_s": redraw_s, "collate_s": sum(collate_s),
            "collate_ms_median": 1000 * statistics.median(collate_s)}


def step_overhead(options: argparse.Namespace) -> dict:
    """Median seconds of an ``RDRecTrainer`` step and of a bare training step of the same tiny student."""
    import tempfile

    import torch
    from bench_training import StepTimer

    from rdrec_hf.training import DataArguments, ModelArguments, RDRecTrainingArguments, build_trainer

    torch.set_num_threads(1)
    warmup, steps = 5, options.overhead_steps
    with tempfile.TemporaryDirectory() as output_dir:
        arguments = RDRecTrainingArguments(
            output_dir=output_dir, max_steps=warmup + steps, per_device_train_batch_size=BATCH_SIZE, use_cpu=True,
            task_mixture="0:7:0:0", task_mixture_mode="unit_counts", ranking_softmax="catalog", max_source_length=128,
            max_target_length=16, train_sampling_strategy="group_by_length", save_strategy="no", eval_strategy="no",
            rank_eval=False, report_to="none", logging_steps=50, seed=0, disable_tqdm=True)
        trainer = build_trainer(ModelArguments(model_preset="tiny"),
                                DataArguments(dataset=options.dataset, indexing="independent"), arguments)
        timer = StepTimer()
        trainer.add_callback(timer)
        trainer.train()
        model, catalog = trainer.model, trainer._catalog_token_ids
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        bare = []
        for index, batch in enumerate(trainer.get_train_dataloader()):
            if index == warmup + steps:
                break
            started = time.perf_counter()
            batch = {name: tensor for name, tensor in batch.items()}
            model(**batch, output_token_ids=catalog).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            bare.append(time.perf_counter() - started)
    trainer_ms, bare_ms = (1000 * statistics.median(values[warmup:]) for values in (timer.seconds, bare))
    return {"trainer_step_ms": round(trainer_ms, 2), "bare_step_ms": round(bare_ms, 2),
            "overhead_ms": round(trainer_ms - bare_ms, 2), "steps": steps, "model": "tiny preset, catalog softmax"}


def run_child(role: str, pythonpath: Path, options: argparse.Namespace, epoch: int) -> dict:
    from rdrec_hf.paths import shared_dir

    # The previous checkout's default data folder is relative to it: both read this checkout's.
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1", "RDREC_SHARED": str(shared_dir())}
    command = [sys.executable, __file__, "--measure", role, "--epoch", str(epoch), "--dataset", options.dataset]
    result = subprocess.run(command, env=env, check=True, capture_output=True, text=True, cwd=pythonpath)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(options: argparse.Namespace) -> dict:
    if options.measure:
        print(json.dumps(measure(options)))
        return {}
    from tqdm.auto import tqdm

    with tempfile.TemporaryDirectory() as folder:
        previous = Path(folder) / "previous"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(previous), options.previous_ref],
                       check=True, capture_output=True)
        try:
            runs = {"previous": [], "new": []}
            for repeat in tqdm(range(options.repeats), desc="epochs (previous, new)"):
                for role, path in (("previous", previous), ("new", ROOT)):
                    runs[role].append(run_child(role, path, options, epoch=repeat + 1))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(previous)], check=False)
    overhead = step_overhead(options)
    median = {role: {key: statistics.median(run[key] for run in results) for key in results[0]}
              for role, results in runs.items()}
    examples_per_s = {role: m["examples"] / (m["redraw_s"] + m["collate_s"]) for role, m in median.items()}
    result = {
        "dataset": options.dataset,
        "mixture": "independent ids, sequential 7 segments per user (unit_counts), max_source_length 128, batch 256",
        "examples_per_epoch": int(median["new"]["examples"]),
        "redraw_s": {role: round(m["redraw_s"], 3) for role, m in median.items()},
        "examples_per_s": {role: round(value) for role, value in examples_per_s.items()},
        "collate_ms_per_batch": {role: round(m["collate_ms_median"], 2) for role, m in median.items()},
        "build_s": {role: round(m["build_s"], 2) for role, m in median.items()},
        "redraw_speedup": round(median["previous"]["redraw_s"] / median["new"]["redraw_s"], 1),
        "examples_per_s_speedup": round(examples_per_s["new"] / examples_per_s["previous"], 1),
        "step_overhead_ms": overhead,
        "repeats": options.repeats,
        "previous_ref": options.previous_ref,
        "runs": runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, 1 torch thread per path, paths alternating",
        "date": date.today().isoformat(),
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_data_path.py",
    }
    Path(options.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"redraw of an epoch: previous {result['redraw_s']['previous']} s, new {result['redraw_s']['new']} s "
          f"({result['redraw_speedup']}x); data path alone: previous {result['examples_per_s']['previous']:,} "
          f"examples/s, new {result['examples_per_s']['new']:,} ({result['examples_per_s_speedup']}x); "
          f"collation of a batch of {BATCH_SIZE}: {result['collate_ms_per_batch']}; step of a tiny student: trainer "
          f"{overhead['trainer_step_ms']} ms, bare loop {overhead['bare_step_ms']} ms; written to {options.output}")
    return result


if __name__ == "__main__":
    main(make_parser().parse_args())
