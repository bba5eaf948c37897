"""The RDRec student: T5 with whole-word embeddings, per-task soft prompts and item-id constrained decoding.

Hub custom code: this file imports only ``torch``, ``transformers`` and its sibling files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import T5ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput
from transformers.utils import cached_file, logging

from .configuration_rdrec import RDRecConfig
from .item_decoding import ItemDecoding, ItemGenerationOutput, exact_item_scores, generate_items
from .item_index import ITEM_INDEX_FILE, ItemIndex
from .prompting import DEFAULT_MAX_SOURCE_LENGTH, encode_prompts
from .recommending import Recommendation, rank_candidates, recommend
from .tasks import Task

logger = logging.get_logger(__name__)

VOCAB_PADDING_MULTIPLE = 128


def _require(condition: torch.Tensor, message: str, details: Callable[[], str] | None = None) -> None:
    """Raise `ValueError(message)` unless the 0-dim bool `condition` holds.

    On an accelerator the check is a device-side assertion (`message` only), so that a training step does not wait
    for the device to answer it; on the CPU `details()` (which may read the offending values) completes the message.
    """
    if condition.device.type != "cpu":
        torch._assert_async(condition, message)
    elif not bool(condition):
        raise ValueError(message + (details() if details is not None else ""))


def restrict_labels(labels: torch.LongTensor, output_token_ids: torch.LongTensor) -> torch.LongTensor:
    """Vocabulary-id `labels` `[B, T]` as indices into the ascending `output_token_ids` `[K]` (-100 stays).

    Raises `ValueError` for a label outside `output_token_ids` (a device-side assertion on an accelerator).
    """
    positions = torch.searchsorted(output_token_ids, labels.clamp(min=0)).clamp(max=output_token_ids.numel() - 1)
    found = output_token_ids[positions] == labels
    ignored = labels == -100
    _require(
        (found | ignored).all(),
        "labels are not among output_token_ids; the restricted softmax cannot score them",
        lambda: f": {labels[~(found | ignored)][:5].tolist()}",
    )
    return torch.where(ignored, labels, positions)


def draw_shared_negatives(
    num_items: int, num_draws: int, generator: torch.Generator, probabilities: torch.Tensor | None = None
) -> tuple[torch.LongTensor, torch.FloatTensor]:
    """Negatives of a sampled softmax, shared by a whole batch: `num_draws` draws with replacement from q (uniform
    over `num_items` when `probabilities` is None, else the `[num_items]` distribution `probabilities`).

    Returns `(indices [U], log_q [U])`: the distinct drawn indices, ascending, and the logQ correction of each,
    `log(num_draws * q) - log(count)`, so that ``sum_j exp(z_j - log_q_j)`` estimates the sum of ``exp(z)`` over
    the whole catalog without bias (an item drawn c times counts c times).
    """
    if num_draws < 1 or num_items < 1:
        raise ValueError(f"draw_shared_negatives needs num_draws >= 1 and num_items >= 1, got {num_draws}, {num_items}")
    if probabilities is None:
        draws = torch.randint(0, num_items, (num_draws,), generator=generator)
    else:
        draws = torch.multinomial(probabilities.float(), num_draws, replacement=True, generator=generator)
    indices, counts = draws.unique(return_counts=True)  # sorted
    q = (torch.full((indices.numel(),), 1.0 / num_items, dtype=torch.float64) if probabilities is None
         else probabilities.double()[indices])
    log_q = (torch.log(num_draws * q) - counts.double().log()).float()
    return indices, log_q


def sampled_softmax_loss(
    positive_logits: torch.Tensor,
    negative_logits: torch.Tensor,
    positive_log_q: torch.Tensor,
    negative_log_q: torch.Tensor,
    accidental_hits: torch.Tensor | None = None,
) -> torch.FloatTensor:
    """Cross-entropy of the positive against shared sampled negatives, with the logQ correction.

    As TensorFlow's ``sampled_softmax_loss``: every logit is corrected by the log of its expected count among the
    draws, ``z - log(num_draws * q)`` (a negative drawn c times: ``+ log c``, `draw_shared_negatives`' `log_q`;
    the positive's too), and a negative that is the row's own positive (an accidental hit) is left out. With the
    whole catalog as negatives, each once with uniform q (log q = 0), this is the full softmax cross-entropy.

    Args:
        positive_logits: `[R]` logit of each row's positive. positive_log_q: `[R]` its correction.
        negative_logits: `[R, U]` logits of the shared negatives. negative_log_q: `[U]` (+inf: the column is
            no negative, e.g. another row's positive that was not drawn).
        accidental_hits: `[R, U]` bool, True where a negative is the row's positive; None: none.
    Returns:
        `[R]` float32 losses.
    """
    negatives = negative_logits.float() - negative_log_q.float()
    if accidental_hits is not None:
        negatives = negatives.masked_fill(accidental_hits, float("-inf"))
    positives = positive_logits.float() - positive_log_q.float()
    return torch.logsumexp(torch.cat([positives[..., None], negatives], dim=-1), dim=-1) - positives


@dataclass
class RDRecSeq2SeqLMOutput(Seq2SeqLMOutput):
    """`Seq2SeqLMOutput` of a forward over `output_token_ids`, plus `token_losses` `[B, T]`: each target token's
    cross-entropy (0 where the label is -100), whose mean over the targets is `loss`; a trainer reads per-example
    losses from it instead of a second softmax over the logits."""

    token_losses: torch.FloatTensor | None = None


class RDRecForConditionalGeneration(T5ForConditionalGeneration):
    """T5 for RDRec/POD: every sub-token of the k-th user/item mention gets whole-word embedding k added to
    its token embedding, and `prompts_per_task` trainable vectors of each example's task are prepended to
    the encoder input (the attention mask grows accordingly).

    `item_index` (an [`ItemIndex`], or None) is the catalog used for recommendation; `save_pretrained`
    writes it beside the weights and `from_pretrained` restores it.
    """

    config_class = RDRecConfig
    # Modules that plain T5 checkpoints lack; PEFT keeps them trainable and saved (`modules_to_save`).
    rdrec_embedding_modules = ("whole_word_embeddings", "task_prompt_embeddings")

    def __init__(self, config: RDRecConfig):
        super().__init__(config)
        # padding_idx 0: tokens outside mentions get a zero vector that never trains.
        self.whole_word_embeddings = (
            nn.Embedding(config.max_whole_words, config.d_model, padding_idx=0) if config.use_whole_word_embeddings
            else None
        )
        self.task_prompt_embeddings = nn.Embedding(config.num_tasks * config.prompts_per_task, config.d_model)
        self.item_index: ItemIndex | None = None
        # T5's __init__ ran post_init before these modules existed; this initialises only the new ones.
        self.post_init()

    # ----------------------------------------------------------------------------------------- inputs
    def _check_inputs(self, input_shape: torch.Size, whole_word_ids, task_id) -> torch.LongTensor | None:
        """Validate `whole_word_ids` `[B, L]` and `task_id` `[B]` (or an int); return `task_id` as `[B]`."""
        config = self.config
        if whole_word_ids is not None:
            if tuple(whole_word_ids.shape) != tuple(input_shape):
                raise ValueError(
                    f"whole_word_ids has shape {tuple(whole_word_ids.shape)} but the input ids have shape "
                    f"{tuple(input_shape)}; they must match token for token"
                )
            _require(
                ((whole_word_ids >= 0) & (whole_word_ids < config.max_whole_words)).all(),
                f"whole_word_ids must lie in [0, {config.max_whole_words}) (config.max_whole_words); raise "
                "max_whole_words or shorten the prompt",
                lambda: f"; got values in [{int(whole_word_ids.min())}, {int(whole_word_ids.max())}]",
            )
        if config.prompts_per_task == 0:
            return None
        if task_id is None:
            raise ValueError(
                "task_id is required: this model prepends per-task soft prompts "
                f"(prompts_per_task={config.prompts_per_task}); pass a LongTensor [batch] of task ids"
            )
        batch_size = input_shape[0]
        task_id = torch.as_tensor(task_id, dtype=torch.long)
        if task_id.dim() == 0:
            task_id = task_id.expand(batch_size)
        if tuple(task_id.shape) != (batch_size,):
            raise ValueError(f"task_id must have shape [{batch_size}] (one per example), got {tuple(task_id.shape)}")
        unknown = (task_id < 0) | (task_id >= config.num_tasks)
        _require(
            ~unknown.any(),
            f"unknown task id: this model has {config.num_tasks} tasks (config.num_tasks), ids 0..{config.num_tasks - 1}",
            lambda: f"; got {task_id[unknown].tolist()}",
        )
        return task_id

    def embed_encoder_inputs(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        whole_word_ids: torch.LongTensor | None = None,
        task_id: torch.LongTensor | int | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
    ) -> tuple[torch.FloatTensor, torch.Tensor]:
        """Encoder input embeddings with whole-word embeddings added and task soft prompts prepended.

        Args:
            input_ids: `[B, L]` token ids (or give `inputs_embeds` `[B, L, D]` token embeddings instead).
            attention_mask: `[B, L]`, 1 for real tokens; all ones when None.
            whole_word_ids: `[B, L]`, 0 outside mentions, k for the k-th mention; None means no mentions.
            task_id: `[B]` task of each example (or one int for the whole batch).
        Returns:
            `(inputs_embeds [B, P + L, D], attention_mask [B, P + L])` with P = `config.prompts_per_task`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.shared(input_ids)
        batch_size, length = inputs_embeds.shape[:2]
        task_id = self._check_inputs(inputs_embeds.shape[:2], whole_word_ids, task_id)
        if attention_mask is None:
            attention_mask = torch.ones(batch_size, length, dtype=torch.long, device=inputs_embeds.device)
        elif tuple(attention_mask.shape) != (batch_size, length):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but the inputs have shape {(batch_size, length)}"
            )
        if whole_word_ids is not None and self.whole_word_embeddings is not None:
            inputs_embeds = inputs_embeds + self.whole_word_embeddings(whole_word_ids.to(inputs_embeds.device)).to(
                inputs_embeds.dtype
            )
        if task_id is None:
            return inputs_embeds, attention_mask
        prompts = self.config.prompts_per_task
        prompt_ids = task_id.to(inputs_embeds.device)[:, None] * prompts + torch.arange(prompts, device=inputs_embeds.device)
        prompt_embeds = self.task_prompt_embeddings(prompt_ids).to(inputs_embeds.dtype)  # [B, P, D]
        prompt_mask = attention_mask.new_ones(batch_size, prompts)
        return torch.cat([prompt_embeds, inputs_embeds], dim=1), torch.cat([prompt_mask, attention_mask], dim=1)

    def _encoder_attention_mask(self, attention_mask: torch.Tensor | None, encoded_length: int) -> torch.Tensor | None:
        """Extend a caller's `[B, L]` mask by the prompt columns when `encoder_outputs` cover `P + L` positions."""
        if attention_mask is None or attention_mask.shape[1] == encoded_length:
            return attention_mask
        if attention_mask.shape[1] + self.config.prompts_per_task == encoded_length:
            prompt_mask = attention_mask.new_ones(attention_mask.shape[0], self.config.prompts_per_task)
            return torch.cat([prompt_mask, attention_mask], dim=1)
        raise ValueError(
            f"attention_mask has {attention_mask.shape[1]} columns but encoder_outputs have {encoded_length} positions "
            f"({self.config.prompts_per_task} of them soft prompts)"
        )

    # ---------------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        whole_word_ids: torch.LongTensor | None = None,
        task_id: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.BoolTensor | None = None,
        encoder_outputs: tuple | BaseModelOutput | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        decoder_inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_token_ids: torch.LongTensor | None = None,
        output_token_rows: torch.BoolTensor | None = None,
        other_rows_exclude_output_tokens: bool = False,
        output_token_log_q: torch.FloatTensor | None = None,
        output_token_target_log_q: torch.FloatTensor | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        r"""
        Args:
            input_ids: `[B, L]` prompt tokens. attention_mask: `[B, L]`.
            whole_word_ids: `[B, L]` mention numbers (0 = not in a mention).
            task_id: `[B]` task of each example (`rdrec_hf.Task` values); may differ within a batch.
            labels: `[B, T]` target tokens, -100 on padding; decoder inputs are shifted from them when absent.
            encoder_outputs: precomputed encoder states `[B, P + L, D]` (then `input_ids`, `whole_word_ids`
                and `task_id` are not needed; `attention_mask` may be `[B, L]` or `[B, P + L]`).
            output_token_ids: `[K]` ascending vocabulary ids: the output layer keeps only these rows, so
                `logits` are `[B, T, K]` and the loss normalises over them (every label must be one of them).
                For training one-token item targets over the catalog's tokens alone; the items rank as with
                the whole vocabulary.
            output_token_rows: `[B]` bool, with `output_token_ids`: only these rows normalise over
                `output_token_ids` (e.g. the ranking examples of a mixture); the others normalise over the whole
                vocabulary (text targets), without `output_token_ids` when `other_rows_exclude_output_tokens`.
                With `labels`, `logits` stay `[B, T, K]` (the text rows' vocabulary logits are computed at their
                targets only, for the loss); without, they are over the vocabulary, `[B, T, vocab_size]`.
                None: every row is restricted.
            output_token_log_q: `[K]`, with `output_token_ids` and `labels`: the loss of the restricted rows is a
                sampled softmax (`sampled_softmax_loss`): column k is a shared negative with logit `z_k -
                output_token_log_q[k]` (+inf: no negative, only the target of its own positions), a position's
                label column is its positive with logit `z - output_token_target_log_q[label]` (required with
                it) and is never its own negative. `logits` stay uncorrected.
        Returns:
            `Seq2SeqLMOutput` with `logits` `[B, T, vocab_size]` (or `[B, T, K]`) and the mean token
            cross-entropy `loss` when `labels` are given; `encoder_last_hidden_state` is `[B, P + L, D]`.
            With `output_token_ids`, an `RDRecSeq2SeqLMOutput` (its `token_losses` too).
        """
        if encoder_outputs is None:
            inputs_embeds, attention_mask = self.embed_encoder_inputs(
                input_ids, attention_mask, whole_word_ids, task_id, inputs_embeds
            )
        else:
            encoded_length = encoder_outputs[0].shape[1]
            attention_mask = self._encoder_attention_mask(attention_mask, encoded_length)
        if (output_token_log_q is None) != (output_token_target_log_q is None):
            raise ValueError("give both output_token_log_q and output_token_target_log_q, or neither")
        if output_token_ids is not None:
            return self._forward_over_tokens(
                inputs_embeds, attention_mask, encoder_outputs, decoder_input_ids, labels, output_token_ids,
                output_token_rows, other_rows_exclude_output_tokens, output_token_log_q, output_token_target_log_q,
            )
        if output_token_rows is not None or output_token_log_q is not None:
            raise ValueError("output_token_rows and output_token_log_q need output_token_ids")
        return super().forward(
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            inputs_embeds=inputs_embeds if encoder_outputs is None else None,
            decoder_inputs_embeds=decoder_inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            **kwargs,
        )

    def _forward_over_tokens(
        self, inputs_embeds, attention_mask, encoder_outputs, decoder_input_ids, labels, output_token_ids,
        output_token_rows=None, other_rows_exclude_output_tokens=False, output_token_log_q=None,
        output_token_target_log_q=None,
    ) -> RDRecSeq2SeqLMOutput:
        """T5's forward with each row's softmax over `output_token_ids` or the vocabulary (see `forward`)."""
        if encoder_outputs is None:
            encoder_outputs = self.encoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("output_token_ids needs labels or decoder_input_ids")
            decoder_input_ids = self._shift_right(labels)
        hidden = self.decoder(
            input_ids=decoder_input_ids, encoder_hidden_states=encoder_outputs[0], encoder_attention_mask=attention_mask
        ).last_hidden_state
        if self.config.scale_decoder_outputs:
            hidden = hidden * (self.config.d_model**-0.5)
        if output_token_rows is not None and labels is None:
            logits = self.lm_head(hidden)  # [B, T, V]; with labels, the text rows' at their targets only (below)
        else:
            # The rows as an embedding lookup: with sparse embedding gradients, a [K, D] gradient, not [V, D].
            output_rows = nn.functional.embedding(output_token_ids, self.lm_head.weight, sparse=self.shared.sparse)
            logits = hidden @ output_rows.T  # [B, T, K]
        loss = token_losses = None
        if labels is not None:
            ranking_rows = output_token_rows[:, None] if output_token_rows is not None else None
            restricted = labels if ranking_rows is None else labels.masked_fill(~ranking_rows, -100)
            columns = restrict_labels(restricted, output_token_ids)
            if output_token_log_q is None:
                token_losses = self._token_losses(logits, columns)
            else:
                token_losses = self._sampled_token_losses(logits, columns, output_token_log_q,
                                                          output_token_target_log_q)
            if ranking_rows is not None:  # the other rows: the vocabulary's softmax
                text_labels = labels.masked_fill(ranking_rows, -100)
                token_losses = token_losses + self._vocabulary_token_losses(
                    hidden, text_labels, output_token_ids if other_rows_exclude_output_tokens else None)
            loss = token_losses.sum() / (labels != -100).sum()  # the mean over the targets, as reduction="mean"
        return RDRecSeq2SeqLMOutput(
            loss=loss, logits=logits, encoder_last_hidden_state=encoder_outputs[0], token_losses=token_losses
        )

    @staticmethod
    def _sampled_token_losses(logits: torch.Tensor, columns: torch.LongTensor, negative_log_q: torch.Tensor,
                              target_log_q: torch.Tensor) -> torch.FloatTensor:
        """`[B, T]` `sampled_softmax_loss` of each target column of `logits` `[B, T, K]` (0 where it is -100)."""
        ignored = columns == -100
        safe = columns.clamp(min=0)
        positive = logits.gather(-1, safe[..., None]).squeeze(-1)
        hits = torch.arange(logits.shape[-1], device=logits.device) == safe[..., None]  # [B, T, K]
        losses = sampled_softmax_loss(positive, logits, target_log_q.to(logits.device)[safe],
                                      negative_log_q.to(logits.device), hits)
        return losses.masked_fill(ignored, 0.0)

    def _vocabulary_token_losses(self, hidden: torch.Tensor, labels: torch.LongTensor,
                                 excluded_token_ids: torch.LongTensor | None = None) -> torch.FloatTensor:
        """`[B, T]` cross-entropy over the vocabulary (without `excluded_token_ids`) of each target of `labels`
        (0 where it is -100), from the decoder states `hidden` `[B, T, D]`. The output layer runs at the targets
        only: in a mixture most positions are padding or ranking rows, and the `[V]`-wide layer is most of a
        step's work."""
        targets = labels != -100  # [B, T]
        logits = self.lm_head(hidden[targets])  # [N, V]
        if excluded_token_ids is not None:
            logits = logits.index_fill(-1, excluded_token_ids, torch.finfo(logits.dtype).min)
        losses = nn.functional.cross_entropy(logits, labels[targets], reduction="none")
        return torch.zeros(labels.shape, dtype=losses.dtype, device=losses.device).masked_scatter(targets, losses)

    @staticmethod
    def _token_losses(logits: torch.Tensor, labels: torch.LongTensor) -> torch.FloatTensor:
        """`[B, T]` cross-entropy of each target token of `logits` `[B, T, N]` (0 where `labels` is -100)."""
        return nn.functional.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none"
        ).view_as(labels)

    def set_sparse_embedding_gradients(self, enabled: bool = True) -> None:
        """Row-sparse gradients for the token embedding: the encoder and decoder lookups and the output rows that
        `output_token_ids` reads give a gradient of the rows used, not a dense `[V, D]` one (for catalogs of
        100,000+ items). An optimizer must then take sparse gradients (`rdrec_hf.training.LazyRowAdamW`). The
        whole-vocabulary output layer (`lm_head`, text targets) still gives a dense gradient."""
        for module in self.modules():
            if isinstance(module, nn.Embedding) and module.weight is self.shared.weight:
                module.sparse = enabled

    # --------------------------------------------------------------------------------------- prompts
    def prepare_prompts(
        self, tokenizer, prompts: Sequence[str], task: Task | int, max_length: int = DEFAULT_MAX_SOURCE_LENGTH
    ) -> dict[str, torch.Tensor]:
        """Model inputs of one task's prompts (e.g. from `prompting.prompt_for`), on the model's device.

        Returns `input_ids`, `attention_mask`, `whole_word_ids` `[B, L]` (right-padded, cut to `max_length`
        tokens) and `task_id` `[B]`, ready for `generate` or `score_candidates`.
        """
        device = self.device
        batch = encode_prompts(tokenizer, prompts, max_length=max_length, return_tensors="pt")
        batch = {name: value.to(device) for name, value in batch.items()}
        batch["task_id"] = torch.full((len(prompts),), int(Task(task)), dtype=torch.long, device=device)
        return batch

    # ------------------------------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        whole_word_ids: torch.LongTensor | None = None,
        task_id: torch.LongTensor | int | None = None,
        item_index: ItemIndex | None = None,
        exclude_items: Sequence[Sequence[str]] | None = None,
        candidate_items: Sequence[Sequence[str] | None] | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        decoding: ItemDecoding | str | None = None,
        **kwargs,
    ):
        """Generate with whole-word embeddings and task prompts; with `item_index`, recommend catalog items.

        Without `item_index` this is `T5ForConditionalGeneration.generate` (text: explanations, rationales)
        and returns what it returns. With `item_index` (e.g. `model.item_index`) it decodes catalog ids
        (`rdrec_hf.models.item_decoding`) and returns an [`ItemGenerationOutput`].

        Args:
            input_ids, attention_mask, whole_word_ids: `[B, L]`. task_id: `[B]` or one int.
            item_index: the catalog to decode into; None for free text.
            exclude_items: per example, item ids that must not be returned (e.g. the user's history).
            candidate_items: per example, the only ids that may be returned (e.g. the 100 top-N candidates),
                or None for the whole catalog.
            decoding: with `item_index`, an [`ItemDecoding`]: `"beam"` (trie beam search written for item ids,
                the default for multi-token ids), `"exact"` (every allowed item scored; the default for
                one-token ids, one decoder step) or `"transformers"` (GenerationMixin beam search with the
                trie as a LogitsProcessor, the reference; it alone takes further generation arguments).
            kwargs: generation arguments. Item mode: `num_beams=20`, `num_return_sequences=num_beams`; scores
                are plain sums of token log-probabilities (`length_penalty=0`, `early_stopping=False`).
        """
        if item_index is None and (exclude_items is not None or candidate_items is not None or decoding is not None):
            raise ValueError(
                "exclude_items, candidate_items and decoding need item_index (e.g. item_index=model.item_index)"
            )
        inputs_embeds, attention_mask = self.embed_encoder_inputs(
            input_ids, attention_mask, whole_word_ids, task_id, inputs_embeds
        )
        if item_index is None:
            return super().generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)
        self._check_item_index(item_index)
        return generate_items(
            self, inputs_embeds, attention_mask, item_index, exclude_items, candidate_items, decoding=decoding, **kwargs
        )

    def _check_item_index(self, item_index: ItemIndex) -> None:
        """Reject a catalog tokenised with another vocabulary than the model's."""
        # Embedding tables are often padded to a multiple of 128 rows (t5-small: 32,128 for 32,100 tokens).
        if not 0 <= self.config.vocab_size - item_index.vocab_size < VOCAB_PADDING_MULTIPLE:
            raise ValueError(
                f"the item index was built with a tokenizer of {item_index.vocab_size} tokens but the model's "
                f"vocabulary has {self.config.vocab_size}; build it with the model's tokenizer"
            )
        if item_index.eos_token_id != self.config.eos_token_id:
            raise ValueError(
                f"the item index ends targets with token {item_index.eos_token_id} but the model's EOS is "
                f"{self.config.eos_token_id}"
            )

    # ------------------------------------------------------------------------------------------ scoring
    @torch.no_grad()
    def score_candidates(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None,
        whole_word_ids: torch.LongTensor | None,
        task_id: torch.LongTensor | int | None,
        candidate_items: Sequence[Sequence[str]],
        item_index: ItemIndex | None = None,
        rows_per_pass: int = 512,
    ) -> torch.FloatTensor:
        """Exact sequence log-likelihood of each candidate item (no beams).

        The prompt is encoded once per example, and the decoder walks the catalog trie restricted to each
        example's candidates (`item_decoding.exact_item_scores`), so a prefix shared by several candidates is
        decoded once. Examples go in groups of about `rows_per_pass` (example, candidate) rows, which bounds
        the `[rows, vocab]` logits in memory.

        Args:
            input_ids, attention_mask, whole_word_ids: `[B, L]`. task_id: `[B]` or one int.
            candidate_items: per example, the catalog ids to score (lists may differ in length).
            item_index: the catalog giving each id's target tokens; `self.item_index` when None.
        Returns:
            `[B, C]` float32 sums of the log-probabilities of each candidate's target tokens (EOS included),
            C the longest candidate list; -inf where a shorter list has no candidate.
        """
        item_index = item_index if item_index is not None else self.item_index
        if item_index is None:
            raise ValueError("score_candidates needs an item_index (none given and model.item_index is not set)")
        self._check_item_index(item_index)
        batch_size = input_ids.shape[0]
        if len(candidate_items) != batch_size:
            raise ValueError(f"candidate_items has {len(candidate_items)} entries but the batch has {batch_size}")
        positions = [item_index.positions(candidates, "candidate item") for candidates in candidate_items]
        inputs_embeds, attention_mask = self.embed_encoder_inputs(input_ids, attention_mask, whole_word_ids, task_id)
        encoded = self.encoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
        num_candidates = max(len(candidates) for candidates in candidate_items)
        result = torch.full((batch_size, num_candidates), float("-inf"), device=encoded.device)
        group = max(1, rows_per_pass // max(num_candidates, 1))
        for start in range(0, batch_size, group):
            chunk = slice(start, start + group)
            allowed = item_index.allowed_counts(len(positions[chunk]), candidate_items=candidate_items[chunk])
            scores = exact_item_scores(self, encoded[chunk], attention_mask[chunk], item_index, allowed)
            for row, example_positions in enumerate(positions[chunk]):
                result[start + row, : len(example_positions)] = scores[row, example_positions]
        return result

    # ------------------------------------------------------------------------------------ recommend
    def recommend(self, tokenizer, history: Sequence[str], **options) -> list[Recommendation]:
        """Top-k next items of a history, best first, optionally explained: `recommending.recommend`
        (``user_id``, ``k``, ``num_beams``, ``exclude_history``, ``explain``)."""
        return recommend(self, tokenizer, history, **options)

    def rank_candidates(self, tokenizer, candidates: Sequence[str], **options) -> list[Recommendation]:
        """The candidates ranked exactly by the top-N task, best first: `recommending.rank_candidates`
        (``user_id``, ``k``, ``explain``)."""
        return rank_candidates(self, tokenizer, candidates, **options)

    # ------------------------------------------------------------------------------------ save / load
    def set_item_index(self, item_index: ItemIndex | None) -> None:
        """Attach the catalog used for recommendation (saved by `save_pretrained`); None detaches it."""
        if item_index is not None:
            self._check_item_index(item_index)
        self.item_index = item_index

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """`PreTrainedModel.save_pretrained`, plus the item catalog (`item_index.json`) when one is set."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.item_index is not None and kwargs.get("is_main_process", True):
            self.item_index.save(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, restoring `model.item_index` when the checkpoint has a catalog.

        A plain T5 checkpoint loads too: the T5 weights are kept and only the whole-word and soft-prompt
        embeddings are newly initialised (transformers reports them as newly initialised).
        """
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        hub_options = {
            key: kwargs[key]
            for key in ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")
            if key in kwargs
        }
        catalog_file = cached_file(
            pretrained_model_name_or_path,
            ITEM_INDEX_FILE,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            **hub_options,
        )
        if catalog_file is not None:
            model.set_item_index(ItemIndex.load(catalog_file))
        return model


__all__ = [
    "ItemGenerationOutput",
    "RDRecForConditionalGeneration",
    "RDRecSeq2SeqLMOutput",
    "draw_shared_negatives",
    "restrict_labels",
    "sampled_softmax_loss",
]
