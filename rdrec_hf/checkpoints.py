"""Trained students on disk or on the Hub: which references are checkpoints, and loading one onto a device.

`load_trained_student` reads a student folder (full or LoRA) onto a device in a dtype (`rdrec_hf.devices`);
`check_base_checkpoint` and `check_model_reference` refuse what is not a student before a loader's traceback.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from transformers import PretrainedConfig

from .devices import check_dtype_supported, resolve_device, resolve_dtype
from .integrity import check_safetensors
from .models import ITEM_INDEX_FILE, ItemIndex, RDRecConfig, RDRecForConditionalGeneration
from .models.configuration_rdrec import SIZE_PRESETS

logger = logging.getLogger(__name__)

STUDENT_BASE_MODEL_TYPES = ("t5", RDRecConfig.model_type)
HUB_MODEL_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # "t5-small", "owner/name"
FALLBACK_PRESET = {"t5-small": "t5-small", "google-t5/t5-small": "t5-small"}  # Hub id -> preset of its sizes


def check_base_checkpoint(name_or_path: str) -> str:
    """Return the checkpoint's ``model_type``; ``ValueError`` unless it is a T5 or an RDRec model."""
    try:
        config_dict, _ = PretrainedConfig.get_config_dict(name_or_path)
    except OSError as error:
        preset = FALLBACK_PRESET.get(name_or_path)
        fallback = (f"`model_preset: {preset}` (its dimensions, random weights)" if preset
                    else f"a size preset (`model_preset`: one of {', '.join(SIZE_PRESETS)})")
        raise ValueError(
            f"cannot read the checkpoint {name_or_path!r}: {str(error).splitlines()[0]}. Without its weights "
            f"(offline, no local folder), train from scratch by replacing `model_name_or_path` with {fallback}; "
            "it is never switched silently"
        ) from None
    model_type = config_dict.get("model_type")
    if model_type not in STUDENT_BASE_MODEL_TYPES:
        raise ValueError(
            f"checkpoint {name_or_path!r} is a {model_type!r} model; the RDRec student starts from a T5 or "
            f"an RDRec checkpoint ({', '.join(STUDENT_BASE_MODEL_TYPES)})"
        )
    return model_type


def check_model_reference(path: str) -> None:
    """Name the mistake when ``path`` is neither a folder nor a Hub id, or is a project dataset's folder."""
    folder = Path(path)
    if (folder / "dataset_dict.json").is_file():
        raise ValueError(f"{path} is a project dataset, not a model: give the trained student's folder")
    if folder.exists():
        return
    if not HUB_MODEL_ID.fullmatch(str(path)):
        raise FileNotFoundError(f"{path}: no such folder, and not a Hub id (owner/name)")
    try:
        PretrainedConfig.get_config_dict(path)
    except OSError as error:
        raise FileNotFoundError(
            f"{path}: no such folder, and not a Hub id that could be read ({str(error).splitlines()[0]})"
        ) from None


def load_trained_student(path: str, device: str | torch.device | None = None,
                         dtype: str | torch.dtype | None = None):  # fmt: skip
    """``(model, tokenizer)`` of a trained student folder or Hub id: a full RDRec checkpoint, or a LoRA adapter
    folder (its base loaded from ``adapter_config.json``, the adapter merged, the catalog read from the folder).

    The model is on ``device`` (`resolve_device`: None is CUDA when available, else the CPU) in ``dtype``
    (`resolve_dtype`: float32, bfloat16, float16, or None / ``auto`` for the checkpoint's own), whatever the
    dtype it was saved in.

    Raises ``ValueError`` for a checkpoint of another model type or a dataset folder, an unknown device or
    dtype, a GPU the machine lacks or a dtype the device cannot compute in; ``FileNotFoundError`` for a path
    that is neither a folder nor a Hub id.
    """
    from .data import load_tokenizer

    device, dtype = resolve_device(device), resolve_dtype(dtype)
    loading = {"dtype": dtype if dtype is not None else "auto"}
    check_model_reference(path)
    for weights in Path(path).glob("*.safetensors"):  # a cut file: name it instead of a loader's traceback
        check_safetensors(weights)

    adapter_config = Path(path) / "adapter_config.json"
    if adapter_config.is_file():
        from peft import PeftConfig, PeftModel

        base_path = PeftConfig.from_pretrained(path).base_model_name_or_path
        check_base_checkpoint(base_path)
        base = RDRecForConditionalGeneration.from_pretrained(base_path, **loading)
        model = PeftModel.from_pretrained(base, path).merge_and_unload()
        if (Path(path) / ITEM_INDEX_FILE).is_file():
            model.set_item_index(ItemIndex.load(Path(path) / ITEM_INDEX_FILE))
    else:
        if check_base_checkpoint(path) != RDRecConfig.model_type:
            raise ValueError(f"{path} is a plain T5 checkpoint, not a trained RDRec student")
        model = RDRecForConditionalGeneration.from_pretrained(path, **loading)
    model = model.to(dtype=dtype if dtype is not None else model.dtype)  # PEFT may keep merged adapters in float32
    check_dtype_supported(model.dtype, device)
    return model.to(device).eval(), load_tokenizer(path)


__all__ = ["check_base_checkpoint", "check_model_reference", "load_trained_student"]
