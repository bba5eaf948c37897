"""Top-k item recommendation: the trie beam search written for item ids against transformers' beam search with
the trie as a LogitsProcessor (the project's old path), the reference approach (unconstrained beams, parse,
discard invalid ids) and exact rankings, on the same inputs, in one run, interleaved so that load on the
shared machine affects every method alike:

    .venv/bin/python benchmarks/bench_generation.py                       # all tables, 2 threads
    .venv/bin/python benchmarks/bench_generation.py --tables main --repeats 5

Inputs: the first users of the real beauty split (their history without the last two items), rendered with
the evaluation prompt of the sequential task. The model has t5-small dimensions and random weights (no
pretrained T5 weights are reachable offline), so throughput is representative while the valid share of
unconstrained beams is a lower bound (a trained model produces more well-formed ids). Tables:

- ``main``: batch 32, text ids (random numbering) and, for exact one-step ranking, the same model with one
  token per item (independent ids, 12,101 new vocabulary rows);
- ``batch``: batch sizes 1, 8, 32 and 128;
- ``topn``: the top-N task, 100 candidates per user: beams against exact scoring of every candidate;
- the compute bound: FLOPs per user (encoder, decoder rows actually decoded, output layer) against the
  measured speed of a matrix multiply of the output layer's shape.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time

import torch
from tqdm import tqdm

from rdrec_hf import Task
from rdrec_hf.data.tokenization import load_tokenizer
from rdrec_hf.models.prompting import encode_prompts, prompt_for
from rdrec_hf.models import ItemIdScheme, ItemIndex, RDRecConfig, RDRecForConditionalGeneration
from rdrec_hf.paths import p5_dataset_dir, t5_tokenizer_dir

TABLES = ("main", "batch", "topn")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="beauty", help="P5 split whose catalog and users are used")
    parser.add_argument("--preset", default="t5-small", help="RDRecConfig size preset")
    parser.add_argument("--batch-size", type=int, default=32, help="users per generate() call (main, topn)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 128], help="the batch table")
    parser.add_argument("--reference-max-batch", type=int, default=32,
                        help="largest batch of the batch table that also runs the (slow) reference approach")
    parser.add_argument("--num-beams", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=10, help="ids returned per user")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (after one warm-up)")
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES))
    parser.add_argument("--device", default="cpu", help="torch device (the GPU script passes cuda)")
    parser.add_argument("--seed", type=int, default=0, help="model initialisation seed")
    return parser


def first_users(dataset_dir, count: int) -> list[tuple[str, list[str]]]:
    """`(user_id, training history)` of the first `count` lines of sequential.txt (leave-one-out: drop 2)."""
    users = []
    with open(dataset_dir / "sequential.txt", encoding="utf-8") as lines:
        for line in lines:
            user_id, *items = line.split()
            users.append((user_id, items[:-2]))
            if len(users) == count:
                break
    return users


def parse_generated(texts: list[str], histories: list[list[str]], catalog: set[str], top_k: int):
    """The reference's post-processing: keep generated strings that are unseen catalog ids, drop the rest."""
    kept = []
    for user, history in enumerate(histories):
        seen, ids = set(history), []
        for text in texts[user * top_k : (user + 1) * top_k]:
            candidate = text.strip()
            if candidate in catalog and candidate not in seen:
                seen.add(candidate)
                ids.append(candidate)
        kept.append(ids)
    return kept


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(methods: dict, repeats: int, device: torch.device, desc: str):
    """Median seconds and the last output of each method; one warm-up round, methods interleaved per round."""
    seconds = {name: [] for name in methods}
    returned = {}
    for repeat in tqdm(range(repeats + 1), desc=f"{desc} (first round is warm-up)", leave=False):
        for name, method in methods.items():
            synchronize(device)
            started = time.perf_counter()
            returned[name] = method()
            synchronize(device)
            if repeat:
                seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}, returned


class Bench:
    """The models, catalogs and user batches shared by the tables."""

    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        dataset_dir = p5_dataset_dir(args.dataset)
        num_items = len(json.loads((dataset_dir / "datamaps.json").read_text(encoding="utf-8"))["id2item"])
        self.catalog = [str(item) for item in range(1, num_items + 1)]
        self.tokenizer = load_tokenizer(t5_tokenizer_dir())
        started = time.perf_counter()
        self.text_index = ItemIndex.from_catalog(self.catalog, self.tokenizer, scheme="random")
        self.index_seconds = time.perf_counter() - started
        self.independent_tokenizer = copy.deepcopy(self.tokenizer)
        ItemIdScheme("independent").add_tokens(self.independent_tokenizer, self.catalog)
        self.independent_index = ItemIndex.from_catalog(self.catalog, self.independent_tokenizer, scheme="independent")
        with torch.random.fork_rng():
            torch.manual_seed(args.seed)
            self.model = RDRecForConditionalGeneration(RDRecConfig.from_preset(args.preset)).eval().to(self.device)
            self.independent_model = RDRecForConditionalGeneration(
                RDRecConfig.from_preset(args.preset, vocab_size=self.independent_index.vocab_size)
            ).eval().to(self.device)
        self.users = first_users(dataset_dir, max([args.batch_size, *args.batch_sizes]))

    def batch(self, count: int, scheme: ItemIdScheme, tokenizer, candidates=None) -> dict:
        users = self.users[:count]
        if candidates is None:
            prompts = [prompt_for(Task.SEQUENTIAL, user_id=user, history=history, scheme=scheme) for user, history in users]
            task = Task.SEQUENTIAL
        else:
            prompts = [prompt_for(Task.TOPN, user_id=user, candidates=row, scheme=scheme)
                       for (user, _), row in zip(users, candidates)]  # fmt: skip
            task = Task.TOPN
        batch = encode_prompts(tokenizer, prompts, max_length=512, return_tensors="pt")
        batch["task_id"] = torch.full((len(users),), int(task))
        return {name: value.to(self.device) for name, value in batch.items()}

    def methods(self, count: int, with_reference: bool = True, with_transformers: bool = True) -> dict:
        """The sequential-task methods for the first `count` users."""
        args, index = self.args, self.text_index
        histories = [history for _, history in self.users[:count]]
        text_batch = self.batch(count, index.scheme, self.tokenizer)
        independent_batch = self.batch(count, self.independent_index.scheme, self.independent_tokenizer)
        beams = dict(num_beams=args.num_beams, num_return_sequences=args.top_k)

        def items(model, batch, item_index, decoding):
            return lambda: model.generate(**batch, item_index=item_index, exclude_items=histories, decoding=decoding,
                                          **beams).item_ids  # fmt: skip

        def reference() -> list[list[str]]:
            # Random weights end unconstrained beams early (EOS after a token or two), which a trained model does
            # not: decoding is forced to the ids' length, to compare the same amount of decoder work.
            sequences = self.model.generate(
                **text_batch, max_new_tokens=index.max_length, min_new_tokens=index.max_length - 1, **beams
            )
            texts = self.tokenizer.batch_decode(sequences, skip_special_tokens=True)
            return parse_generated(texts, histories, set(self.catalog), args.top_k)

        methods = {}
        if with_transformers:
            methods["transformers beam search + trie LogitsProcessor (the old path)"] = items(
                self.model, text_batch, index, "transformers")
        methods["trie beam search (item_decoding, text ids)"] = items(self.model, text_batch, index, "beam")
        if with_reference:
            methods[f"reference: unconstrained beams, {index.max_length - 1} steps forced, discard invalid"] = reference
        methods["exact one-step ranking (independent ids)"] = items(
            self.independent_model, independent_batch, self.independent_index, "exact")
        return methods

    def valid(self, returned: list[list[str]], count: int) -> str:
        histories = [set(history) for _, history in self.users[:count]]
        valid = sum(sum(1 for item in ids if item in self.text_index and item not in history)
                    for ids, history in zip(returned, histories))  # fmt: skip
        asked = count * self.args.top_k
        return f"{valid}/{asked} ({valid / asked:.1%})"


def main_table(bench: Bench) -> dict:
    args = bench.args
    methods = bench.methods(args.batch_size)
    medians, returned = time_interleaved(methods, args.repeats, bench.device, "main table")
    print(f"\n### Batch {args.batch_size}, top-{args.top_k} of {args.num_beams} beams, history excluded\n")
    print("| method | median s / batch | users/s | valid unseen ids returned |")
    print("|---|---:|---:|---|")
    for name, median in medians.items():
        print(f"| {name} | {median:.2f} | {args.batch_size / median:.2f} | {bench.valid(returned[name], args.batch_size)} |")
    names = list(medians)
    old, ours, reference, exact = (medians[name] for name in names)
    print(f"\nusers/s ratios: trie beam search / reference {reference / ours:.2f}x, / old path {old / ours:.2f}x; "
          f"exact one-step / reference {reference / exact:.2f}x")  # fmt: skip
    same = returned[names[0]] == returned[names[1]]
    print(f"trie beam search returns the old path's items: {same}")
    return {"medians": medians}


def batch_table(bench: Bench) -> None:
    args = bench.args
    print(f"\n### Batch sizes (top-{args.top_k} of {args.num_beams} beams; users/s, median of {args.repeats})\n")
    rows = {}
    for size in args.batch_sizes:
        methods = bench.methods(size, with_reference=size <= args.reference_max_batch, with_transformers=False)
        medians, _ = time_interleaved(methods, args.repeats, bench.device, f"batch {size}")
        rows[size] = {name: size / median for name, median in medians.items()}
    names = list(dict.fromkeys(name for row in rows.values() for name in row))
    print("| batch | " + " | ".join(names) + " | trie beams / reference |")
    print("|---:|" + "---:|" * (len(names) + 1))
    for size, row in rows.items():
        cells = [f"{row[name]:.2f}" if name in row else "not run" for name in names]
        ratio = next((row["trie beam search (item_decoding, text ids)"] / value for name, value in row.items()
                      if name.startswith("reference")), None)  # fmt: skip
        print(f"| {size} | " + " | ".join(cells) + f" | {f'{ratio:.2f}x' if ratio else 'not run'} |")


def topn_table(bench: Bench) -> None:
    args = bench.args
    count = args.batch_size
    generator = torch.Generator().manual_seed(args.seed)
    candidates = [[str(int(item) + 1) for item in torch.randperm(len(bench.catalog), generator=generator)[:100]]
                  for _ in range(count)]  # fmt: skip
    batch = bench.batch(count, bench.text_index.scheme, bench.tokenizer, candidates)
    methods = {
        decoding: (lambda decoding=decoding: bench.model.generate(
            **batch, item_index=bench.text_index, candidate_items=candidates, num_beams=args.num_beams,
            num_return_sequences=args.top_k, decoding=decoding).item_ids)
        for decoding in ("transformers", "beam", "exact")
    }  # fmt: skip
    medians, returned = time_interleaved(methods, args.repeats, bench.device, "top-N table")
    print(f"\n### Top-N: 100 random candidates per user, batch {count}, top-{args.top_k}\n")
    print("| decoding | median s / batch | users/s | same top-10 as exact |")
    print("|---|---:|---:|---|")
    for name, median in medians.items():
        same = sum(a == b for a, b in zip(returned[name], returned["exact"]))
        print(f"| {name} | {median:.2f} | {count / median:.2f} | {same}/{count} users |")


def compute_bound(bench: Bench) -> None:
    """FLOPs of one user's recommendation against the measured speed of the output layer's matrix multiply."""
    config, args = bench.model.config, bench.args
    batch = bench.batch(args.batch_size, bench.text_index.scheme, bench.tokenizer)
    tokens = float(batch["attention_mask"].sum(1).float().mean()) + config.prompts_per_task
    d, f, inner = config.d_model, config.d_ff, config.num_heads * config.d_kv
    encoder_per_token = config.num_layers * 2 * (4 * d * inner + 2 * d * f)
    cross_keys = config.num_decoder_layers * 2 * (2 * d * inner) * tokens
    rows = 1 + args.num_beams * (bench.text_index.max_length - 1)  # first step: one row per user
    decoder_per_row = config.num_decoder_layers * 2 * (4 * d * inner + 2 * d * inner + 2 * d * f)
    output_per_row = 2 * d * config.vocab_size
    flops = encoder_per_token * tokens + cross_keys + rows * (decoder_per_row + output_per_row)
    a = torch.randn(args.num_beams * args.batch_size, d, device=bench.device)
    b = torch.randn(d, config.vocab_size, device=bench.device)
    seconds = []
    for _ in range(6):
        synchronize(bench.device)
        started = time.perf_counter()
        a @ b
        synchronize(bench.device)
        seconds.append(time.perf_counter() - started)
    speed = 2 * a.shape[0] * d * config.vocab_size / statistics.median(seconds[1:])
    print(f"\ncompute bound: {flops / 1e9:.2f} GFLOP per user ({tokens:.0f} prompt tokens incl. soft prompts, "
          f"{rows} decoder rows) at {speed / 1e9:.0f} GFLOP/s measured ({a.shape[0]}x{d} @ {d}x{config.vocab_size}) "
          f"= {speed / flops:.1f} users/s")  # fmt: skip


def main(args) -> None:
    torch.set_num_threads(args.threads)
    bench = Bench(args)
    print(
        f"{args.preset} dims, {args.dataset} catalog of {len(bench.catalog):,} items (text-id trie: "
        f"{bench.text_index.num_nodes:,} nodes, ids up to {bench.text_index.max_length} tokens, built in "
        f"{bench.index_seconds:.1f} s), {args.threads} threads, {args.repeats} timed repeats, device "
        f"{bench.device.type}; torch {torch.__version__}, {platform.processor() or platform.machine()}"
    )
    if "main" in args.tables:
        main_table(bench)
    if "batch" in args.tables:
        batch_table(bench)
    if "topn" in args.tables:
        topn_table(bench)
    compute_bound(bench)


if __name__ == "__main__":
    main(make_parser().parse_args())
