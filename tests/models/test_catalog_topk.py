"""Exact top-k over a one-token catalog in chunks (bounded memory): the same items and scores as scoring the whole
catalog at once, with the history excluded; SASRec's top_k in chunks of items likewise."""

from __future__ import annotations

import pytest
import torch
from helpers import seeded_model

from rdrec_hf import Task
from rdrec_hf.models import ItemIndex
from rdrec_hf.models.item_decoding import exact_item_scores, exact_top_items, _top_items
from rdrec_hf.models.sasrec import SASRecConfig, SASRecModel

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_ITEMS, TEXT_VOCAB = 500, 32100


@pytest.fixture(scope="module", params=["block", "shuffled"])
def catalog(request):
    """500 independent ids whose tokens follow the text vocabulary: in item order (one block, as `add_tokens` adds
    them: slices of the output layer) or shuffled (rows gathered; the mapping matters)."""
    order = (list(range(NUM_ITEMS)) if request.param == "block"
             else torch.randperm(NUM_ITEMS, generator=torch.Generator().manual_seed(0)).tolist())
    item_ids = [str(item) for item in range(1, NUM_ITEMS + 1)]
    return ItemIndex(item_ids, [[TEXT_VOCAB + token] for token in order], TEXT_VOCAB + NUM_ITEMS, eos_token_id=1,
                     scheme="independent")


@pytest.fixture(scope="module")
def model():
    """28 padding rows after the item tokens (embedding tables padded to a multiple of 128): they normalise too."""
    return seeded_model(seed=4, vocab_size=TEXT_VOCAB + NUM_ITEMS + 28)


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(1)
    return {"input_ids": torch.randint(5, 3000, (4, 12), generator=generator),
            "attention_mask": torch.ones(4, 12, dtype=torch.long), "task_id": int(Task.SEQUENTIAL)}


EXCLUDE = [["1", "2", "3"], [], [str(item) for item in range(1, 451)], ["500", "250"]]


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 499, 100_000])
def test_chunked_exact_ranking_returns_the_unchunked_items(model, catalog, batch, chunk_size):
    whole = model.generate(**batch, item_index=catalog, exclude_items=EXCLUDE, num_return_sequences=60,
                           decoding="exact", chunk_size=None)  # the [B, catalog] scores at once
    chunked = model.generate(**batch, item_index=catalog, exclude_items=EXCLUDE, num_return_sequences=60,
                             decoding="exact", chunk_size=chunk_size)
    assert chunked.item_ids == whole.item_ids
    for ours, reference in zip(chunked.scores, whole.scores):
        torch.testing.assert_close(torch.tensor(ours), torch.tensor(reference), atol=1e-5, rtol=1e-5)
    assert chunked.num_missing == whole.num_missing == [0, 0, 10, 0]
    for excluded, items in zip(EXCLUDE, chunked.item_ids):
        assert not set(excluded) & set(items)


def test_exact_top_items_equals_the_top_of_the_whole_catalogs_scores(model, catalog, batch):
    embeds, mask = model.embed_encoder_inputs(batch["input_ids"], batch["attention_mask"], None, batch["task_id"])
    states = model.encoder(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
    with torch.no_grad():
        scores = exact_item_scores(model, states, mask, catalog, catalog.allowed_counts(4))
        expected = _top_items(scores, 10)
        for chunk_size in (3, 128):
            positions, top = exact_top_items(model, states, mask, catalog, 10, None, chunk_size)
            assert torch.equal(positions, expected[0])
            torch.testing.assert_close(top, expected[1], atol=1e-5, rtol=1e-5)
        # More asked than the catalog holds: padded with -1 as the unchunked ranking pads.
        positions, top = exact_top_items(model, states, mask, catalog, NUM_ITEMS + 2, [[0]] * 4, 64)
        assert (positions[:, -3:] == -1).all() and (positions[:, :-3] >= 0).all() and top[:, -1].isinf().all()


def test_sasrec_top_k_in_chunks_of_items_equals_one_pass():
    model = SASRecModel(SASRecConfig(num_items=97, max_history_length=8, hidden_size=16, num_heads=2, dropout=0.0))
    histories = [[1, 2, 3], [97], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [50, 51]]
    whole = model.top_k(histories, 12, item_chunk=None)
    for item_chunk in (1, 10, 96, 1000):
        assert torch.equal(model.top_k(histories, 12, batch_size=3, item_chunk=item_chunk), whole)
    assert not set(whole[2].tolist()) & set(histories[2]) and 0 not in whole.flatten().tolist()
