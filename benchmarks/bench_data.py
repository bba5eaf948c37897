"""Data pipeline vs training step: is data preparation under 10% of a t5-small student's step time?

Measured in one run on the real beauty split:

1. loading (``load_p5_dataset``) and building the tokenised training mixture (``build_training_dataset``:
   sampling, templates, batched tokenisation, whole-word ids), a one-off cost per epoch, amortised per batch;
2. per batch, side by side in one loop: fetching the batch (dataset rows + ``RDRecDataCollator``, through a
   ``torch.utils.data.DataLoader`` with ``num_workers=0`` as the Trainer does on CPU) and one optimiser step
   (forward, backward, AdamW) of ``RDRecForConditionalGeneration`` with t5-small dimensions.

    .venv/bin/python benchmarks/bench_data.py                      # beauty, sequential + top-N, batch 32
    .venv/bin/python benchmarks/bench_data.py --steps 8 --batch-size 64 --threads 2

Weights are random (no pretrained T5 is reachable offline); step time does not depend on them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from rdrec_hf import Task
from rdrec_hf.data import RDRecDataCollator, build_training_dataset, load_p5_dataset, load_tokenizer
from rdrec_hf.data.collator import MODEL_COLUMNS
from rdrec_hf.models import RDRecConfig, RDRecForConditionalGeneration
from rdrec_hf.paths import p5_dataset_dir, t5_tokenizer_dir

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="beauty", help="P5 split under the shared folder")
    parser.add_argument("--preset", default="t5-small", help="RDRecConfig size preset of the student")
    parser.add_argument("--tasks", default="sequential,topn", help="comma-separated tasks, weight 1 each")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6, help="timed training steps (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    tokenizer = load_tokenizer(t5_tokenizer_dir())
    data, load_s = timed(load_p5_dataset, p5_dataset_dir(args.dataset))
    weights = {Task.parse(name): 1.0 for name in args.tasks.split(",")}
    (dataset, _), build_s = timed(build_training_dataset, data, tokenizer, weights, seed=args.seed)

    loader = DataLoader(
        dataset.select_columns(list(MODEL_COLUMNS)),
        batch_size=args.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(args.seed),
        collate_fn=RDRecDataCollator(pad_token_id=tokenizer.pad_token_id),
    )
    with torch.random.fork_rng():  # seeded initial weights without touching the caller's global RNG
        torch.manual_seed(args.seed)
        model = RDRecForConditionalGeneration(RDRecConfig.from_preset(args.preset))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    fetch_s, step_s, lengths = [], [], []
    batches = iter(loader)
    for step in tqdm(range(args.steps + 1), desc="fetch + train step"):
        batch, fetch = timed(next, batches)
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step warms up allocators and kernels
            step_s.append(time.perf_counter() - start)
            fetch_s.append(fetch)
            lengths.append(batch["input_ids"].shape[1])

    fetch, train_step = statistics.median(fetch_s), statistics.median(step_s)
    build_per_batch = build_s * args.batch_size / dataset.num_rows
    print(
        f"\n{args.dataset}: {data['users'].num_rows:,} users; mixture {args.tasks}: {dataset.num_rows:,} examples; "
        f"batch {args.batch_size} (median prompt length {statistics.median(lengths):.0f} tokens); "
        f"student preset {args.preset} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters); "
        f"{args.threads} threads, {args.steps} timed steps; torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other processes share the cores)\n"
    )
    print("| stage | seconds | examples/s |")
    print("|---|---|---|")
    print(f"| load_p5_dataset (once) | {load_s:.2f} | |")
    print(f"| build_training_dataset (once per epoch) | {build_s:.2f} | {dataset.num_rows / build_s:,.0f} |")
    print(f"| fetch + collate one batch (median) | {fetch:.4f} | {args.batch_size / fetch:,.0f} |")
    print(f"| training step (median) | {train_step:.2f} | {args.batch_size / train_step:,.1f} |")
    print(
        f"\ndata share of step time: fetch+collate {fetch / train_step:.2%}; "
        f"with the epoch's build amortised per batch {(fetch + build_per_batch) / train_step:.2%} (goal < 10%)"
    )


if __name__ == "__main__":
    main()
