"""Top-k item generation: trie-constrained beam search vs unconstrained beam search + discarding invalid ids.

The reference RDRec/POD code runs plain beam search, parses the generated strings and throws away what is
not a catalog item (then fills the gaps at random). This script measures both ways on the same inputs, in
one run, interleaved so that load on the shared machine affects both alike:

    .venv/bin/python benchmarks/bench_generation.py            # t5-small dims, beauty catalog, batch 32
    .venv/bin/python benchmarks/bench_generation.py --repeats 5 --threads 2

Inputs: the first `--batch-size` users of the real beauty split (their history without the last two items),
rendered with the evaluation prompt of the sequential task. The model has t5-small dimensions and random
weights (no pretrained T5 weights are reachable offline), so throughput is representative while the valid
share of unconstrained beams is a lower bound (a trained model produces more well-formed ids).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from tqdm import tqdm

from rdrec_hf import Task
from rdrec_hf.data.templates import prompt_for
from rdrec_hf.data.tokenization import encode_prompts, load_tokenizer
from rdrec_hf.models import ItemIndex, RDRecConfig, RDRecForConditionalGeneration
from rdrec_hf.paths import p5_dataset_dir, t5_tokenizer_dir


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="beauty", help="P5 split whose catalog and users are used")
    parser.add_argument("--preset", default="t5-small", help="RDRecConfig size preset")
    parser.add_argument("--batch-size", type=int, default=32, help="users per generate() call")
    parser.add_argument("--num-beams", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=10, help="ids returned per user")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (after one warm-up)")
    parser.add_argument("--seed", type=int, default=0, help="model initialisation seed")
    return parser.parse_args()


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


def parse_generated(texts: list[str], histories: list[list[str]], catalog: set[str], top_k: int, num_beams: int):
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


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    dataset_dir = p5_dataset_dir(args.dataset)
    num_items = len(json.loads((dataset_dir / "datamaps.json").read_text(encoding="utf-8"))["id2item"])
    catalog = [str(item) for item in range(1, num_items + 1)]
    tokenizer = load_tokenizer(t5_tokenizer_dir())

    started = time.perf_counter()
    index = ItemIndex.from_catalog(catalog, tokenizer)
    index_seconds = time.perf_counter() - started
    with torch.random.fork_rng():
        torch.manual_seed(args.seed)
        model = RDRecForConditionalGeneration(RDRecConfig.from_preset(args.preset)).eval()

    users = first_users(dataset_dir, args.batch_size)
    histories = [history for _, history in users]
    prompts = [prompt_for(Task.SEQUENTIAL, user_id=user_id, history=history) for user_id, history in users]
    batch = encode_prompts(tokenizer, prompts, max_length=512, return_tensors="pt")
    batch["task_id"] = torch.full((len(users),), int(Task.SEQUENTIAL))
    beams = dict(num_beams=args.num_beams, num_return_sequences=args.top_k)

    def constrained() -> list[list[str]]:
        return model.generate(**batch, item_index=index, exclude_items=histories, **beams).item_ids

    def unconstrained(min_new_tokens: int = 0) -> list[list[str]]:
        sequences = model.generate(**batch, max_new_tokens=index.max_length, min_new_tokens=min_new_tokens, **beams)
        texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
        return parse_generated(texts, histories, set(catalog), args.top_k, args.num_beams)

    # Random weights end unconstrained beams early (EOS after a token or two), which a trained model does not:
    # the third row forces the decoding steps that real ids take, to compare the same amount of decoder work.
    methods = {
        "constrained (trie LogitsProcessor)": constrained,
        "unconstrained + discard invalid": unconstrained,
        f"unconstrained, {index.max_length - 1} steps forced, + discard invalid": lambda: unconstrained(index.max_length - 1),
    }
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    returned: dict[str, list[list[str]]] = {}
    for repeat in tqdm(range(args.repeats + 1), desc="repeats (first is warm-up)"):
        for name, method in methods.items():
            started = time.perf_counter()
            returned[name] = method()
            if repeat:
                seconds[name].append(time.perf_counter() - started)

    asked = len(users) * args.top_k
    print(
        f"\n{args.preset} dims, {args.dataset} catalog of {num_items:,} items (trie: {index.num_nodes:,} nodes, "
        f"built in {index_seconds:.1f} s), batch {len(users)}, top-{args.top_k} of {args.num_beams} beams, "
        f"{args.threads} threads, {args.repeats} timed repeats; torch {torch.__version__}, {platform.processor() or platform.machine()}\n"
    )
    print("| method | median s / batch | users/s | valid unseen ids returned |")
    print("|---|---|---|---|")
    for name in methods:
        median = statistics.median(seconds[name])
        valid = sum(
            sum(1 for item in ids if item in index and item not in set(history))
            for ids, history in zip(returned[name], histories)
        )
        print(f"| {name} | {median:.2f} | {len(users) / median:.2f} | {valid}/{asked} ({valid / asked:.1%}) |")
    constrained_median, *baseline_medians = (statistics.median(seconds[name]) for name in methods)
    ratios = ", ".join(f"{median / constrained_median:.2f}" for median in baseline_medians)
    print(f"\nspeed ratio constrained / each unconstrained row (users/s): {ratios}")


if __name__ == "__main__":
    main()
