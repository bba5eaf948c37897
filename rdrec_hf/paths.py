"""Where the read-only shared data lives (never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV_VAR = "RDREC_SHARED"


def shared_dir() -> Path:
    """Return the shared data folder.

    ``$RDREC_SHARED`` wins; otherwise ``../shared`` relative to the working directory, then relative to
    the repository that holds this package. Raises ``FileNotFoundError`` naming the variable when none exists.
    """
    candidates = []
    if os.environ.get(SHARED_ENV_VAR):
        candidates.append(Path(os.environ[SHARED_ENV_VAR]))
    else:
        candidates += [Path.cwd().parent / "shared", Path(__file__).resolve().parents[2] / "shared"]
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(
        f"shared data folder not found (tried {', '.join(map(str, candidates))}); "
        f"set {SHARED_ENV_VAR} to the folder that holds data/ and tokenizers/"
    )


SHARED_PREFIX = "../shared/"  # how recipes write a path into the shared folder


def resolve_shared(path: str | os.PathLike) -> str:
    """A recipe path ``../shared/<rest>`` as ``<shared_dir()>/<rest>`` (so ``$RDREC_SHARED`` decides where);
    any other path is returned unchanged."""
    text = str(path)
    if text.startswith(SHARED_PREFIX):
        return str(shared_dir() / text[len(SHARED_PREFIX) :])
    return text


def seed_run_dir(output_dir: str | os.PathLike, seed: int) -> Path:
    """The folder of one seed's run under a multi-seed ``output_dir`` (``train_rdrec_seeds`` writes it, the
    evaluation program reads it)."""
    return Path(output_dir) / f"seed-{seed}"


def t5_tokenizer_dir() -> Path:
    """Folder with the T5 SentencePiece vocabulary (``spiece.model``)."""
    return shared_dir() / "tokenizers" / "t5"


def p5_dataset_dir(name: str) -> Path:
    """Folder of a P5 Amazon split (``beauty`` or ``sports``)."""
    return shared_dir() / "data" / "amazon-p5" / name


def all_beauty_reviews() -> Path:
    """The real Amazon 2018 All_Beauty 5-core reviews (JSON lines, gzip)."""
    return shared_dir() / "data" / "amazon-2018" / "All_Beauty_5.json.gz"


def hub_card_template(name: str) -> Path:
    """A card template of ``hub_cards/`` (shipped in the package as ``rdrec_hf/hub_cards``, a link to it)."""
    return Path(__file__).resolve().parent / "hub_cards" / name
