"""Recommend with a trained student: the next items of a history, an exact ranking of given candidates, and
the texts the student writes about them (explanations, user and item rationales).

Hub custom code: this file imports only ``torch`` and its sibling files, so ``model.recommend(...)`` works on a
checkpoint loaded with ``trust_remote_code=True`` and the Inference Endpoints handler (``handler.py``) needs no
package. ``rdrec_hf.serving.batch`` adds the batch / file layer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .item_decoding import DEFAULT_NUM_BEAMS, DEFAULT_TOP_K
from .item_index import ItemIndex
from .prompting import prompt_for
from .tasks import RationaleKind, Task
from .text_generation import DEFAULT_TEXT_SAMPLE_SEED, TextGenerationSettings

ANONYMOUS_USER = "0"  # project user ids start at 1, so `user_0` is a mention no training user has
MAX_EXPLANATION_TOKENS = TextGenerationSettings.max_new_tokens


@dataclass
class Recommendation:
    """One recommended item: the project id, the source's original id (e.g. the asin), the sequence
    log-likelihood the model gave it and, when asked for, a generated explanation."""

    item_id: str
    original_id: str
    score: float
    explanation: str | None = None


def catalog_of(model) -> ItemIndex:
    """``model.item_index``; ``ValueError`` when the model has no catalog."""
    item_index = getattr(model, "item_index", None)
    if item_index is None:
        raise ValueError("the model has no item catalog (item_index.json); train or load an RDRec checkpoint")
    return item_index


def check_items(item_index: ItemIndex, items: Sequence[str], what: str = "history", who: str = "") -> None:
    """``ValueError`` for an empty list or for ids outside the catalog (``what``/``who`` name them)."""
    if not items:
        raise ValueError(f"an empty {what}{who}: give at least one catalog item id")
    unknown = [item for item in items if item not in item_index.position]
    if unknown:
        raise ValueError(f"{what} items not in the model's catalog{who}: {unknown[:10]}")


@torch.no_grad()
def rank_next_items(
    model,
    tokenizer,
    histories: Sequence[Sequence[str]],
    user_ids: Sequence[str | None],
    k: int = DEFAULT_TOP_K,
    num_beams: int = DEFAULT_NUM_BEAMS,
    exclude_history: bool = True,
    decoding: str | None = None,
):
    """One `generate(..., item_index=model.item_index)` call for a batch of users (the sequential task).

    Returns the model's `ItemGenerationOutput` (item ids, scores and shortfalls per user, best first).
    """
    item_index = catalog_of(model)
    if num_beams < k and not item_index.is_single_token:
        raise ValueError(f"num_beams={num_beams} cannot return {k} items; use num_beams >= k")
    prompts = [
        prompt_for(Task.SEQUENTIAL, user_id=ANONYMOUS_USER if user is None else str(user), history=history,
                   scheme=item_index.scheme)
        for user, history in zip(user_ids, histories)
    ]  # fmt: skip
    model.eval()
    return model.generate(
        **model.prepare_prompts(tokenizer, prompts, Task.SEQUENTIAL),
        item_index=item_index,
        exclude_items=[list(history) for history in histories] if exclude_history else None,
        num_beams=max(num_beams, k),
        num_return_sequences=k,
        decoding=decoding,
    )


def trained_on(model, task: Task) -> bool:
    """Whether the checkpoint trained ``task`` (``config.trained_tasks``; True when it does not record them)."""
    trained = getattr(model.config, "trained_tasks", None)
    return trained is None or task.name.lower() in trained


def check_trained(model, task: Task) -> None:
    """``ValueError`` when the checkpoint records its trained tasks (``config.trained_tasks``) and ``task`` is not
    among them: an untrained decoder writes tokens, not an explanation."""
    if not trained_on(model, task):
        trained = model.config.trained_tasks
        raise ValueError(
            f"this model was not trained on the {task.name.lower()} task (it trained {', '.join(trained)}), so it "
            f"cannot write {task.name.lower()}s; train it with that task in task_mixture"
        )


def text_generation_kwargs(model, settings: TextGenerationSettings) -> dict:
    """``model.generate`` arguments of ``settings``, with the catalog's own item tokens suppressed: they never occur
    in a text target, and a student trained with ``text_softmax_excludes_items`` never learnt to avoid them."""
    item_index = getattr(model, "item_index", None)
    item_tokens = item_index.new_token_ids if item_index is not None else []
    return {**settings.generate_kwargs(), **({"suppress_tokens": item_tokens} if item_tokens else {})}


@torch.no_grad()
def generate_texts(
    model, tokenizer, prompts: Sequence[str], task: Task, max_new_tokens: int = MAX_EXPLANATION_TOKENS,
    sample_seed: int | None = DEFAULT_TEXT_SAMPLE_SEED,
) -> list[str]:
    """Free text for prompts of one text task (explanation or rationale), one string per prompt, decoded as the
    evaluation's report (`TextGenerationSettings`: seeded nucleus sampling without loops; ``sample_seed`` None:
    greedy). ``ValueError`` when the model did not train ``task`` (`check_trained`)."""
    check_trained(model, task)
    if not prompts:
        return []
    model.eval()
    settings = TextGenerationSettings.up_to(max_new_tokens, sample_seed=sample_seed)
    with settings.seeded(model.device):
        generated = model.generate(**model.prepare_prompts(tokenizer, prompts, task),
                                   **text_generation_kwargs(model, settings))
    return tokenizer.batch_decode(generated, skip_special_tokens=True)


def explanations_for(model, tokenizer, user_id: str | None, item_ids: Sequence[str], **options) -> list[str]:
    """The student's explanation (the explanation task) of each item for the user, in order."""
    scheme = catalog_of(model).scheme
    user_id = ANONYMOUS_USER if user_id is None else str(user_id)
    prompts = [prompt_for(Task.EXPLANATION, user_id=user_id, item_id=item, scheme=scheme) for item in item_ids]
    return generate_texts(model, tokenizer, prompts, Task.EXPLANATION, **options)


def rationales(model, tokenizer, user_id: str | None, item_ids: Sequence[str], **options) -> tuple[str, list[str]]:
    """The student's rationales (the rationale task): the user's preference and each item's attributes."""
    scheme = catalog_of(model).scheme
    user_id = ANONYMOUS_USER if user_id is None else str(user_id)
    user_prompt = prompt_for(Task.RATIONALE, user_id=user_id, kind=RationaleKind.USER, scheme=scheme)
    item_prompts = [prompt_for(Task.RATIONALE, item_id=item, kind=RationaleKind.ITEM, scheme=scheme) for item in item_ids]
    texts = generate_texts(model, tokenizer, [user_prompt, *item_prompts], Task.RATIONALE, **options)
    return texts[0], texts[1:]


@torch.no_grad()
def recommend(
    model,
    tokenizer,
    history: Sequence[str],
    user_id: str | None = None,
    k: int = DEFAULT_TOP_K,
    num_beams: int = DEFAULT_NUM_BEAMS,
    exclude_history: bool = True,
    explain: bool = False,
    max_explanation_tokens: int = MAX_EXPLANATION_TOKENS,
    decoding: str | None = None,
) -> list[Recommendation]:
    """Top-``k`` next items for a user, best first (the sequential task): exact one-step ranking with one-token
    ids (independent), the trie beam search otherwise (`item_decoding`), unless ``decoding`` names another.

    Args:
        model: an `RDRecForConditionalGeneration` with its catalog (`model.item_index`), e.g. from
            `RDRecForConditionalGeneration.from_pretrained(folder_or_hub_id)`.
        tokenizer: the model's tokenizer.
        history: the user's items (project ids), oldest first; the prompt keeps the last 20 as in training.
        user_id: the user's project id; None uses an anonymous mention (`user_0`) for a user unseen in training.
        k: how many items (at least 1); fewer come back only when fewer valid catalog items remain.
        num_beams: beams of the constrained search (at least ``k``; unused by exact ranking).
        exclude_history: never recommend an item of ``history``.
        explain: also generate an explanation (the explanation task) for every recommended item.
        decoding: an `ItemDecoding` value (`beam`, `exact`, `transformers`); None: the catalog's default.
    Raises:
        ValueError: no catalog on the model, k below 1, an empty history, or items unknown to the catalog.
    """
    item_index = catalog_of(model)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    check_items(item_index, history)
    output = rank_next_items(model, tokenizer, [history], [user_id], k, num_beams, exclude_history, decoding)
    return recommendations_of(model, tokenizer, user_id, output.item_ids[0], output.scores[0], explain,
                              max_explanation_tokens)


@torch.no_grad()
def rank_candidates(
    model,
    tokenizer,
    candidates: Sequence[str],
    user_id: str | None = None,
    k: int | None = None,
    explain: bool = False,
    max_explanation_tokens: int = MAX_EXPLANATION_TOKENS,
) -> list[Recommendation]:
    """The candidates ranked exactly by the top-N task (each one's sequence log-likelihood; no beams), best
    first; the best ``k`` of them when ``k`` is given, each explained when ``explain``.

    Raises ``ValueError`` for an empty list, a repeated id, ids unknown to the catalog or k below 1.
    """
    item_index = catalog_of(model)
    check_items(item_index, candidates, what="candidate list")
    repeated = sorted(item for item, count in Counter(candidates).items() if count > 1)
    if repeated:
        raise ValueError(f"candidate items appear more than once: {repeated[:10]}")
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    prompt_user = ANONYMOUS_USER if user_id is None else str(user_id)
    prompt = prompt_for(Task.TOPN, user_id=prompt_user, candidates=candidates, scheme=item_index.scheme)
    model.eval()
    scores = model.score_candidates(**model.prepare_prompts(tokenizer, [prompt], Task.TOPN),
                                    candidate_items=[list(candidates)])[0].tolist()  # fmt: skip
    ranked = sorted(zip(candidates, scores), key=lambda pair: -pair[1])[:k]
    return recommendations_of(model, tokenizer, user_id, [item for item, _ in ranked], [score for _, score in ranked],
                              explain, max_explanation_tokens)


def recommendations_of(
    model, tokenizer, user_id: str | None, items: Sequence[str], scores: Sequence[float], explain: bool = False,
    max_explanation_tokens: int = MAX_EXPLANATION_TOKENS,
) -> list[Recommendation]:
    """Ranked ``items`` (best first) with their ``scores`` as `Recommendation`s, explained when ``explain``."""
    explanations: list[str | None] = [None] * len(items)
    if explain and items:
        explanations = explanations_for(model, tokenizer, user_id, list(items), max_new_tokens=max_explanation_tokens)
    item_index = catalog_of(model)
    return [Recommendation(item, item_index.original_id(item), float(score), explanation)
            for item, score, explanation in zip(items, scores, explanations)]  # fmt: skip


__all__ = [
    "recommendations_of",
    "ANONYMOUS_USER",
    "Recommendation",
    "catalog_of",
    "check_items",
    "check_trained",
    "explanations_for",
    "generate_texts",
    "rank_candidates",
    "rank_next_items",
    "rationales",
    "recommend",
    "text_generation_kwargs",
    "trained_on",
]
