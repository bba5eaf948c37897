"""ItemIndex, item decoding (the trie beam search written for item ids, exact rankings, and transformers' beam
search as the reference) and exact candidate scoring (real T5 vocabulary, tiny models)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers import memorised_model, prompt_batch, seeded_model

from rdrec_hf import Task
from rdrec_hf.models import ItemIdScheme, ItemIndex, ItemIndexing
from rdrec_hf.models.item_decoding import T5ItemDecoder
from rdrec_hf.paths import p5_dataset_dir

CATALOG = [str(item) for item in range(1, 3001)]
PROMPTS = ["user_12 item_5 item_1234 item_77", "user_3 item_9", "user_4 item_2999 item_1", "user_8 item_300"]


@pytest.fixture(scope="module")
def catalog_index(t5_tokenizer):
    return ItemIndex.from_catalog(CATALOG, t5_tokenizer, original_ids=[f"B{item:0>9}" for item in CATALOG])


@pytest.fixture(scope="module")
def model():
    return seeded_model(seed=3)


@pytest.fixture(params=["beam", "transformers"])
def decoding(request):
    """The search under test: ours, and transformers' beam search it must agree with."""
    return request.param


@pytest.fixture(scope="module")
def batch(t5_tokenizer):
    return prompt_batch(t5_tokenizer, PROMPTS, [Task.SEQUENTIAL, Task.TOPN, Task.SEQUENTIAL, Task.TOPN])


# ------------------------------------------------------------------------------------------- ItemIndex
def test_index_trie_and_round_trip(catalog_index, t5_tokenizer, tmp_path):
    assert len(catalog_index) == 3000 and "17" in catalog_index and "0" not in catalog_index
    assert catalog_index.token_ids[catalog_index.position["1234"]] == t5_tokenizer("1234").input_ids
    assert catalog_index.original_id("42") == "B000000042"
    assert catalog_index.subtree_counts[0] == 3000
    saved = catalog_index.save(tmp_path)
    loaded = ItemIndex.load(tmp_path)
    assert saved.name == "item_index.json"
    assert (loaded.item_ids, loaded.original_ids, loaded.token_ids) == (
        catalog_index.item_ids, catalog_index.original_ids, catalog_index.token_ids)  # fmt: skip
    assert (loaded.indexing, loaded.vocab_size, loaded.eos_token_id) == (ItemIndexing.SEQUENTIAL, 32100, 1)
    assert loaded.edge_keys.equal(catalog_index.edge_keys) and loaded.item_paths.equal(catalog_index.item_paths)


def test_real_beauty_catalog_with_asins(t5_tokenizer, tmp_path):
    id2item = json.loads((p5_dataset_dir("beauty") / "datamaps.json").read_text())["id2item"]
    index = ItemIndex.from_catalog(list(id2item), t5_tokenizer, original_ids=list(id2item.values()))
    assert len(index) == 12101 and index.max_length == 4  # e.g. "12101" -> ["▁12", "101", "</s>"]
    assert index.subtree_counts[0] == 12101 and (index.leaf_item >= 0).sum() == 12101
    index.save(tmp_path)
    assert ItemIndex.load(tmp_path).original_id("4567") == id2item["4567"]


def test_items_of_sequences_reads_up_to_the_first_eos(catalog_index, t5_tokenizer):
    tokens_1234 = t5_tokenizer("1234").input_ids  # ends with EOS
    rows = [
        tokens_1234,  # padded with pad below
        tokens_1234 + [1, 1],  # finished beams are padded with EOS when pad == decoder start
        tokens_1234[:-1],  # no EOS: incomplete
        t5_tokenizer("99999").input_ids,  # not in the catalog
        [1],  # EOS alone
    ]
    sequences = torch.tensor([row + [0] * (6 - len(row)) for row in rows])
    expected = catalog_index.position["1234"]
    assert catalog_index.items_of_sequences(sequences).tolist() == [expected, expected, -1, -1, -1]


def test_allowed_counts_prune_exclusions_and_restrict_to_candidates(catalog_index):
    counts = catalog_index.allowed_counts(3, exclude_items=[["5", "6"], [], ["7"]], candidate_items=[None, None, ["7", "8"]])
    leaf = catalog_index.item_leaf
    position = catalog_index.position
    assert counts[:, 0].tolist() == [2998, 3000, 1]
    assert counts[0, leaf[position["5"]]] == 0 and counts[1, leaf[position["5"]]] == 1
    assert counts[2, leaf[position["8"]]] == 1 and counts[2, leaf[position["9"]]] == 0


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda tok: ItemIndex.from_catalog([], tok), "catalog is empty"),
        (lambda tok: ItemIndex.from_catalog(["1", "2", "1"], tok), "'1' appears more than once"),
        (lambda tok: ItemIndex(["1"], [[209]], vocab_size=32100, eos_token_id=1), "must end with EOS"),
        (lambda tok: ItemIndex(["1"], [[40000, 1]], vocab_size=32100, eos_token_id=1), "exceed the vocabulary"),
        (lambda tok: ItemIndex(["1", "01"], [[209, 1], [209, 1]], 32100, 1), "same target tokens"),
        (lambda tok: ItemIndex(["1"], [[209, 1]], 32100, 1, scheme="alphabetical"), "alphabetical"),
    ],
)
def test_bad_catalogs_raise(t5_tokenizer, build, message):
    with pytest.raises(ValueError, match=message):
        build(t5_tokenizer)


def test_unknown_ids_and_mismatched_vocabulary_raise(model, batch, catalog_index):
    with pytest.raises(KeyError, match="excluded item id '0'"):
        catalog_index.allowed_counts(1, exclude_items=[["0"]])
    with pytest.raises(ValueError, match="exclude_items has 1 entries but the batch has 4"):
        model.generate(**batch, item_index=catalog_index, exclude_items=[["1"]])
    with pytest.raises(ValueError, match="need item_index"):
        model.generate(**batch, exclude_items=[[]] * 4)
    small_vocabulary = ItemIndex(["1", "2"], [[5, 1], [6, 1]], vocab_size=100, eos_token_id=1)
    with pytest.raises(ValueError, match="tokenizer of 100 tokens but the model's vocabulary has 32100"):
        model.generate(**batch, item_index=small_vocabulary)
    with pytest.raises(ValueError, match="tokenizer of 100 tokens"):
        model.set_item_index(small_vocabulary)
    larger_vocabulary = ItemIndex(["1"], [[40000, 1]], vocab_size=40001, eos_token_id=1)
    with pytest.raises(ValueError, match="tokenizer of 40001 tokens"):
        model.set_item_index(larger_vocabulary)
    # t5-small pads its 32,100-token vocabulary to 32,128 embedding rows: the T5 catalog still fits.
    seeded_model(vocab_size=32128).set_item_index(catalog_index)
    with pytest.raises(KeyError, match="candidate item id '99999'"):
        model.score_candidates(**batch, candidate_items=[["99999"]] * 4, item_index=catalog_index)


# ---------------------------------------------------------------------------------- constrained beams
def check_ranked_items(output, batch_size: int, k: int):
    """Every list holds k distinct ids, scores best first."""
    assert len(output.item_ids) == batch_size and output.num_missing == [0] * batch_size
    for items, scores in zip(output.item_ids, output.scores):
        assert len(items) == k == len(set(items))
        assert scores == sorted(scores, reverse=True)


def test_constrained_generation_returns_valid_unique_items_with_exact_scores(model, batch, catalog_index, decoding):
    output = model.generate(**batch, item_index=catalog_index, num_beams=20, num_return_sequences=20, decoding=decoding)
    check_ranked_items(output, batch_size=4, k=20)
    assert all(item in catalog_index for items in output.item_ids for item in items)
    exact = model.score_candidates(**batch, candidate_items=output.item_ids, item_index=catalog_index)
    torch.testing.assert_close(exact, torch.tensor(output.scores), atol=1e-4, rtol=1e-5)


def test_exclusions_are_never_returned(model, batch, catalog_index, decoding):
    first = model.generate(**batch, item_index=catalog_index, num_beams=10, num_return_sequences=10, decoding=decoding)
    excluded = [items[:5] + ["1", "2"] for items in first.item_ids]  # the best ones must now be skipped
    second = model.generate(
        **batch, item_index=catalog_index, exclude_items=excluded, num_beams=10, num_return_sequences=10,
        decoding=decoding,
    )
    check_ranked_items(second, batch_size=4, k=10)
    for items, banned in zip(second.item_ids, excluded):
        assert not set(items) & set(banned)


def test_candidate_subsets_and_shortfalls(model, batch, catalog_index, decoding):
    candidates = [[str(item) for item in range(100, 200)], None, ["5", "77", "1234"], ["10", "20"]]
    excluded = [[], [], [], ["10", "20"]]
    output = model.generate(
        **batch,
        item_index=catalog_index,
        candidate_items=candidates,
        exclude_items=excluded,
        num_beams=20,
        num_return_sequences=5,
        decoding=decoding,
    )
    assert set(output.item_ids[0]) <= set(candidates[0]) and len(output.item_ids[0]) == 5
    assert len(output.item_ids[1]) == 5
    assert sorted(output.item_ids[2]) == ["1234", "5", "77"]  # only 3 exist: returned, none filled in
    assert output.item_ids[3] == [] and output.scores[3] == []  # everything allowed was excluded
    assert output.num_missing == [0, 0, 2, 5]
    exact = model.score_candidates(**batch, candidate_items=[["5", "77", "1234"]] * 4, item_index=catalog_index)
    assert output.item_ids[2] == [["5", "77", "1234"][i] for i in exact[2].argsort(descending=True).tolist()]


def test_free_text_generation_uses_whole_words_and_task(model, batch):
    generated = model.generate(
        **batch, max_new_tokens=3, num_beams=1, do_sample=False, return_dict_in_generate=True, output_scores=True
    )
    first_step = model(**batch, decoder_input_ids=torch.zeros(4, 1, dtype=torch.long)).logits[:, -1]
    torch.testing.assert_close(generated.scores[0], first_step, atol=1e-4, rtol=1e-5)
    other_task = model.generate(**dict(batch, task_id=torch.full((4,), Task.EXPLANATION)), max_new_tokens=1,
                                return_dict_in_generate=True, output_scores=True)  # fmt: skip
    assert not torch.allclose(other_task.scores[0], generated.scores[0])


def test_score_candidates_handles_ragged_lists_in_small_passes(model, batch, catalog_index):
    candidates = [["1", "22", "333"], ["2999"], ["5", "6"], ["1000", "1001", "1002"]]
    chunked = model.score_candidates(**batch, candidate_items=candidates, item_index=catalog_index, rows_per_pass=2)
    whole = model.score_candidates(**batch, candidate_items=candidates, item_index=catalog_index)
    torch.testing.assert_close(chunked, whole)
    assert whole.shape == (4, 3) and whole[1, 1:].eq(float("-inf")).all() and whole[2, 2] == float("-inf")
    # Teacher forcing by hand (the model's own forward, one candidate at a time) for every candidate.
    for row, items in enumerate(candidates):
        for slot, item in enumerate(items):
            labels = torch.tensor([catalog_index.token_ids[catalog_index.position[item]]])
            logits = model(**{key: value[row : row + 1] for key, value in batch.items()}, labels=labels).logits
            manual = torch.log_softmax(logits, -1)[0].gather(1, labels[0, :, None]).sum()
            torch.testing.assert_close(whole[row, slot], manual, atol=1e-5, rtol=1e-5)


SMALL_CATALOG = ["3", "17", "42", "123", "1234", "5678", "9", "12101", "777", "31", "2024", "86", "404", "1000", "55"]


def check_beams_rank_like_exact_scores(model, batch, index: ItemIndex, decoding: str) -> list[list[str]]:
    """20 beams over a 15-item catalog explore every prefix, so beam search must reproduce the exact ranking."""
    beams = model.generate(**batch, item_index=index, num_beams=20, num_return_sequences=len(SMALL_CATALOG),
                           decoding=decoding)  # fmt: skip
    exact = model.score_candidates(**batch, candidate_items=[SMALL_CATALOG] * len(beams.item_ids), item_index=index)
    for row, items in enumerate(beams.item_ids):
        assert items == [SMALL_CATALOG[i] for i in exact[row].argsort(descending=True).tolist()]
        torch.testing.assert_close(torch.tensor(beams.scores[row]), exact[row].sort(descending=True).values,
                                   atol=1e-4, rtol=1e-5)  # fmt: skip
    return beams.item_ids


def test_beam_ranking_agrees_with_exact_scores_on_random_weights(model, batch, t5_tokenizer, decoding):
    check_beams_rank_like_exact_scores(model, batch, ItemIndex.from_catalog(SMALL_CATALOG, t5_tokenizer), decoding)


def test_beam_ranking_agrees_with_exact_scores_on_a_trained_model(t5_tokenizer, decoding):
    targets = ["1234", "17", "12101", "9", "777", "404"]
    model, batch, final_loss = memorised_model(t5_tokenizer, targets)
    assert final_loss < 1.0
    index = ItemIndex.from_catalog(SMALL_CATALOG, t5_tokenizer)
    ranked = check_beams_rank_like_exact_scores(model, batch, index, decoding)
    assert [items[0] for items in ranked] == targets


# ------------------------------------------------------------------- our search against transformers'
def assert_same_items(ours, reference):
    """Same items in the same order, scores within 1e-4, same shortfalls."""
    assert ours.item_ids == reference.item_ids and ours.num_missing == reference.num_missing
    for our_scores, reference_scores in zip(ours.scores, reference.scores):
        torch.testing.assert_close(torch.tensor(our_scores), torch.tensor(reference_scores), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("num_beams, k", [(20, 10), (5, 5), (12, 1)])
def test_trie_beam_search_returns_what_transformers_beam_search_returns(model, batch, catalog_index, num_beams, k):
    exclude = [["5", "1234"], [], CATALOG[:400], ["300"]]
    candidates = [None, [str(item) for item in range(1000, 1100)], None, ["1", "2", "3"]]
    for options in ({}, {"exclude_items": exclude}, {"exclude_items": exclude, "candidate_items": candidates}):
        outputs = [
            model.generate(**batch, item_index=catalog_index, num_beams=num_beams, num_return_sequences=k,
                           decoding=decoding, **options)
            for decoding in ("beam", "transformers")
        ]  # fmt: skip
        assert_same_items(*outputs)


def test_trie_beam_search_agrees_on_a_trained_model_and_stops_early(t5_tokenizer):
    targets = ["1234", "17", "12101", "9", "777", "404"]
    model, batch, _ = memorised_model(t5_tokenizer, targets)
    index = ItemIndex.from_catalog([str(item) for item in range(1, 12102)], t5_tokenizer)
    ours = model.generate(**batch, item_index=index, num_beams=8, num_return_sequences=8, decoding="beam")
    reference = model.generate(**batch, item_index=index, num_beams=8, num_return_sequences=8, decoding="transformers")
    assert_same_items(ours, reference)
    assert [items[0] for items in ours.item_ids] == targets


def collaborative_catalog(tokenizer):
    """40 items on a 3-level code tree (3 x 4 x 4 values), the tokenizer with the code tokens added."""
    codes = {str(item): [item % 3, (item // 3) % 4, item // 12] for item in range(1, 41)}
    tokenizer = copy.deepcopy(tokenizer)
    scheme = ItemIdScheme("collaborative", codes)
    scheme.add_tokens(tokenizer, list(codes))
    return ItemIndex.from_catalog(list(codes), tokenizer, scheme=scheme), len(tokenizer)


def test_trie_beam_search_and_exact_ranking_with_collaborative_ids(t5_tokenizer):
    index, vocab_size = collaborative_catalog(t5_tokenizer)
    model = seeded_model(seed=5, vocab_size=vocab_size)
    batch = prompt_batch(t5_tokenizer, PROMPTS, [Task.SEQUENTIAL] * 4)
    exclude = [["1", "2"], [], [str(item) for item in range(1, 30)], ["40"]]
    ours, reference = (
        model.generate(**batch, item_index=index, num_beams=6, num_return_sequences=6, exclude_items=exclude,
                       decoding=decoding)
        for decoding in ("beam", "transformers")
    )  # fmt: skip
    assert_same_items(ours, reference)
    # Exact: every allowed item scored through the shared trie prefixes, equal to teacher forcing.
    exact = model.generate(**batch, item_index=index, num_return_sequences=40, exclude_items=exclude, decoding="exact")
    assert exact.num_missing == [2, 0, 29, 1]
    scored = model.score_candidates(**batch, candidate_items=exact.item_ids, item_index=index)
    for row, scores in enumerate(exact.scores):
        torch.testing.assert_close(scored[row, : len(scores)], torch.tensor(scores), atol=1e-4, rtol=1e-5)
        assert scores == sorted(scores, reverse=True)


def test_exact_ranking_of_candidate_subsets_equals_teacher_forcing(model, batch, catalog_index):
    candidates = [[str(item) for item in range(100, 200)], ["5", "77", "1234", "12", "123"], ["2999"], CATALOG[:7]]
    exact = model.generate(**batch, item_index=catalog_index, candidate_items=candidates, num_return_sequences=100,
                           decoding="exact")  # fmt: skip
    scored = model.score_candidates(**batch, candidate_items=candidates, item_index=catalog_index)
    for row, items in enumerate(exact.item_ids):
        order = scored[row].argsort(descending=True)[: len(candidates[row])].tolist()
        assert items == [candidates[row][i] for i in order]
        torch.testing.assert_close(torch.tensor(exact.scores[row]), scored[row, order], atol=1e-4, rtol=1e-5)
    assert exact.num_missing == [0, 95, 99, 93]


def test_the_decoder_keeps_one_cross_attention_copy_per_example(model, batch):
    """Beams read their example's encoder keys/values by broadcasting: nothing in the decoder grows with W."""
    encoded = model.encoder(inputs_embeds=model.embed_encoder_inputs(**batch)[0]).last_hidden_state
    decoder = T5ItemDecoder(model, encoded, torch.ones(encoded.shape[:2]), max_steps=3)
    start = torch.zeros(4, 1, dtype=torch.long)
    first = decoder.step(start)
    second = decoder.step(torch.full((4, 16), 7), parents=torch.zeros(4, 16, dtype=torch.long))
    assert all(keys.shape[0] == 4 and keys.dim() == 4 for keys in decoder.cross_keys)
    # 16 identical continuations of the one start row give 16 identical rows, equal to the full forward.
    full = model(encoder_outputs=(encoded,), decoder_input_ids=torch.tensor([[0, 7]] * 4)).logits.log_softmax(-1)
    torch.testing.assert_close(first[:, 0], full[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(second, full[:, 1:2].expand(-1, 16, -1), atol=1e-5, rtol=1e-5)


def test_decoding_options_are_checked(model, batch, catalog_index):
    with pytest.raises(ValueError, match="'beamz' is not a valid ItemDecoding"):
        model.generate(**batch, item_index=catalog_index, decoding="beamz")
    with pytest.raises(ValueError, match="takes no logits_processor or generation arguments"):
        model.generate(**batch, item_index=catalog_index, decoding="beam", temperature=0.5)
    with pytest.raises(ValueError, match="need item_index"):
        model.generate(**batch, decoding="beam")
