"""The ``rdrec-hf`` command line: thin subcommands over the library.

    rdrec-hf prepare   --dataset PATH --output DIR       raw data -> project dataset (leak-free ids)
    rdrec-hf distill   --config YAML [options]           teacher rationales for the reviews
    rdrec-hf train     --config YAML [options]           train the student (several seeds: --seeds)
    rdrec-hf evaluate  --config YAML [options]           the paper's protocol, with baselines
    rdrec-hf recommend --model DIR --user ID ...         top-k items for a user
    rdrec-hf recommend --model DIR --dataset D --users all|FILE --output recs.jsonl   every user, resumable
    rdrec-hf push      model|dataset PATH --repo-id ID   upload with its card (a model: with handler.py; --space ID)
    rdrec-hf export    model PATH --output DIR           an endpoint-ready model folder (handler.py)
    rdrec-hf export    space --model ID --output DIR     a Gradio Space folder (app.py, requirements.txt)
    rdrec-hf app       --model DIR [--dataset D]         a Gradio page: recommendations, explanations, baselines

A user error prints one message and no traceback: a bad option exits with status 2 (argparse), a missing
file, an unknown id or a checkpoint of another model type with status 1. ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from .data.schema import DEFAULT_NUM_NEGATIVES
from .devices import DEVICE_HELP, DTYPE_HELP, WeightsDType, resolve_device
from .models.item_decoding import ItemDecoding
from .scripts import CONFIG_HELP

EXIT_USER_ERROR = 1  # usage errors exit with 2, as argparse does
DEBUG_HELP = "show tracebacks for user errors too"


class UserError(Exception):
    """A problem with what the user asked for, reported without a traceback."""



def _device_option(text: str) -> str:
    """An argparse type: a device name `resolve_device` accepts on this machine (a usage error otherwise)."""
    try:
        resolve_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--dtype`` of a command that loads a student, checked as they are parsed."""
    parser.add_argument("--device", type=_device_option, help=DEVICE_HELP)
    parser.add_argument("--dtype", choices=[choice.value for choice in WeightsDType], default=WeightsDType.AUTO.value,
                        help=DTYPE_HELP)  # fmt: skip


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a usage error, exit 2, otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# ----------------------------------------------------------------------------------------------- prepare
def run_prepare(args) -> int:
    from dataclasses import fields

    from .data import save_rec_dataset
    from .data.loading import DataArguments, load_training_data, resolve_source
    from .data.schema import count_summary, get_metadata
    from .data.sources import SourceFormat

    output = Path(args.output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        if not (output / "dataset_dict.json").is_file():
            raise UserError(f"{output} already exists and is not a project dataset; choose another --output")
        if not args.overwrite:
            raise UserError(f"{output} already holds a dataset; pass --overwrite to replace it")
    data_args = DataArguments(**{option.name: getattr(args, option.name) for option in fields(DataArguments)})
    source, fmt = resolve_source(data_args.dataset, args.format)
    if fmt is SourceFormat.SAVED:
        raise UserError(f"{source} is already a project dataset: use it as it is")
    options = {"num_negatives": args.num_negatives}
    if args.min_interactions is not None:
        if fmt is not SourceFormat.AMAZON:
            raise UserError(f"--min_interactions applies to Amazon reviews; {source} is a {fmt.value} source")
        options["min_interactions"] = args.min_interactions
    data = load_training_data(data_args, fmt, **options)
    if output.exists():
        shutil.rmtree(output)  # a project dataset, replaced as --overwrite asked
    save_rec_dataset(data, args.output)
    metadata = get_metadata(data)
    print(count_summary(data))
    if metadata.skipped:
        print("skipped: " + ", ".join(f"{reason} {count}" for reason, count in sorted(metadata.skipped.items())))
    print(f"saved ({metadata.indexing.value} indexing, seed {metadata.seed}) to {args.output}")
    return 0


# ------------------------------------------------------------------------ distill / train / evaluate
# These three take the options of their programs in rdrec_hf.scripts (also behind recipes/*.py): a YAML
# with --config, the command line over it. `rdrec-hf train --help` lists them.
SCRIPTS = {
    "distill": ("distill", "distil reviews into rationales with a teacher LM (resumable)"),
    "train": ("train", "train the student on the four-task mixture (several seeds: --seeds)"),
    "evaluate": ("evaluation", "evaluate students (this project's protocol; the paper's on request) beside the leak "
                 "rule and popularity"),
}


def run_script(command: str, script_args: list[str], debug: bool = False) -> int:
    import importlib

    from .scripts import run_recipe

    module = importlib.import_module(f".scripts.{SCRIPTS[command][0]}", __package__)
    run_recipe(module.make_parser(prog=f"rdrec-hf {command}"), module.main, script_args, debug=debug)
    return 0


def load_student(path: str, device: str | None = None, dtype: str | None = None):
    """(model, tokenizer) of a trained student folder (full or LoRA) on ``device`` in ``dtype``; another model
    type is a user error."""
    from .checkpoints import load_trained_student

    try:
        return load_trained_student(path, device, dtype)
    except OSError as error:
        raise UserError(f"{path}: not a model checkpoint ({error})") from None


# --------------------------------------------------------------------------------------------- recommend
def run_recommend_users(args, model, tokenizer) -> int:
    """`--users all|FILE`: every listed user of `--dataset`, one JSON line each in `--output` (resumable)."""
    from .serving.batch import write_recommendations

    if args.dataset is None or args.output is None:
        raise UserError("--users needs --dataset (the users' histories) and --output (the JSON-lines file)")
    path = None if args.users == "all" else Path(args.users)
    if path is not None and not path.is_file():
        raise UserError(f"--users {args.users}: neither 'all' nor a file of user ids (one per line)")
    users = load_dataset_for(model, args)["users"]
    history_of = dict(zip(users["user_id"], users["items"]))
    if path is None:
        wanted = list(history_of)
    else:
        wanted = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        unknown = [user for user in wanted if user not in history_of]
        if unknown:
            raise UserError(f"{len(unknown)} user ids of {path} are not in {args.dataset}, e.g. {unknown[:5]}")
    summary = write_recommendations(
        model, tokenizer, [(user, history_of[user]) for user in wanted], args.output, k=args.k,
        num_beams=max(args.num_beams, args.k), batch_size=args.batch_size, decoding=args.decoding,
    )  # fmt: skip
    print(f"{args.output}: {summary}")
    return 0


def load_dataset_for(model, args):
    """``--dataset``, refused when its numbering is not the model's (ids would name other items)."""
    from .data import check_numbering, load_rec_dataset

    data = load_rec_dataset(args.dataset)
    check_numbering(getattr(model, "item_index", None), data, f"model {args.model}", f"dataset {args.dataset}")
    return data


def run_recommend(args) -> int:
    from .models.recommending import recommend

    model, tokenizer = load_student(args.model, args.device, args.dtype)
    if args.users is not None:
        if args.user is not None or args.history or args.explain or args.json:
            raise UserError("--users writes a file for many users; it takes no --user, --history, --explain or --json")
        return run_recommend_users(args, model, tokenizer)
    history = list(args.history or [])
    if args.user is not None and not history:
        if args.dataset is None:
            raise UserError("--user without --history needs --dataset to look the user's history up")
        users = load_dataset_for(model, args)["users"]
        matches = users.filter(lambda row: row["user_id"] == args.user)
        if matches.num_rows == 0:
            raise UserError(f"unknown user id {args.user!r} in {args.dataset}")
        history = matches[0]["items"]
    if not history:
        raise UserError("nothing to recommend from: give --user (with --dataset) or --history")
    try:
        recommendations = recommend(
            model, tokenizer, history, user_id=args.user, k=args.k, num_beams=max(args.num_beams, args.k),
            explain=args.explain, decoding=args.decoding,
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    if args.json:
        print(json.dumps([vars(r) for r in recommendations], indent=2))
        return 0
    who = f"user {args.user}" if args.user is not None else "an anonymous user"
    if not recommendations:
        print(f"nothing to recommend for {who}: the history holds all {len(model.item_index)} catalog items")
        return 0
    print(f"top {len(recommendations)} for {who} (history: {len(history)} items, last: {' '.join(history[-5:])})")
    for rank, rec in enumerate(recommendations, 1):
        line = f"{rank:>3}. item {rec.item_id:<8} ({rec.original_id})  log-likelihood {rec.score:.3f}"
        print(line + (f"\n       {rec.explanation}" if rec.explanation else ""))
    if len(recommendations) < args.k:
        print(f"only {len(recommendations)} valid catalog items remained outside the history")
    return 0


# ------------------------------------------------------------------------------------------ push / export
def _dataset_or_none(path: str | None):
    if path is None:
        return None
    from .data import load_rec_dataset

    return load_rec_dataset(path)


def run_push(args) -> int:
    path = Path(args.path)
    if not path.exists():
        raise UserError(f"{path}: no such folder")
    if args.kind == "dataset":
        from .data import load_rec_dataset, push_rec_dataset

        if args.space is not None:
            raise UserError("--space goes with `push model`")
        url = push_rec_dataset(load_rec_dataset(path), args.repo_id, private=args.private)
    else:
        from .data import upload_hub_folder
        from .serving.export import export_model, write_space

        load_student(str(path))  # a clear error before anything is uploaded
        dataset = _dataset_or_none(args.dataset)
        url = upload_hub_folder(lambda folder: export_model(path, folder, dataset, overwrite=True), args.repo_id,
                                private=args.private, repo_type="model")  # fmt: skip
        if args.space is not None:
            space_url = upload_hub_folder(
                lambda folder: write_space(folder, args.repo_id, args.space_dataset, overwrite=True), args.space,
                private=args.private, repo_type="space",
            )  # fmt: skip
            print(f"pushed the Space of {args.repo_id} to {space_url}")
    print(f"pushed {args.kind} {path} to {url}")
    return 0


def run_export(args) -> int:
    from .serving.export import export_model, write_space

    try:
        if args.kind == "model":
            if args.path is None:
                raise UserError("export model needs the model folder: rdrec-hf export model PATH --output DIR")
            folder = export_model(args.path, args.output, _dataset_or_none(args.dataset), overwrite=args.overwrite)
            print(f"endpoint-ready model folder (handler.py{', user_histories.json' if args.dataset else ''}): {folder}")
        else:
            if args.model is None:
                raise UserError("export space needs --model (the Hub model id the Space opens)")
            folder = write_space(args.output, args.model, args.dataset, args.requirement, overwrite=args.overwrite)
            print(f"Space folder: {folder} (run it here with: cd {folder} && python app.py)")
    except ImportError as error:
        raise UserError(str(error)) from None
    except FileExistsError as error:
        raise UserError(str(error)) from None
    return 0


# ---------------------------------------------------------------------------------------------------- app
def run_app(args) -> int:
    try:
        from .serving.app import main as app_main

        return app_main(args)
    except ImportError as error:
        raise UserError(f"{error} (the app needs Gradio: pip install 'rdrec-hf[app]')") from None


# ------------------------------------------------------------------------------------------------ parser
def data_options_parser() -> argparse.ArgumentParser:
    """The options of `DataArguments` (names, defaults, help) as the train and evaluate programs parse them."""
    from transformers import HfArgumentParser

    from .data.loading import DataArguments

    return HfArgumentParser(DataArguments, add_help=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rdrec-hf", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # The data options are DataArguments' (as in train and evaluate); the old spellings stay as aliases.
    prepare = commands.add_parser(
        "prepare", help="load raw data into a project dataset (saved to disk)", parents=[data_options_parser()],
        description="Load raw data into a project dataset. The data options are those of `rdrec-hf train` and "
        "`evaluate` (either `--dataset_seed` or `--dataset-seed`); `--source` and `--seed` are the old names of "
        "`--dataset` and `--dataset_seed`.",
    )  # fmt: skip
    prepare.add_argument("--source", dest="dataset", default=argparse.SUPPRESS, help="old name of --dataset")
    prepare.add_argument("--seed", dest="dataset_seed", type=int, default=argparse.SUPPRESS,
                         help="old name of --dataset_seed (in train, --seed is the training seed)")
    prepare.add_argument("--format", choices=["auto", "p5", "amazon"], default="auto", help="format of a raw source")
    prepare.add_argument("--output", required=True, help="folder to save the dataset in")
    prepare.add_argument("--num_negatives", "--num-negatives", type=positive_int, default=DEFAULT_NUM_NEGATIVES,
                         help="stored top-N negatives per user and split")
    prepare.add_argument("--min_interactions", "--min-interactions", type=positive_int,
                         help="Amazon reviews: fewest distinct items a user needs (default: the loader's, 3: one "
                         "training, one validation and one test item)")
    prepare.add_argument("--overwrite", action="store_true", help="replace the project dataset already in --output")
    prepare.set_defaults(handler=run_prepare)

    for command, (_, summary) in SCRIPTS.items():
        commands.add_parser(command, help=summary, add_help=False)  # its program parses the rest

    rec = commands.add_parser("recommend", help="top-k items for a user id and/or a history")
    rec.add_argument("--model", required=True, help="a trained student folder or Hub id")
    rec.add_argument("--user", help="project user id (its history is read from --dataset unless --history is given)")
    rec.add_argument("--history", nargs="+", help="item ids, oldest first")
    rec.add_argument("--dataset", help="project dataset holding the user's history")
    rec.add_argument("-k", type=positive_int, default=10, help="how many items")
    rec.add_argument("--num-beams", type=positive_int, default=20)
    rec.add_argument("--explain", action="store_true", help="generate an explanation for every item")
    rec.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rec.add_argument("--users", help="'all' or a file of user ids (one per line): rank every one of them from "
                     "--dataset into --output, resuming an interrupted file")  # fmt: skip
    rec.add_argument("--output", help="JSON-lines file of --users (one line per user: ids, original ids, scores)")
    rec.add_argument("--batch-size", type=positive_int,
                     help="users per decoding call with --users (default: sized for the device)")  # fmt: skip
    add_device_arguments(rec)
    rec.add_argument("--decoding", choices=[choice.value for choice in ItemDecoding],
                     help="beam (default for multi-token ids), exact (default for one-token ids) or transformers")
    rec.set_defaults(handler=run_recommend)

    push = commands.add_parser("push", help="upload a trained model or a project dataset to the Hub, with its card")
    push.add_argument("kind", choices=["model", "dataset"])
    push.add_argument("path", help="model folder or saved project dataset")
    push.add_argument("--repo-id", required=True)
    push.add_argument("--private", action="store_true")
    push.add_argument("--dataset", help="model: a project dataset whose users the endpoint knows by id "
                      "(writes user_histories.json)")  # fmt: skip
    push.add_argument("--space", help="model: also push a Gradio Space (this Space id) that opens the app on it")
    push.add_argument("--space-dataset", help="the Hub dataset id the Space picks users from")
    push.set_defaults(handler=run_push)

    export = commands.add_parser("export", help="write an endpoint-ready model folder or a Gradio Space folder")
    export.add_argument("kind", choices=["model", "space"])
    export.add_argument("path", nargs="?", help="model: the trained student folder")
    export.add_argument("--output", required=True, help="folder to write (must be empty unless --overwrite)")
    export.add_argument("--model", help="space: the model id (or folder) the Space opens")
    export.add_argument("--dataset", help="model: project dataset for user_histories.json; space: the dataset "
                        "id (or folder) of the user picker")  # fmt: skip
    export.add_argument("--requirement", help="space: the requirements.txt line that installs rdrec-hf "
                        "(default: rdrec-hf[app]==<this version>)")  # fmt: skip
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
    export.set_defaults(handler=run_export)

    from .serving.app import make_parser as make_app_parser

    commands.add_parser("app", help="open a Gradio page on a trained student", parents=[make_app_parser()],
                        add_help=False).set_defaults(handler=run_app)  # fmt: skip
    for name, command in commands.choices.items():
        if name not in SCRIPTS:  # the scripts' own parsers list both (rdrec_hf.scripts.run_recipe)
            command.add_argument("--config", metavar="YAML", default=argparse.SUPPRESS, help=CONFIG_HELP)
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def subcommand_parser(parser: argparse.ArgumentParser, name: str | None):
    """The parser of subcommand ``name``; with None, the mapping of every subcommand to its parser."""
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return choices if name is None else choices[name]


def config_tokens(command: argparse.ArgumentParser, path: str) -> list[str]:
    """The options of a ``--config`` YAML as command-line tokens (keys are option names without the dashes,
    ``-`` or ``_``); a missing file, bad YAML or an unknown key is a usage error (exit 2)."""
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        command.error(f"--config {path}: {error.strerror or error}")
    except yaml.YAMLError as error:
        command.error(f"--config {path}: not valid YAML ({str(error).splitlines()[0]})")
    if not isinstance(config, dict):
        command.error(f"--config {path}: must hold a YAML mapping of option: value")
    tokens = []
    for key, value in config.items():
        option = next((o for o in (f"--{str(key).replace('_', '-')}", f"--{key}", f"-{key}")
                       if o in command._option_string_actions and o not in ("--config", "-h", "--help")), None)  # fmt: skip
        if option is None:
            command.error(f"--config {path}: unknown key {key!r}")
        if command._option_string_actions[option].nargs == 0:  # a flag
            tokens += [option] if value else []
        else:
            tokens += [option, *map(str, value if isinstance(value, list) else [value])]
    return tokens


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((token for token in argv if token in subcommand_parser(parser, None)), None)
    if command is not None and command not in SCRIPTS and "--config" in argv[:-1]:
        # The file's options go first, so the command line overrides them.
        at = argv.index("--config")
        path, argv = argv[at + 1], argv[:at] + argv[at + 2 :]
        position = argv.index(command) + 1
        argv = argv[:position] + config_tokens(subcommand_parser(parser, command), path) + argv[position:]
    args, rest = parser.parse_known_args(argv)
    if args.command in SCRIPTS:
        return run_script(args.command, rest, args.debug)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    # Log lines go to stderr: stdout carries the results (`recommend --json` prints JSON only).
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
