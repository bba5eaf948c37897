"""The programs behind ``rdrec-hf distill|train|evaluate`` and ``recipes/*.py`` (as ``trl/scripts`` is for TRL).

Each module has ``make_parser(prog=None)`` (a ``TrlParser`` of its dataclasses: ``--config`` YAML, the command
line over it) and ``main(*arguments)``; the CLI and the recipe scripts are thin callers of both.
"""

import argparse
import logging
import sys
from collections.abc import Sequence


def configure_logging(level: int = logging.INFO) -> None:
    """Timestamped log lines on stdout for the project, datasets and transformers at ``level``."""
    import datasets
    import transformers

    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)], level=level, force=True,
    )
    logging.getLogger("rdrec_hf").setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)


CONFIG_HELP = "YAML file of options (keys: the option names without dashes); the command line overrides it"


def run_recipe(parser, main, args: Sequence[str] | None = None, debug: bool = False) -> None:
    """Parse a recipe's options (``--config`` YAML, command line over it) and call ``main(*arguments)``.

    User errors end with one message and a non-zero exit, no traceback (``debug`` re-raises them): a missing
    or malformed ``--config`` file, unknown YAML keys and rejected option combinations as a usage error
    (exit 2); bad input found while running (an unknown dataset, a missing file or checkpoint, a checkpoint of
    another model type: ``ValueError`` / ``FileNotFoundError``) as ``error: ...`` (exit 1).
    """
    import yaml

    if "--config" not in parser._option_string_actions:  # TrlParser reads it itself; listed for --help
        parser.add_argument("--config", metavar="YAML", default=argparse.SUPPRESS, help=CONFIG_HELP)
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
        main(*arguments)
    except (ValueError, FileNotFoundError) as error:
        if debug:
            raise
        sys.exit(f"error: {error}")
