"""The ``rdrec-hf`` command line: one thin dispatcher over the programs of `rdrec_hf.scripts`.

    rdrec-hf prepare   --dataset PATH --output DIR       raw data -> project dataset (leak-free ids)
    rdrec-hf distill   --config YAML [options]           teacher rationales for the reviews
    rdrec-hf train     --config YAML [options]           train the student (several seeds: --seeds)
    rdrec-hf evaluate  --config YAML [options]           the paper's protocol, with baselines
    rdrec-hf recommend --model_name_or_path DIR --user ID ...   top-k items for a user
    rdrec-hf recommend --model_name_or_path DIR --dataset D --users all|FILE --output recs.jsonl   every user, resumable
    rdrec-hf push      model|dataset PATH --repo_id ID   upload with its card (a model: with handler.py; --space ID)
    rdrec-hf export    model PATH --output DIR           an endpoint-ready model folder (handler.py)
    rdrec-hf export    space --model_name_or_path ID --output DIR   a Gradio Space folder (app.py, requirements.txt)
    rdrec-hf app       --model_name_or_path DIR [--dataset D]   a Gradio page: recommendations, explanations, baselines

Every command is a TrlParser of its dataclasses (``make_parser`` + ``main`` in rdrec_hf.scripts): ``--config
YAML`` sets its options, the command line overrides them, ``rdrec-hf COMMAND --help`` lists them. Options are
spelled as their fields (``--num_beams``; the dashed ``--num-beams`` works too); the old spellings ``--model``
(for ``--model_name_or_path``), ``prepare --num_negatives`` (``--num_stored_negatives``), ``--source`` and
``--seed`` (``--dataset``, ``--dataset_seed``) stay for one release.

A user error prints one message and no traceback: a bad option or combination exits with status 2 (argparse);
a missing file, an unknown id or a checkpoint of another model type with status 1 (``distill``, ``train`` and
``evaluate`` end it with ``sys.exit("error: ...")``, as their recipe scripts do). ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .scripts import DEBUG_HELP, EXIT_USER_ERROR, UserError, run_recipe

# command: (module of rdrec_hf.scripts, summary)
COMMANDS = {
    "prepare": ("prepare", "load raw data into a project dataset (saved to disk)"),
    "distill": ("distill", "distil reviews into rationales with a teacher LM (resumable)"),
    "train": ("train", "train the student on the four-task mixture (several seeds: --seeds)"),
    "evaluate": ("evaluation", "evaluate students (this project's protocol; the paper's on request) beside the leak "
                 "rule and popularity"),
    "recommend": ("recommend", "top-k items for a user id and/or a history"),
    "push": ("push", "upload a trained model or a project dataset to the Hub, with its card"),
    "export": ("export", "write an endpoint-ready model folder or a Gradio Space folder"),
    "app": ("app", "open a Gradio page on a trained student"),
    "serve": ("serve", "serve a trained student over HTTP (LitServe, dynamic batching)"),
}
# The programs behind recipes/*.py end a user error with sys.exit("error: ...") (their callers rely on it).
RECIPE_PROGRAMS = {"distill", "train", "evaluate"}

__all__ = ["COMMANDS", "EXIT_USER_ERROR", "UserError", "build_parser", "main", "subcommand_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: ``--debug`` and the command; each command's program parses the rest."""
    parser = argparse.ArgumentParser(
        prog="rdrec-hf", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )  # fmt: skip
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, (_, summary) in COMMANDS.items():
        commands.add_parser(command, help=summary, add_help=False)
    return parser


def subcommand_parser(command: str):
    """The parser (a ``TrlParser``) of ``command``, as ``rdrec-hf COMMAND`` parses it."""
    module = importlib.import_module(f".scripts.{COMMANDS[command][0]}", __package__)
    return module.make_parser(prog=f"rdrec-hf {command}")


def main(argv: list[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    module = importlib.import_module(f".scripts.{COMMANDS[args.command][0]}", __package__)
    result = run_recipe(subcommand_parser(args.command), module.main, rest, debug=args.debug,
                        exit_on_error=args.command in RECIPE_PROGRAMS)  # fmt: skip
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
