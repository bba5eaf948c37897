"""Recommend for one or more users with a trained student: the Python face of `rdrec-hf recommend`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .data import encode_prompts, prompt_for
from .data.builders import DEFAULT_MAX_SOURCE_LENGTH
from .tasks import Task

ANONYMOUS_USER = "0"  # project user ids start at 1, so `user_0` is a mention no training user has


@dataclass
class Recommendation:
    """One recommended item: the project id, the source's original id (e.g. the asin), the sequence
    log-likelihood the model gave it and, when asked for, a generated explanation."""

    item_id: str
    original_id: str
    score: float
    explanation: str | None = None


def _model_inputs(tokenizer, prompts: Sequence[str], task: Task, device) -> dict[str, torch.Tensor]:
    batch = encode_prompts(tokenizer, prompts, max_length=DEFAULT_MAX_SOURCE_LENGTH, return_tensors="pt")
    batch = {name: value.to(device) for name, value in batch.items()}
    batch["task_id"] = torch.full((len(prompts),), int(task), dtype=torch.long, device=device)
    return batch


@torch.no_grad()
def recommend(
    model,
    tokenizer,
    history: Sequence[str],
    user_id: str | None = None,
    k: int = 10,
    num_beams: int = 20,
    exclude_history: bool = True,
    explain: bool = False,
    max_explanation_tokens: int = 48,
) -> list[Recommendation]:
    """Top-``k`` next items for a user, best first (the sequential task): exact one-step ranking with one-token
    ids (independent), catalog-constrained beam search otherwise.

    Args:
        model: an `RDRecForConditionalGeneration` with its catalog (`model.item_index`), e.g. from
            `RDRecForConditionalGeneration.from_pretrained(folder_or_hub_id)`.
        tokenizer: the model's tokenizer.
        history: the user's items (project ids), oldest first; the prompt keeps the last 20 as in training.
        user_id: the user's project id; None uses an anonymous mention (`user_0`) for a user unseen in training.
        k: how many items; fewer come back only when fewer valid catalog items remain.
        num_beams: beams of the constrained search (at least ``k``; unused by exact ranking).
        exclude_history: never recommend an item of ``history``.
        explain: also generate an explanation (the explanation task) for every recommended item.
    Raises:
        ValueError: no catalog on the model, an empty history, or items unknown to the catalog.
    """
    item_index = getattr(model, "item_index", None)
    if item_index is None:
        raise ValueError("the model has no item catalog (item_index.json); train or load an RDRec checkpoint")
    if not history:
        raise ValueError("an empty history: give at least one item the user interacted with")
    unknown = [item for item in history if item not in item_index.position]
    if unknown:
        raise ValueError(f"items not in the model's catalog: {unknown[:10]}")
    if num_beams < k and not item_index.is_single_token:
        raise ValueError(f"num_beams={num_beams} cannot return {k} items; use num_beams >= k")
    user_id = ANONYMOUS_USER if user_id is None else str(user_id)
    model.eval()
    device = next(model.parameters()).device
    prompt = prompt_for(Task.SEQUENTIAL, user_id=user_id, history=history, scheme=item_index.scheme)
    output = model.generate(
        **_model_inputs(tokenizer, [prompt], Task.SEQUENTIAL, device),
        item_index=item_index,
        exclude_items=[list(history)] if exclude_history else None,
        num_beams=max(num_beams, k),
        num_return_sequences=k,
    )
    items, scores = output.item_ids[0], output.scores[0]
    explanations: list[str | None] = [None] * len(items)
    if explain and items:
        prompts = [prompt_for(Task.EXPLANATION, user_id=user_id, item_id=item, scheme=item_index.scheme)
                   for item in items]
        generated = model.generate(
            **_model_inputs(tokenizer, prompts, Task.EXPLANATION, device),
            max_new_tokens=max_explanation_tokens,
            do_sample=False,
            num_beams=1,
        )
        explanations = tokenizer.batch_decode(generated, skip_special_tokens=True)
    return [
        Recommendation(item, item_index.original_id(item), float(score), explanation)
        for item, score, explanation in zip(items, scores, explanations)
    ]
