"""The programs behind ``rdrec-hf distill|train|evaluate`` and ``recipes/*.py`` (as ``trl/scripts`` is for TRL).

Each module has ``make_parser(prog=None)`` (a ``TrlParser`` of its dataclasses: ``--config`` YAML, the command
line over it) and ``main(*arguments)``; the CLI and the recipe scripts are thin callers of both.
"""

import logging
import sys


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
