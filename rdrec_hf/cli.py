"""The ``rdrec-hf`` command line: thin subcommands over the library.

    rdrec-hf prepare   --source PATH --output DIR        raw data -> project dataset
    rdrec-hf distill   --config YAML [options]           teacher rationales for the reviews
    rdrec-hf train     --config YAML [options]           train the student (several seeds: --seeds)
    rdrec-hf evaluate  --model DIR --dataset DIR ...     the paper's protocol, with baselines
    rdrec-hf recommend --model DIR --user ID ...         top-k items for a user
    rdrec-hf push      model|dataset PATH --repo-id ID   upload with its card

A user error (a missing file, an unknown id, a bad option) prints one message and exits with status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXIT_USER_ERROR = 2
logger = logging.getLogger("rdrec_hf.cli")


class UserError(Exception):
    """A problem with what the user asked for, reported without a traceback."""


# ----------------------------------------------------------------------------------------------- prepare
def detect_source_format(source: Path) -> str:
    """``"p5"`` for a P5/POD/RDRec folder, ``"amazon"`` for Amazon review JSON lines, ``"saved"`` for a
    project dataset; anything else is a user error naming the formats that are known."""
    if source.is_dir():
        if (source / "sequential.txt").is_file():
            return "p5"
        if (source / "dataset_dict.json").is_file():
            return "saved"
        raise UserError(
            f"{source}: not a known data folder (a P5 folder has sequential.txt and datamaps.json; "
            "a project dataset has dataset_dict.json)"
        )
    if source.is_file():
        if source.name.endswith((".json", ".json.gz", ".jsonl", ".jsonl.gz")):
            return "amazon"
        raise UserError(f"{source}: not a known data file (Amazon review JSON lines: .json or .json.gz)")
    raise UserError(f"{source}: no such file or folder")


def run_prepare(args) -> int:
    from .data import load_amazon_reviews, load_p5_dataset, save_rec_dataset
    from .data.schema import count_summary, get_metadata

    source = Path(args.source)
    fmt = detect_source_format(source) if args.format == "auto" else args.format
    options = dict(indexing=args.indexing, seed=args.seed, num_negatives=args.num_negatives)
    if fmt == "p5":
        data = load_p5_dataset(source, **options)
    elif fmt == "amazon":
        if args.min_interactions is not None:
            options["min_interactions"] = args.min_interactions
        data = load_amazon_reviews(source, **options)
    else:
        raise UserError(f"{source} is already a project dataset: use it as it is")
    save_rec_dataset(data, args.output)
    metadata = get_metadata(data)
    print(count_summary(data))
    if metadata.skipped:
        print("skipped: " + ", ".join(f"{reason} {count}" for reason, count in sorted(metadata.skipped.items())))
    print(f"saved ({metadata.indexing.value} indexing, seed {metadata.seed}) to {args.output}")
    return 0


# ---------------------------------------------------------------------------------------------- evaluate
def load_student(path: str):
    """Load an RDRec checkpoint (weights, catalog, tokenizer); another model type is a user error."""
    from transformers import AutoConfig

    from .data import load_tokenizer
    from .models import RDRecForConditionalGeneration

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a model checkpoint ({error})") from None
    if config.model_type != "rdrec":
        raise UserError(f"{path}: a '{config.model_type}' checkpoint, not an RDRec student (model_type 'rdrec')")
    return RDRecForConditionalGeneration.from_pretrained(path), load_tokenizer(path)


def run_evaluate(args) -> int:
    from .data import get_metadata, load_rec_dataset
    from .evaluation import EvaluationConfig, aggregate_seeds, evaluate_model, write_report

    data = load_rec_dataset(args.dataset)
    config = EvaluationConfig(
        tasks=args.tasks, split=args.split, num_beams=args.num_beams, batch_size=args.batch_size,
        max_users=args.max_users, seed=args.seed, num_samples=args.num_samples,
    )
    runs = []
    for model_path in args.model:
        model, tokenizer = load_student(model_path)
        runs.append(evaluate_model(model, data, tokenizer, config))
    results = runs[0] if len(runs) == 1 else aggregate_seeds(runs)
    metadata = get_metadata(data)
    notes = [
        f"dataset: {args.dataset} ({metadata.indexing.value} item indexing, seed {metadata.seed})",
        f"models: {', '.join(args.model)}" + (" (mean and std over these runs)" if len(runs) > 1 else ""),
        f"split: {config.split}; users: {'all' if config.max_users is None else f'seeded sample of {config.max_users}'}",
    ]
    paths = write_report(results, args.output_dir, notes=notes)
    print(paths["report"].read_text(encoding="utf-8"))
    return 0


# --------------------------------------------------------------------------------------------- recommend
def run_recommend(args) -> int:
    from .data import load_rec_dataset
    from .inference import recommend

    model, tokenizer = load_student(args.model)
    history = list(args.history or [])
    if args.user is not None and not history:
        if args.dataset is None:
            raise UserError("--user without --history needs --dataset to look the user's history up")
        users = load_rec_dataset(args.dataset)["users"]
        matches = users.filter(lambda row: row["user_id"] == args.user)
        if matches.num_rows == 0:
            raise UserError(f"unknown user id {args.user!r} in {args.dataset}")
        history = matches[0]["items"]
    if not history:
        raise UserError("nothing to recommend from: give --user (with --dataset) or --history")
    try:
        recommendations = recommend(
            model, tokenizer, history, user_id=args.user, k=args.k, num_beams=max(args.num_beams, args.k),
            explain=args.explain,
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    if args.json:
        print(json.dumps([vars(r) for r in recommendations], indent=2))
        return 0
    who = f"user {args.user}" if args.user is not None else "an anonymous user"
    print(f"top {len(recommendations)} for {who} (history: {len(history)} items, last: {' '.join(history[-5:])})")
    for rank, rec in enumerate(recommendations, 1):
        line = f"{rank:>3}. item {rec.item_id:<8} ({rec.original_id})  log-likelihood {rec.score:.3f}"
        print(line + (f"\n       {rec.explanation}" if rec.explanation else ""))
    if len(recommendations) < args.k:
        print(f"only {len(recommendations)} valid catalog items remained outside the history")
    return 0


# -------------------------------------------------------------------------------------------------- push
def run_push(args) -> int:
    path = Path(args.path)
    if not path.exists():
        raise UserError(f"{path}: no such folder")
    if args.kind == "dataset":
        from .data import load_rec_dataset, push_rec_dataset

        url = push_rec_dataset(load_rec_dataset(path), args.repo_id, private=args.private)
    else:
        model, tokenizer = load_student(str(path))
        readme = path / "README.md"
        model.push_to_hub(args.repo_id, private=args.private)
        tokenizer.push_to_hub(args.repo_id, private=args.private)
        if readme.is_file():
            from huggingface_hub import HfApi

            HfApi().upload_file(path_or_fileobj=str(readme), path_in_repo="README.md", repo_id=args.repo_id)
        url = f"https://huggingface.co/{args.repo_id}"
    print(f"pushed {args.kind} {path} to {url}")
    return 0


# ------------------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rdrec-hf", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors too")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prepare = commands.add_parser("prepare", help="load raw data into a project dataset (saved to disk)")
    prepare.add_argument("--source", required=True, help="P5 folder (sequential.txt) or Amazon reviews (.json/.json.gz)")
    prepare.add_argument("--format", choices=["auto", "p5", "amazon"], default="auto")
    prepare.add_argument("--output", required=True, help="folder to save the dataset in")
    prepare.add_argument(
        "--indexing", choices=["random", "sequential"], default="random",
        help="item numbering: random (leak-free, default) or sequential (the paper's, leaks the test item)",
    )
    prepare.add_argument("--seed", type=int, default=0, help="seed of the item permutation and of the negatives")
    prepare.add_argument("--num-negatives", type=int, default=99, help="stored top-N negatives per user and split")
    prepare.add_argument("--min-interactions", type=int, help="Amazon reviews: fewest distinct items a user needs "
                         "(default: the loader's, 3: one training, one validation and one test item)")
    prepare.set_defaults(handler=run_prepare)

    evaluate = commands.add_parser("evaluate", help="evaluate students as the paper does, with baselines")
    evaluate.add_argument("--model", action="append", required=True,
                          help="a trained student folder; repeat for several seeds (mean and std are reported)")
    evaluate.add_argument("--dataset", required=True, help="the project dataset the students were trained on")
    evaluate.add_argument("--output-dir", required=True, help="where metrics.json and report.md go")
    evaluate.add_argument("--tasks", nargs="+", default=["sequential", "topn", "explanation", "rationale"])
    evaluate.add_argument("--split", choices=["test", "validation"], default="test")
    evaluate.add_argument("--num-beams", type=int, default=20)
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--max-users", type=int, default=None, help="evaluate a seeded sample of users")
    evaluate.add_argument("--seed", type=int, default=42, help="seed of the user sample")
    evaluate.add_argument("--num-samples", type=int, default=3, help="example predictions per task in the report")
    evaluate.set_defaults(handler=run_evaluate)

    rec = commands.add_parser("recommend", help="top-k items for a user id and/or a history")
    rec.add_argument("--model", required=True, help="a trained student folder or Hub id")
    rec.add_argument("--user", help="project user id (its history is read from --dataset unless --history is given)")
    rec.add_argument("--history", nargs="+", help="item ids, oldest first")
    rec.add_argument("--dataset", help="project dataset holding the user's history")
    rec.add_argument("-k", type=int, default=10)
    rec.add_argument("--num-beams", type=int, default=20)
    rec.add_argument("--explain", action="store_true", help="generate an explanation for every item")
    rec.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rec.set_defaults(handler=run_recommend)

    push = commands.add_parser("push", help="upload a trained model or a project dataset to the Hub, with its card")
    push.add_argument("kind", choices=["model", "dataset"])
    push.add_argument("path", help="model folder or saved project dataset")
    push.add_argument("--repo-id", required=True)
    push.add_argument("--private", action="store_true")
    push.set_defaults(handler=run_push)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return args.handler(args)
    except (UserError, ValueError, OSError) as error:
        # Library layers raise ValueError / FileNotFoundError (DataFormatError names file and line).
        if args.debug:
            raise
        print(f"rdrec-hf {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
