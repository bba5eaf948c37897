"""Build the student to train from ``ModelArguments``: a checkpoint (plain T5 or RDRec) or a size preset,
optionally quantised (bitsandbytes) and wrapped with LoRA adapters (PEFT)."""

from __future__ import annotations

import logging

import torch

from ..models import RDRecConfig, RDRecForConditionalGeneration
from ..models.sasrec import SASRecConfig, SASRecTrainingConfig, fit_sasrec
from ..checkpoints import check_base_checkpoint
from ..models.configuration_rdrec import T5_VOCAB_SIZE
from ..paths import t5_tokenizer_dir
from .lora import rdrec_lora_config
from .rdrec_config import ItemEmbeddingInit, ModelArguments, parse_config_overrides

logger = logging.getLogger(__name__)



def load_student_tokenizer(model_args: ModelArguments):
    """``tokenizer_name_or_path``, else the checkpoint's own tokenizer, else the shared T5 vocabulary."""
    from ..data import load_tokenizer

    if model_args.tokenizer_name_or_path is not None:
        return load_tokenizer(model_args.tokenizer_name_or_path)
    if model_args.model_name_or_path is not None:
        try:
            return load_tokenizer(model_args.model_name_or_path)
        except (OSError, ValueError) as error:
            logger.warning(
                "no tokenizer with checkpoint %s (%s): using the shared T5 vocabulary",
                model_args.model_name_or_path, str(error).splitlines()[0],
            )
    return load_tokenizer(t5_tokenizer_dir())


def _quantization_config(model_args: ModelArguments):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_8bit=model_args.load_in_8bit,
        load_in_4bit=model_args.load_in_4bit,
        bnb_4bit_quant_type=model_args.bnb_4bit_quant_type.value,
        bnb_4bit_use_double_quant=model_args.use_bnb_nested_quant,
        bnb_4bit_compute_dtype=torch.float32,
    )


def build_student(
    model_args: ModelArguments, tokenizer, seed: int, gradient_checkpointing: bool = False, item_index=None
):
    """The model to train.

    New weights (a preset model, or the whole-word / soft-prompt embeddings added to a plain T5) are drawn
    from ``seed`` in a forked RNG, so the global RNG is neither used nor changed. The vocabulary is
    ``item_index.vocab_size`` (the tokenizer's tokens and the catalog's item tokens, which run past the tokenizer
    with arithmetic ids), else ``len(tokenizer)``; one larger than the checkpoint's (new item tokens) resizes the
    embeddings: transformers draws the new rows from a normal with the old rows' mean and covariance.
    Quantised checkpoints are prepared for k-bit training; with ``use_peft`` the result is a ``PeftModel``
    whose soft prompts and whole-word embeddings train fully and whose new item-token rows (those of
    ``item_index``'s scheme) train through PEFT's ``trainable_token_indices`` (``rdrec_lora_config``).
    """
    overrides = parse_config_overrides(model_args.config_overrides)
    vocab_size = item_index.vocab_size if item_index is not None else len(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if model_args.model_preset is not None:
            overrides.setdefault("vocab_size", max(T5_VOCAB_SIZE, vocab_size))
            config = RDRecConfig.from_preset(model_args.model_preset, **overrides)
            model = RDRecForConditionalGeneration(config)
        else:
            check_base_checkpoint(model_args.model_name_or_path)
            load_options = dict(overrides)
            if model_args.quantized:
                from accelerate import PartialState

                load_options["quantization_config"] = _quantization_config(model_args)
                load_options["device_map"] = {"": PartialState().device}
            model = RDRecForConditionalGeneration.from_pretrained(model_args.model_name_or_path, **load_options)
            if vocab_size > model.config.vocab_size:
                logger.info("resizing the embeddings from %d to %d tokens", model.config.vocab_size, vocab_size)
                model.resize_token_embeddings(vocab_size)
    if not model_args.use_peft:
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if model_args.quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    lora_config = rdrec_lora_config(
        r=model_args.lora_r,
        alpha=model_args.lora_alpha,
        dropout=model_args.lora_dropout,
        target_modules=model_args.lora_target_modules,
        new_token_ids=item_index.new_token_ids if item_index is not None else (),
    )
    return get_peft_model(model, lora_config)


def init_item_embeddings(
    model, data, item_index, method: ItemEmbeddingInit | str, seed: int, scale: float = 1.0,
    sasrec_max_epochs: int = SASRecTrainingConfig.max_epochs, sasrec_patience: int = SASRecTrainingConfig.patience,
    sasrec_negatives: int | None = None, device: torch.device | str = "cpu",
):
    """Set the input (and tied output) embedding rows of each item's own token (``<item_N>``) to the item's
    factors from the training interactions, rescaled to ``scale`` times the embedding table's std.

    ``method`` (:class:`ItemEmbeddingInit`): ``svd``, a truncated SVD of the training user-item matrix
    (`rdrec_hf.data.item_graph.svd_item_embeddings`); ``transitions``, the spectral embedding of the graph of
    items bought within a few positions of each other (`transition_graph`, `spectral_item_embeddings`);
    ``sasrec``, the item embeddings of a SASRec of width ``d_model`` trained on the training sequences on ``device``
    for at most ``sasrec_max_epochs``, stopping after ``sasrec_patience`` epochs without a better validation
    NDCG@10 (its best epoch's weights), with a sampled softmax of ``sasrec_negatives`` when given, seeded by ``seed``
    (`rdrec_hf.models.sasrec`). Keeps ``min(d_model, catalog size - 1, users - 1)`` factors (SASRec: all
    ``d_model``); a small catalog's remaining columns are zero.
    Measured on beauty: the SVD took a from-scratch one-token-per-item T5 from .0094 to .0239 test NDCG@10 in
    10 CPU minutes (``../shared/notes/student-learning.md``); under the catalog recipe the transitions start
    gave .0399 against the SVD's .0247 on seeds 42, 43 (it ranks .0272 before any training; BENCHMARKS.md,
    section 1). Raises ``ValueError`` for a scheme without item tokens or ``method=default``.

    Returns the trained SASRec (eval mode) with ``sasrec``, for distillation; else ``None``.
    """
    from ..data import training_history
    from ..data.item_graph import spectral_item_embeddings, svd_item_embeddings, transition_graph

    method = ItemEmbeddingInit(method)
    if method is ItemEmbeddingInit.DEFAULT:
        raise ValueError("item_embedding_init=default keeps the model's own rows: nothing to set")
    if not item_index.indexing.has_item_token:
        raise ValueError(f"item_embedding_init={method.value} needs an item token per item; "
                         f"{item_index.indexing.value} has none")
    embeddings = model.get_input_embeddings().weight
    recommender = None
    if method is ItemEmbeddingInit.SASREC:
        width = embeddings.shape[1]
        recommender = train_start_sasrec(data, item_index, width, seed, sasrec_max_epochs, sasrec_patience, device,
                                         sasrec_negatives)
        factors = recommender.item_embeddings.weight.detach()[1:].cpu().numpy()
    else:
        histories = [item_index.positions(training_history(items)) for items in data["users"]["items"]]
        width = min(embeddings.shape[1], len(item_index) - 1, len(histories) - 1)
        factors = (svd_item_embeddings(histories, len(item_index), width, seed) if method is ItemEmbeddingInit.SVD
                   else spectral_item_embeddings(transition_graph(histories, len(item_index)), width, seed))
    factors = torch.from_numpy(factors)
    factors = factors * (scale * embeddings.detach().std() / factors.std().clamp(min=1e-12))
    rows = torch.tensor(item_index.item_token_ids)
    with torch.no_grad():
        embeddings[rows] = 0.0
        embeddings[rows, :width] = factors.to(embeddings.dtype)
    logger.info("item-token embeddings of %d items set from %d %s factors", len(rows), width, method.value)
    return recommender


def train_start_sasrec(data, item_index, width: int, seed: int, max_epochs: int, patience: int,
                       device: torch.device | str = "cpu", negatives: int | None = None):
    """A SASRec of width ``width`` over ``item_index``'s positions (+ 1) trained on the training parts of the
    users' sequences for at most ``max_epochs``, early stopping on their validation items after ``patience``
    epochs without progress, the best epoch's weights kept (a sampled softmax of ``negatives`` when given);
    eval mode."""
    sequences = [[position + 1 for position in item_index.positions(items)] for items in data["users"]["items"]]
    model, info = fit_sasrec(
        sequences, SASRecConfig(num_items=len(item_index), hidden_size=width, init_seed=seed),
        SASRecTrainingConfig(max_epochs=max_epochs, patience=patience, seed=seed, num_negatives=negatives),
        device=device,
    )
    logger.info("SASRec start: %d epochs (best %d, validation NDCG@10 %.4f, %s) in %.1f minutes", info["epochs"],
                info["best_epoch"], info["best_valid_ndcg_at_10"], info["stop_reason"], info["train_seconds"] / 60)
    return model


def describe_student(model) -> str:
    """One line: parameter counts, trained share and where the model came from."""
    total = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    origin = model.config.name_or_path or "a size preset"
    return f"student from {origin}: {total:,} parameters, {trained:,} trained"
