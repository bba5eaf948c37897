"""rdrec-hf: RDRec (rationale distillation for LLM-based recommendation) for the Hugging Face ecosystem.

Each layer adds its public names in its own section below.
"""

__version__ = "0.1.0"

from .paths import shared_dir
from .tasks import Task

__all__ = ["Task", "shared_dir", "__version__"]

# --- models ---

# --- data ---

# --- teacher ---

# --- evaluation ---

# --- training ---
