"""How training step time, recommendation time and memory grow with the catalog size and the history length.

Two sweeps, each point in a fresh process (``isolation.run_isolated``) so that its peak memory is its own:

* catalog: 1,000 / 5,000 / 12,101 (beauty) / 18,357 (sports) items at a fixed history length;
* history: 2 / 5 / 10 / 20 / 50 items at the beauty catalog size. Prompts keep the last 20 items (the paper's
  window, ``MAX_HISTORY_ITEMS``), so beyond 20 only the excluded items grow; the 50 point shows that bound.

At each point: the trie (`ItemIndex`) is built, a batch of users is drawn with a seeded RNG (random histories
of catalog ids, the next item as target), then constrained top-k generation (history excluded) and training
steps (forward + backward + AdamW) of the sequential task are timed, medians after one warm-up. Peak resident
memory is read after the setup, after generation and after training (the peak only grows, so each stage is
measured before the next). Writes benchmarks/results/scaling.{json,md} and one PNG per sweep:

    .venv/bin/python benchmarks/bench_scaling.py                     # mini preset, batch 16, 2 threads
    .venv/bin/python benchmarks/bench_scaling.py --preset t5-small --repeats 2

Weights are random (no pretrained T5 offline): times and memory do not depend on them.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from isolation import peak_rss_mib, run_isolated
from tqdm import tqdm

from rdrec_hf import Task
from rdrec_hf.data.tokenization import load_tokenizer
from rdrec_hf.models.prompting import encode_prompts, pad_sequences, prompt_for
from rdrec_hf.models import ItemIndex, RDRecConfig, RDRecForConditionalGeneration
from rdrec_hf.paths import t5_tokenizer_dir

RESULTS_DIR = Path(__file__).parent / "results"
CATALOG_SIZES = (1_000, 5_000, 12_101, 18_357)
HISTORY_LENGTHS = (2, 5, 10, 20, 50)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="mini", help="RDRecConfig size preset")
    parser.add_argument("--batch-size", type=int, default=16, help="users per training step and per generate()")
    parser.add_argument("--num-beams", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=10, help="ids returned per user")
    parser.add_argument("--history", type=int, default=10, help="history length of the catalog sweep")
    parser.add_argument("--catalog", type=int, default=12_101, help="catalog size of the history sweep")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (after a warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model weights and of the drawn users")
    return parser.parse_args()


def median_seconds(function, repeats: int) -> float:
    """Median wall time of `repeats` calls after one untimed warm-up call."""
    function()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def measure_point(catalog_size: int, history_length: int, options: argparse.Namespace) -> dict:
    """Times and memory of one (catalog size, history length) point; runs in its own process."""
    torch.set_num_threads(options.threads)
    tokenizer = load_tokenizer(t5_tokenizer_dir())
    catalog = [str(item) for item in range(1, catalog_size + 1)]
    started = time.perf_counter()
    index = ItemIndex.from_catalog(catalog, tokenizer)
    index_seconds = time.perf_counter() - started
    trie_bytes = sum(
        tensor.numel() * tensor.element_size() for tensor in vars(index).values() if isinstance(tensor, torch.Tensor)
    )
    torch.manual_seed(options.seed)
    model = RDRecForConditionalGeneration(RDRecConfig.from_preset(options.preset))

    rng = random.Random(options.seed)
    drawn = [rng.sample(catalog, history_length + 1) for _ in range(options.batch_size)]
    histories, targets = [items[:-1] for items in drawn], [items[-1] for items in drawn]
    prompts = [prompt_for(Task.SEQUENTIAL, user_id=str(user + 1), history=history) for user, history in enumerate(histories)]
    batch = encode_prompts(tokenizer, prompts, max_length=1024, return_tensors="pt")
    batch["task_id"] = torch.full((options.batch_size,), int(Task.SEQUENTIAL))
    labels = pad_sequences(tokenizer(targets)["input_ids"], -100)
    setup_peak = peak_rss_mib()

    model.eval()
    with torch.no_grad():
        generate_seconds = median_seconds(
            lambda: model.generate(
                **batch, item_index=index, exclude_items=histories, num_beams=options.num_beams,
                num_return_sequences=options.top_k,
            ),
            options.repeats,
        )
    generate_peak = peak_rss_mib()

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def training_step() -> None:
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step_seconds = median_seconds(training_step, options.repeats)
    return {
        "catalog_size": catalog_size,
        "history_length": history_length,
        "prompt_tokens": int(batch["attention_mask"].sum(dim=1).float().median()),
        "trie_nodes": index.num_nodes,
        "trie_mib": trie_bytes / 2**20,
        "index_build_seconds": index_seconds,
        "generate_seconds": generate_seconds,
        "users_per_second": options.batch_size / generate_seconds,
        "step_seconds": step_seconds,
        "examples_per_second": options.batch_size / step_seconds,
        "setup_peak_rss_mib": setup_peak,
        "generate_peak_rss_mib": generate_peak,
    }


def plot(rows: list[dict], sweep: str, options: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [row[sweep] for row in rows]
    panels = [
        ("training step (s)", "step_seconds"),
        ("generate top-10, one batch (s)", "generate_seconds"),
        ("peak resident memory (MiB)", None),
    ]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for axis, (title, key) in zip(axes, panels):
        if key is None:
            for label, column in (("after setup", "setup_peak_rss_mib"), ("after generate", "generate_peak_rss_mib"),
                                  ("after training", "peak_rss_mib")):
                axis.plot(x, [row[column] for row in rows], marker="o", label=label)
            axis.legend(fontsize=8)
        else:
            axis.plot(x, [row[key] for row in rows], marker="o")
            axis.set_ylim(bottom=0)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel(sweep.replace("_", " "))
        axis.grid(alpha=0.3)
    figure.suptitle(f"{options.preset} student, batch {options.batch_size}, {options.num_beams} beams, "
                    f"{options.threads} CPU threads (median of {options.repeats})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown_table(rows: list[dict]) -> list[str]:
    lines = [
        "| catalog | history | prompt tokens | trie nodes | trie MiB | step s | examples/s | generate s | users/s "
        "| peak MiB setup / generate / train |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['catalog_size']:,} | {row['history_length']} | {row['prompt_tokens']} | {row['trie_nodes']:,} "
            f"| {row['trie_mib']:.2f} | {row['step_seconds']:.3f} | {row['examples_per_second']:.1f} "
            f"| {row['generate_seconds']:.2f} | {row['users_per_second']:.1f} | {row['setup_peak_rss_mib']:.0f} / "
            f"{row['generate_peak_rss_mib']:.0f} / {row['peak_rss_mib']:.0f} |"
        )
    return lines


def ratio_line(rows: list[dict], sweep: str) -> str:
    first, last = rows[0], rows[-1]
    return (
        f"{sweep.replace('_', ' ')} {first[sweep]:,} -> {last[sweep]:,} ({last[sweep] / first[sweep]:.1f}x): "
        f"step time {last['step_seconds'] / first['step_seconds']:.2f}x, generate time "
        f"{last['generate_seconds'] / first['generate_seconds']:.2f}x, peak memory "
        f"{last['peak_rss_mib'] / first['peak_rss_mib']:.2f}x"
    )


def main() -> None:
    options = parse_args()
    points = [("catalog_size", size, options.history) for size in CATALOG_SIZES]
    points += [("history_length", options.catalog, length) for length in HISTORY_LENGTHS]
    sweeps: dict[str, list[dict]] = {"catalog_size": [], "history_length": []}
    for sweep, catalog_size, history_length in tqdm(points, desc="scaling points (one process each)"):
        sweeps[sweep].append(run_isolated(measure_point, catalog_size, history_length, options))

    RESULTS_DIR.mkdir(exist_ok=True)
    header = (
        f"{options.preset} preset, batch {options.batch_size}, {options.num_beams} beams, top-{options.top_k}, "
        f"{options.threads} torch threads, median of {options.repeats} after a warm-up; torch {torch.__version__}, "
        f"{platform.machine()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    lines = [header, ""]
    for sweep, rows in sweeps.items():
        plot(rows, sweep, options, RESULTS_DIR / f"scaling_{sweep}.png")
        lines += [f"### {sweep.replace('_', ' ')} sweep", "", *markdown_table(rows), "", ratio_line(rows, sweep), ""]
    (RESULTS_DIR / "scaling.json").write_text(json.dumps({"options": vars(options), **sweeps}, indent=2) + "\n")
    (RESULTS_DIR / "scaling.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {RESULTS_DIR}/scaling.{{json,md}} and scaling_{{catalog_size,history_length}}.png")


if __name__ == "__main__":
    main()
