"""The programs behind every ``rdrec-hf`` command and ``recipes/*.py`` (as ``trl/scripts`` is for TRL).

Each module (prepare, distill, train, evaluation, recommend, push, export, app) has ``make_parser(prog=None)``
(a ``TrlParser`` of its dataclasses: ``--config`` YAML, the command line over it) and ``main(*arguments)``;
the CLI (`rdrec_hf.cli`) and the recipe scripts are thin callers of both through :func:`run_recipe`.

Options are spelled as their dataclass fields (``--model_name_or_path``, ``--num_beams``); HfArgumentParser
also takes the dashed spelling of each (``--num-beams``). Older names of a few options stay as aliases for one
release (``old_spelling``: their help says so), and a ``--config`` YAML may use them as keys too.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import field

from trl import TrlParser

from ..devices import DEVICE_HELP, DTYPE_HELP, WeightsDType, resolve_device, resolve_dtype

EXIT_USER_ERROR = 1  # usage errors exit with 2, as argparse does
CONFIG_HELP = "YAML file of options (keys: the option names without dashes); the command line overrides it"
DEBUG_HELP = "show tracebacks for user errors too"


class UserError(ValueError):
    """A problem with what the user asked for, reported without a traceback (``run_recipe``)."""


class StandardStreamHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` or ``sys.stderr`` as it is when a record is emitted, not as it was when the
    handler was made: a caller that replaces the stream later (a notebook, pytest's capture, ``redirect_stdout``)
    gets the lines, and a replaced stream that was closed since is never written to."""

    def __init__(self, name: str):
        super().__init__()
        self.name_of_stream = name

    @property
    def stream(self):
        return getattr(sys, self.name_of_stream)

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns one; the property always reads sys
        pass


def configure_logging(level: int = logging.INFO, *, results_on_stdout: bool = False) -> None:
    """Timestamped log lines for the project at ``level``: the one logging setup of every command.

    The training programs log to stdout, with datasets and transformers at ``level`` too. A command whose
    stdout carries its results (``results_on_stdout``: ``recommend --json`` prints JSON only) logs to stderr,
    leaves the libraries' verbosity alone and keeps handlers already installed (a caller's log capture); an
    earlier command's handler in the same process is replaced, so ``--json`` output stays JSON.
    """
    import datasets
    import transformers

    root = logging.getLogger()
    for handler in [handler for handler in root.handlers if isinstance(handler, StandardStreamHandler)]:
        root.removeHandler(handler)  # an earlier command's, in this process: this command picks the stream
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
        handlers=[StandardStreamHandler("stderr" if results_on_stdout else "stdout")], level=level,
        force=not results_on_stdout,
    )  # fmt: skip
    logging.getLogger("rdrec_hf").setLevel(level)
    if not results_on_stdout:
        datasets.utils.logging.set_verbosity(level)
        transformers.utils.logging.set_verbosity(level)


# ------------------------------------------------------------------------------------------ dataclass fields
def old_spelling(help: str, *aliases: str) -> str:
    """``help`` of an option that also answers to its old spelling(s) ``aliases``, kept for one release."""
    return f"{help} (old spelling {', '.join(aliases)}: kept for one release)"


def option(default=None, help: str = "", aliases: Sequence[str] = (), **metadata):
    """A dataclass field of a command's option: ``help`` (with the old ``aliases`` named in it) and any
    further ``add_argument`` keyword (``choices``) in its metadata; no ``default`` given means required."""
    metadata = {"help": old_spelling(help, *aliases) if aliases else help, **metadata}
    if aliases:
        metadata["aliases"] = list(aliases)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(metadata=metadata) if default is ... else field(default=default, metadata=metadata)


def device_option():
    return option(None, help=f"Device the student runs on: {DEVICE_HELP}.")


def dtype_option():
    return option(WeightsDType.AUTO.value, help=f"The student's {DTYPE_HELP}.",
                  choices=[choice.value for choice in WeightsDType])


def check_device(device: str | None, dtype) -> str:
    """A bad ``--device`` (or a GPU this machine lacks) or ``--dtype`` raises ``ValueError`` (a usage error in
    ``__post_init__``); returns the dtype's name."""
    resolve_device(device)
    resolve_dtype(dtype)
    return WeightsDType(dtype).value


def check_positive(value: int | None, name: str) -> None:
    if value is not None and value < 1:
        raise ValueError(f"argument {name}: must be at least 1, got {value}")


# -------------------------------------------------------------------------------------------------- parser
class CommandParser(TrlParser):
    """A ``TrlParser`` with what the serving commands add to it.

    ``aliases``: extra option strings of fields of dataclasses owned elsewhere (``{"--dataset": ["--source"]}``;
    a field of the command's own dataclass names its aliases in its metadata). ``positionals``: fields that may
    also be given as leading words (``push model PATH``): ``push model PATH`` parses as ``--kind model --path
    PATH``. A ``--config`` YAML may use an option's alias as its key.
    """

    def __init__(self, dataclass_types, prog: str | None = None, aliases: Mapping[str, Sequence[str]] | None = None,
                 positionals: Sequence[str] = (), **kwargs):  # fmt: skip
        super().__init__(dataclass_types, prog=prog, **kwargs)
        self.positionals = tuple(positionals)
        for name, extra in (aliases or {}).items():
            action = self._option_string_actions[name]
            for alias in extra:
                action.option_strings.append(alias)
                self._option_string_actions[alias] = action
            action.help = old_spelling(action.help or "", *extra)

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        leading = []
        while args and len(leading) < len(self.positionals) and not args[0].startswith("-"):
            leading.append(args.pop(0))
        for name, value in zip(self.positionals, leading):
            args[:0] = [f"--{name}", value]
        return super().parse_known_args(args, namespace)

    def set_defaults_with_config(self, **kwargs) -> list[str]:
        dests = {action.dest for action in self._actions}
        renamed = {}
        for key, value in kwargs.items():
            action = None if key in dests else (self._option_string_actions.get(f"--{key}")
                                                or self._option_string_actions.get(f"-{key}"))  # fmt: skip
            renamed[action.dest if action is not None else key] = value
        return super().set_defaults_with_config(**renamed)


def run_recipe(parser, main, args: Sequence[str] | None = None, debug: bool = False, exit_on_error: bool = True):
    """Parse a program's options (``--config`` YAML, command line over it), call ``main(*arguments)`` and
    return what it returns.

    User errors end with one message and a non-zero exit, no traceback (``debug`` re-raises them): a missing
    or malformed ``--config`` file, unknown YAML keys, a bad value and rejected option combinations (the
    dataclasses' ``__post_init__``) as a usage error (exit 2); bad input found while running (an unknown
    dataset, a missing file or checkpoint, a checkpoint of another model type: ``ValueError`` / ``OSError``) as
    ``error: ...``: with ``exit_on_error`` (the recipe programs) ``sys.exit("error: ...")``, else the message
    on stderr and ``EXIT_USER_ERROR`` returned.
    """
    import yaml

    if "--config" not in parser._option_string_actions:  # TrlParser reads it itself; listed for --help
        parser.add_argument("--config", metavar="YAML", default=argparse.SUPPRESS, help=CONFIG_HELP)
    if "--debug" not in parser._option_string_actions:  # taken out below; listed for --help
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    args = list(sys.argv[1:] if args is None else args)
    if "--debug" in args:
        args.remove("--debug")
        debug = True
    try:
        arguments = parser.parse_args_and_config(args)
    except (ValueError, OSError, yaml.YAMLError) as error:
        if debug:
            raise
        config = args[args.index("--config") + 1] if "--config" in args[:-1] else None
        where = f"--config {config}: " if config is not None and not isinstance(error, ValueError) else ""
        message = str(error.strerror) if isinstance(error, OSError) and error.strerror else str(error)
        parser.error(where + message.replace("\n", " "))
    try:
        return main(*arguments)
    except (ValueError, OSError) as error:
        if debug:
            raise
        if exit_on_error:
            sys.exit(f"error: {error}")
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
