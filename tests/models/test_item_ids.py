"""Item-id schemes: the one rule (mentions, targets, new tokens), whole-word ids, exact one-step ranking, and
every scheme end to end on real All_Beauty data (prepare -> train -> save -> from_pretrained / AutoTokenizer /
trust_remote_code)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers import fit, prompt_batch, run_as_remote_code, seeded_model

from rdrec_hf import Task
from rdrec_hf.data import load_amazon_reviews, load_rec_dataset, save_rec_dataset, training_history
from rdrec_hf.data.schema import item_id_scheme
from rdrec_hf.models.item_ids import item_token, item_token_offset, tokenize_with_item_ids
from rdrec_hf.models.prompting import encode_prompts, prompt_for
from rdrec_hf.models import ItemIdScheme, ItemIndex, ItemIndexing, RDRecForConditionalGeneration
from rdrec_hf.paths import all_beauty_reviews
from rdrec_hf.training import DataArguments, ModelArguments, RDRecTrainingArguments, train_rdrec

CODES = {"3": [0, 1, 0], "17": [0, 1, 1], "42": [2, 0]}


# ------------------------------------------------------------------------------------------ the rule
@pytest.mark.parametrize(
    "indexing, mention, target, new_tokens",
    [
        ("random", "item_17", "17", []),
        ("sequential", "item_17", "17", []),
        ("independent", "<item_17>", "<item_17>", ["<item_17>"]),
        ("collaborative", "<c0_0><c1_1><c2_1>", "<c0_0><c1_1><c2_1>", ["<c0_0>", "<c1_1>", "<c2_1>"]),
        ("collaborative+independent", "<c0_0><c1_1><item_17>", "<c0_0><c1_1><item_17>",
         ["<c0_0>", "<c1_1>", "<item_17>"]),
    ],
)
def test_scheme_gives_mention_target_and_new_tokens(indexing, mention, target, new_tokens):
    scheme = ItemIdScheme(indexing, CODES if ItemIndexing(indexing).is_collaborative else None)
    assert scheme.mention("17") == mention
    assert scheme.target_text("17") == target
    assert scheme.item_tokens("17") == new_tokens
    assert ItemIdScheme.from_dict(json.loads(json.dumps(scheme.to_dict()))) == scheme
    assert scheme.ends_with_eos == (indexing != "independent")


def test_scheme_rejects_missing_or_stray_codes():
    with pytest.raises(ValueError, match="needs the items' cluster codes"):
        ItemIdScheme("collaborative")
    with pytest.raises(ValueError, match="takes no cluster codes"):
        ItemIdScheme("independent", CODES)
    with pytest.raises(KeyError, match="no cluster code"):
        ItemIdScheme("collaborative", CODES).mention("99")
    with pytest.raises(ValueError, match="lacks the independent item tokens"):
        ItemIdScheme("independent").target_token_ids(["3"], copy.deepcopy(_bare_tokenizer()))


def _bare_tokenizer():
    from transformers import T5Tokenizer

    from rdrec_hf.paths import t5_tokenizer_dir

    return T5Tokenizer.from_pretrained(str(t5_tokenizer_dir()))


@pytest.mark.parametrize("indexing", ["independent", "collaborative", "collaborative+independent"])
def test_whole_word_ids_cover_every_new_token(t5_tokenizer, indexing):
    tokenizer = copy.deepcopy(t5_tokenizer)
    scheme = ItemIdScheme(indexing, CODES if ItemIndexing(indexing).is_collaborative else None)
    scheme.add_tokens(tokenizer, list(CODES))
    prompt = prompt_for(Task.SEQUENTIAL, user_id="12", history=["3", "17", "42"], scheme=scheme)
    encoded = encode_prompts(tokenizer, [prompt], max_length=64)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    words = encoded["whole_word_ids"][0]
    new = set(scheme.new_tokens(list(CODES)))
    new_positions = [position for position, token in enumerate(tokens) if token in new]
    assert len(new_positions) == sum(len(scheme.item_tokens(item)) for item in CODES)
    assert all(words[position] > 0 for position in new_positions)
    # user_12 is mention 1; the three items are mentions 2, 3, 4, each spanning all of its tokens
    assert sorted({words[position] for position in new_positions}) == [2, 3, 4]
    for item, mention in zip(CODES, (2, 3, 4)):
        assert [tokens[p] for p in new_positions if words[p] == mention] == scheme.item_tokens(item)
    # The catalog derives the same token ids from its targets, without the tokenizer (texts suppress them).
    catalog = ItemIndex.from_catalog(list(CODES), tokenizer, scheme=scheme)
    assert catalog.new_token_ids == sorted(tokenizer.convert_tokens_to_ids(sorted(new)))
    assert ItemIndex.from_catalog(list(CODES), t5_tokenizer).new_token_ids == []  # numbers as text: digits


# -------------------------------------------------------------------------------- exact ranking
CATALOG = [str(item) for item in range(1, 41)]


@pytest.fixture(scope="module")
def independent_tokenizer(t5_tokenizer):
    tokenizer = copy.deepcopy(t5_tokenizer)
    ItemIdScheme("independent").add_tokens(tokenizer, CATALOG)
    return tokenizer


def test_independent_catalog_is_one_token_without_eos(independent_tokenizer):
    index = ItemIndex.from_catalog(CATALOG, independent_tokenizer, scheme="independent")
    assert index.is_single_token and index.max_length == 1
    # Arithmetic ids: the tokenizer's placeholder <item> has id 32100, item N id 32100 + N - 1.
    assert independent_tokenizer.convert_tokens_to_ids("<item>") == 32100 and len(independent_tokenizer) == 32101
    assert index.token_ids[16] == [32116] and index.vocab_size == 32140 and index.item_token_offset == 32100
    sequences = torch.tensor([index.token_ids[16] + [0], index.token_ids[2] + [5]])
    assert index.items_of_sequences(sequences).tolist() == [16, 2]


def trained_independent_model(tokenizer, targets: list[str], steps: int = 40):
    """A tiny student trained (seeded, no dropout) to map user_i -> <item_targets[i]> (one-token targets)."""
    vocab_size = ItemIndex.from_catalog(CATALOG, tokenizer, scheme="independent").vocab_size
    model = seeded_model(seed=11, vocab_size=vocab_size, dropout_rate=0.0).train()
    scheme = ItemIdScheme("independent")
    prompts = [prompt_for(Task.SEQUENTIAL, user_id=str(user), history=[CATALOG[user]], scheme=scheme)
               for user in range(len(targets))]
    batch = prompt_batch(tokenizer, prompts, [Task.SEQUENTIAL] * len(targets))
    labels = torch.tensor(scheme.target_token_ids(targets, tokenizer))
    loss = fit(model, batch, labels, torch.optim.Adam(model.parameters(), lr=3e-2), steps)
    return model.eval(), batch, loss


def test_exact_ranking_equals_beam_search_on_a_trained_model(independent_tokenizer):
    targets = ["17", "3", "40", "22"]
    model, batch, final_loss = trained_independent_model(independent_tokenizer, targets)
    assert final_loss < 0.5
    index = ItemIndex.from_catalog(CATALOG, independent_tokenizer, scheme="independent")
    model.set_item_index(index)
    exclude = [["1", "2"], [], ["40"], CATALOG[:30]]
    beams = model.generate(**batch, item_index=index, num_beams=12, num_return_sequences=10,
                           exclude_items=exclude, decoding="beam")  # fmt: skip
    exact = model.generate(**batch, item_index=index, num_beams=12, num_return_sequences=10, exclude_items=exclude)
    assert exact.item_ids == beams.item_ids
    torch.testing.assert_close(torch.tensor(exact.scores), torch.tensor(beams.scores), atol=1e-4, rtol=1e-5)
    assert [items[0] for items in exact.item_ids[:2]] == targets[:2]
    assert "40" not in exact.item_ids[2] and not set(exact.item_ids[3]) & set(CATALOG[:30])
    # exact scores are the same log-likelihoods as teacher forcing
    scored = model.score_candidates(**batch, candidate_items=exact.item_ids)
    torch.testing.assert_close(scored, torch.tensor(exact.scores), atol=1e-4, rtol=1e-5)


def test_exact_ranking_counts_a_shortfall(independent_tokenizer):
    index = ItemIndex.from_catalog(CATALOG, independent_tokenizer, scheme="independent")
    model = seeded_model(seed=2, vocab_size=index.vocab_size)
    batch = prompt_batch(independent_tokenizer, ["user_1 history <item_3>"], [Task.SEQUENTIAL])
    output = model.generate(**batch, item_index=index, num_return_sequences=10, candidate_items=[["1", "2", "3"]],
                            exclude_items=[["3"]])  # fmt: skip
    assert sorted(output.item_ids[0]) == ["1", "2"] and output.num_missing == [8]


# ------------------------------------------------------------------------------ arithmetic item tokens
def per_item_tokenizer(t5_tokenizer, items):
    """The tokenizer earlier versions built for independent ids: one added token per item, in catalog order."""
    tokenizer = copy.deepcopy(t5_tokenizer)
    tokenizer.add_tokens([item_token(item) for item in items])
    return tokenizer


EDGE_TEXTS = [
    "user_12 history <item_3> <item_17> <item_40>",
    "<item_40>",
    "no item at all",
    "a<item_1><item_2>b, <item_39>: done.",
    "  spaced   <item_5>  out  ",
    "user_7 rates item_5 <item_5> and <item_05>",  # a text id and a zero-padded number beside a token
]


@pytest.mark.parametrize("side", ["right", "left"])
def test_arithmetic_item_tokens_encode_as_a_token_per_item(t5_tokenizer, independent_tokenizer, side):
    """The placeholder tokenizer gives the ids, offsets and whole-word ids of one token per item, cut alike."""
    old, new = per_item_tokenizer(t5_tokenizer, CATALOG), copy.deepcopy(independent_tokenizer)
    old.truncation_side = new.truncation_side = side
    for max_length in (64, 6, 2):
        assert encode_prompts(new, EDGE_TEXTS, max_length) == encode_prompts(old, EDGE_TEXTS, max_length)
    expected = old(EDGE_TEXTS, return_offsets_mapping=True)
    encoded = tokenize_with_item_ids(new, EDGE_TEXTS)
    assert encoded["input_ids"] == expected["input_ids"] and encoded["offset_mapping"] == expected["offset_mapping"]
    assert len(new) == 32101 and len(old) == 32140
    for tokenizer in (old, new):  # targets and the catalog, from the same rule
        assert ItemIdScheme("independent").target_token_ids(["1", "17", "40"], tokenizer) == [[32100], [32116], [32139]]
    old_index, new_index = (ItemIndex.from_catalog(CATALOG, tokenizer, scheme="independent") for tokenizer in (old, new))
    assert (old_index.token_ids, old_index.vocab_size) == (new_index.token_ids, new_index.vocab_size)
    assert (old_index.item_token_offset, new_index.item_token_offset) == (None, 32100)


def test_add_tokens_numbers_items_arithmetically_only_where_that_keeps_the_ids(t5_tokenizer):
    """The placeholder for a fresh tokenizer and a catalog numbered 1..N in order; one token per item for a tokenizer
    that holds them already (a checkpoint of earlier versions), for another numbering and for the collaborative
    schemes, whose ids are those of earlier versions."""
    scheme = ItemIdScheme("independent")
    fresh = copy.deepcopy(t5_tokenizer)
    assert scheme.add_tokens(fresh, CATALOG) == 1 and scheme.add_tokens(fresh, CATALOG + ["41"]) == 0
    assert item_token_offset(fresh) == 32100 and len(fresh) == 32101
    resumed = per_item_tokenizer(t5_tokenizer, CATALOG[:30])
    assert scheme.add_tokens(resumed, CATALOG) == 10 and item_token_offset(resumed) is None
    assert resumed.convert_tokens_to_ids("<item_40>") == 32139
    reordered = copy.deepcopy(t5_tokenizer)
    assert scheme.add_tokens(reordered, ["3", "1", "2"]) == 3 and reordered.convert_tokens_to_ids("<item_3>") == 32100
    both = copy.deepcopy(t5_tokenizer)
    ItemIdScheme("collaborative+independent", CODES).add_tokens(both, list(CODES))
    assert item_token_offset(both) is None and both.convert_tokens_to_ids("<item_3>") == 32102  # after <c0_0><c1_1>
    extended = copy.deepcopy(fresh)
    extended.add_tokens(["<later>"])  # its id is item 2's
    with pytest.raises(ValueError, match="tokens after <item>"):
        encode_prompts(extended, ["<item_1>"], 8)
    with pytest.raises(ValueError, match="holds <item> itself"):
        encode_prompts(fresh, ["a <item> b"], 8)


def test_a_tokenizer_saved_with_a_token_per_item_loads_and_encodes_as_before(t5_tokenizer, independent_tokenizer,
                                                                            tmp_path):
    from rdrec_hf.data import load_tokenizer

    per_item_tokenizer(t5_tokenizer, CATALOG).save_pretrained(tmp_path / "earlier")
    independent_tokenizer.save_pretrained(tmp_path / "arithmetic")
    scheme = ItemIdScheme("independent")
    prompts = [prompt_for(Task.SEQUENTIAL, user_id="3", history=CATALOG[::3], scheme=scheme),
               prompt_for(Task.TOPN, user_id="3", candidates=CATALOG[::-1], scheme=scheme),
               prompt_for(Task.EXPLANATION, user_id="3", item_id="40", scheme=scheme),
               prompt_for(Task.RATIONALE, item_id="7", kind="item", scheme=scheme)]
    earlier, arithmetic = load_tokenizer(tmp_path / "earlier"), load_tokenizer(tmp_path / "arithmetic")
    assert (len(earlier), len(arithmetic)) == (32140, 32101)
    for max_length in (128, 20):
        assert encode_prompts(arithmetic, prompts, max_length) == encode_prompts(earlier, prompts, max_length)


def test_item_index_saves_arithmetic_ids_as_their_offset_and_reads_earlier_files(t5_tokenizer, independent_tokenizer,
                                                                                  tmp_path):
    original_ids = [f"B{item:0>9}" for item in CATALOG]
    index = ItemIndex.from_catalog(CATALOG, independent_tokenizer, original_ids=original_ids, scheme="independent")
    payload = json.loads(index.save(tmp_path / "arithmetic").read_text())
    assert (payload["format_version"], payload["item_token_offset"]) == (3, 32100) and "token_ids" not in payload
    per_item = ItemIndex.from_catalog(CATALOG, per_item_tokenizer(t5_tokenizer, CATALOG), original_ids=original_ids,
                                      scheme="independent")
    per_item.save(tmp_path / "per_item")
    earlier = {  # format 2, as earlier versions wrote it: one object per item
        "format_version": 2, "indexing": "independent", "scheme": per_item.scheme.to_dict(), "numbering": None,
        "vocab_size": per_item.vocab_size, "eos_token_id": 1,
        "items": [{"item_id": item, "original_id": original, "token_ids": tokens}
                  for item, original, tokens in zip(CATALOG, original_ids, per_item.token_ids)],
    }
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    loaded = [ItemIndex.load(path) for path in (tmp_path / "arithmetic", tmp_path / "per_item", tmp_path / "earlier.json")]
    for other in [per_item, *loaded]:
        assert (other.item_ids, other.original_ids, other.token_ids, other.vocab_size) == (
            index.item_ids, index.original_ids, index.token_ids, index.vocab_size)
        assert torch.equal(other.edge_keys, index.edge_keys) and torch.equal(other.leaf_item, index.leaf_item)
    assert [catalog.item_token_offset for catalog in loaded] == [32100, None, None]
    assert index.item_token_ids == per_item.item_token_ids == list(range(32100, 32140)) == index.new_token_ids


# --------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def prepared(tmp_path_factory, shared):
    """All_Beauty prepared once per scheme (83 items: collaborative ids are one level of 20 clusters)."""
    folders = {}
    for indexing in ItemIndexing:
        folder = tmp_path_factory.mktemp(indexing.value.replace("+", "-"))
        data = load_amazon_reviews(all_beauty_reviews(), indexing=indexing, seed=0)
        save_rec_dataset(data, folder)
        folders[indexing] = folder
    return folders


def test_collaborative_codes_come_from_training_interactions_only(prepared):
    data = load_rec_dataset(prepared[ItemIndexing.COLLABORATIVE])
    scheme = item_id_scheme(data)
    items = data["items"]["item_id"]
    targets = [scheme.target_text(item) for item in items]
    assert len(set(targets)) == len(items) and set(scheme.codes) == set(items)
    # the same codes again from the training histories alone: the held-out items cannot have shaped them
    from rdrec_hf.data.item_graph import collaborative_codes, cooccurrence_graph

    position = {item: p for p, item in enumerate(items)}
    histories = [[position[item] for item in training_history(user_items)] for user_items in data["users"]["items"]]
    codes = collaborative_codes(cooccurrence_graph(histories, len(items)), 20, 500, 0)
    assert {item: codes[p] for item, p in position.items()} == scheme.codes


def independent_student(prepared, t5_tokenizer):
    """``(data, item ids, ItemIndex, a tiny fresh student)`` of All_Beauty, independent ids."""
    from rdrec_hf.models import RDRecConfig

    data = load_rec_dataset(prepared[ItemIndexing.INDEPENDENT])
    items = data["items"]["item_id"]
    tokenizer = copy.deepcopy(t5_tokenizer)
    item_id_scheme(data).add_tokens(tokenizer, items)
    index = ItemIndex.from_catalog(items, tokenizer, scheme="independent")
    return data, items, index, RDRecForConditionalGeneration(RDRecConfig.from_preset("tiny", vocab_size=index.vocab_size))


@pytest.mark.parametrize("method", ["svd", "transitions"])
def test_item_embedding_starts_come_from_training_interactions_only(prepared, t5_tokenizer, method):
    """The item tokens' rows are the factors of the training histories (rescaled), not of the whole ones."""
    import numpy as np

    from rdrec_hf.data.item_graph import spectral_item_embeddings, svd_item_embeddings, transition_graph
    from rdrec_hf.training.student import init_item_embeddings

    data, items, index, model = independent_student(prepared, t5_tokenizer)
    init_item_embeddings(model, data, index, method, seed=0)
    rows = model.get_input_embeddings().weight.detach()[[ids[0] for ids in index.token_ids]].numpy()
    position = {item: p for p, item in enumerate(items)}

    def factors(histories):
        histories = [[position[item] for item in user_items] for user_items in histories]
        if method == "svd":
            return svd_item_embeddings(histories, len(items), rows.shape[1], 0)
        return spectral_item_embeddings(transition_graph(histories, len(items)), rows.shape[1], 0)

    training = factors(training_history(user_items) for user_items in data["users"]["items"])
    whole = factors(data["users"]["items"])
    scale = np.abs(rows).sum() / np.abs(training).sum()
    np.testing.assert_allclose(rows, scale * training, atol=1e-5)
    assert not np.allclose(rows, np.abs(rows).sum() / np.abs(whole).sum() * whole, atol=1e-3)
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    random_data = load_rec_dataset(prepared[ItemIndexing.RANDOM])
    random_index = ItemIndex.from_catalog(random_data["items"]["item_id"], t5_tokenizer, scheme="random")
    with pytest.raises(ValueError, match="needs an item token per item"):
        init_item_embeddings(model, random_data, random_index, method, seed=0)


def test_sasrec_start_is_a_trained_sasrecs_item_embeddings(prepared, t5_tokenizer):
    """The `sasrec` start copies (rescaled) the item table of a SASRec trained on the training parts, in the
    catalog's order; one epoch, so the same seed gives the same rows."""
    import numpy as np

    from rdrec_hf.training.student import init_item_embeddings, train_start_sasrec

    data, items, index, model = independent_student(prepared, t5_tokenizer)
    width = model.config.d_model
    teacher = init_item_embeddings(model, data, index, "sasrec", seed=0, sasrec_max_epochs=1)
    rows = model.get_input_embeddings().weight.detach()[[ids[0] for ids in index.token_ids]].numpy()
    trained = train_start_sasrec(data, index, width, seed=0, max_epochs=1, patience=1).item_embeddings.weight.detach()[1:].numpy()
    assert trained.shape == (len(items), width)
    np.testing.assert_array_equal(teacher.item_embeddings.weight.detach()[1:].numpy(), trained)
    scale = np.abs(rows).sum() / np.abs(trained).sum()
    np.testing.assert_allclose(rows, scale * trained, atol=1e-5)
    other_seed = train_start_sasrec(data, index, width, seed=1, max_epochs=1, patience=1).item_embeddings.weight.detach()[1:].numpy()
    assert not np.allclose(trained, other_seed, atol=1e-3)


def test_random_and_independent_share_numbers_and_negatives(prepared):
    random_data = load_rec_dataset(prepared[ItemIndexing.RANDOM])
    for indexing in (ItemIndexing.INDEPENDENT, ItemIndexing.COLLABORATIVE):
        other = load_rec_dataset(prepared[indexing])
        assert other["users"]["items"] == random_data["users"]["items"]
        assert other["users"]["test_negatives"] == random_data["users"]["test_negatives"]


@pytest.mark.parametrize("indexing", list(ItemIndexing))
def test_every_scheme_round_trips_through_training_and_loading(prepared, indexing, tmp_path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    output_dir = tmp_path / "student"
    args = RDRecTrainingArguments(
        output_dir=str(output_dir), max_steps=3, per_device_train_batch_size=8, learning_rate=5e-3,
        save_strategy="no", eval_strategy="no", max_source_length=96, max_target_length=16,
        use_cpu=True, report_to="none", seed=3, task_mixture="0:1:0:0", logging_steps=1,
    )  # fmt: skip
    model_args = ModelArguments(
        model_preset="tiny", config_overrides="dropout_rate=0.0",
        item_embedding_init={ItemIndexing.INDEPENDENT: "svd", ItemIndexing.COLLABORATIVE_INDEPENDENT: "transitions"}.get(
            indexing, "default"),
    )
    trainer, _ = train_rdrec(model_args, DataArguments(dataset=str(prepared[indexing])), args)
    data = load_rec_dataset(prepared[indexing])
    scheme = item_id_scheme(data)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    new_tokens = scheme.new_tokens(data["items"]["item_id"])
    # Independent ids: the tokenizer holds their placeholder alone; the catalog's vocabulary runs past it.
    added = ["<item>"] if indexing is ItemIndexing.INDEPENDENT else new_tokens
    assert all(token in tokenizer.get_vocab() for token in added) and len(tokenizer) == 32100 + len(added)
    model = RDRecForConditionalGeneration.from_pretrained(output_dir)
    assert model.item_index.scheme == scheme
    assert model.config.vocab_size >= model.item_index.vocab_size == 32100 + len(new_tokens)
    history = data["users"]["items"][0][:3]
    prompt = prompt_for(Task.SEQUENTIAL, user_id="1", history=history, scheme=model.item_index.scheme)
    batch = prompt_batch(tokenizer, [prompt], [Task.SEQUENTIAL])
    output = model.generate(**batch, item_index=model.item_index, num_beams=5, num_return_sequences=5,
                            exclude_items=[history])  # fmt: skip
    assert len(output.item_ids[0]) == 5 and not set(output.item_ids[0]) & set(history)
    auto = AutoModelForSeq2SeqLM.from_pretrained(output_dir)
    torch.testing.assert_close(auto(**batch, decoder_input_ids=torch.zeros(1, 1, dtype=torch.long)).logits,
                               model(**batch, decoder_input_ids=torch.zeros(1, 1, dtype=torch.long)).logits)  # fmt: skip
    if indexing is ItemIndexing.COLLABORATIVE_INDEPENDENT:  # the richest scheme also loads as Hub code
        remote = run_as_remote_code(REMOTE_CODE_SCRIPT, output_dir, batch, tmp_path, extra_args=[json.dumps(history)])
        assert remote == {"items": output.item_ids, "scheme": scheme.indexing.value}


REMOTE_CODE_SCRIPT = """
history = json.loads(sys.argv[4])
out = model.generate(**batch, item_index=model.item_index, num_beams=5, num_return_sequences=5, exclude_items=[history])
print(json.dumps({"items": out.item_ids, "scheme": model.item_index.indexing.value}))
"""


def test_lora_trains_and_saves_the_new_item_token_rows(independent_tokenizer, tmp_path):
    from safetensors.torch import load_file

    from rdrec_hf.training import build_student

    index = ItemIndex.from_catalog(CATALOG, independent_tokenizer, scheme="independent")
    base = seeded_model(seed=4, vocab_size=index.vocab_size)
    base.set_item_index(index)
    base.save_pretrained(tmp_path / "base")
    model_args = ModelArguments(model_name_or_path=str(tmp_path / "base"), use_peft=True)
    model = build_student(model_args, independent_tokenizer, seed=0, item_index=index)
    trained = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert any("trainable_tokens" in name for name in trained)
    new_rows = torch.tensor(index.item_token_ids)
    before = model.get_input_embeddings()(new_rows).detach().clone()
    old_rows = torch.tensor([5, 100])
    old_before = model.get_input_embeddings()(old_rows).detach().clone()
    batch = prompt_batch(independent_tokenizer, ["user_1 history <item_3>", "user_2 history <item_9>"],
                         [Task.SEQUENTIAL] * 2)  # fmt: skip
    labels = torch.tensor(ItemIdScheme("independent").target_token_ids(["4", "10"], independent_tokenizer))
    fit(model, batch, labels, torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2), 3)
    assert not torch.allclose(model.get_input_embeddings()(new_rows), before)
    torch.testing.assert_close(model.get_input_embeddings()(old_rows), old_before)  # only the new rows train
    model.save_pretrained(tmp_path / "adapter")
    saved = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert any("trainable_tokens" in key for key in saved)


def test_the_sasrec_start_trains_with_a_sampled_softmax_when_asked(prepared, t5_tokenizer):
    """`item_embedding_init_negatives`: the start's SASRec draws shared negatives instead of scoring the catalog;
    a different loss, so different weights from the same seed; more negatives than items is refused."""
    import numpy as np

    from rdrec_hf.training import ModelArguments
    from rdrec_hf.training.student import train_start_sasrec

    data, items, index, model = independent_student(prepared, t5_tokenizer)
    width = model.config.d_model
    full = train_start_sasrec(data, index, width, seed=0, max_epochs=1, patience=1)
    sampled = train_start_sasrec(data, index, width, seed=0, max_epochs=1, patience=1, negatives=5)
    assert not np.allclose(full.item_embeddings.weight.detach().numpy(), sampled.item_embeddings.weight.detach().numpy())
    with pytest.raises(ValueError, match="exceeds the catalog"):
        train_start_sasrec(data, index, width, seed=0, max_epochs=1, patience=1, negatives=len(items) + 1)
    with pytest.raises(ValueError, match="item_embedding_init_negatives must be at least 1"):
        ModelArguments(model_preset="tiny", item_embedding_init="sasrec", item_embedding_init_negatives=0)


@pytest.mark.parametrize("shuffled", [False, True])
def test_the_one_token_trie_built_with_tensors_equals_the_item_by_item_build(shuffled):
    """Independent ids skip the per-item Python loop; every tensor decoding reads is the loop's, node ids included."""
    tokens = list(range(32100, 32100 + 50))
    if shuffled:
        tokens = [tokens[(7 * position) % 50] for position in range(50)]  # 7 is coprime to 50: a permutation
    index = ItemIndex([str(n) for n in range(1, 51)], [[token] for token in tokens], 32150, eos_token_id=1,
                      scheme="independent")
    fast = {name: getattr(index, name) for name in ("edge_keys", "edge_child", "edge_token", "node_edge_start",
                                                    "item_paths", "item_leaf", "leaf_item", "subtree_counts")}
    fast_sizes = (index.num_nodes, index.max_length, index.max_children)
    index._build_trie_item_by_item()
    index._index_trie()
    assert fast_sizes == (index.num_nodes, index.max_length, index.max_children)
    for name, tensor in fast.items():
        assert torch.equal(tensor, getattr(index, name)), name
    with pytest.raises(ValueError, match="same target tokens"):  # a repeated token falls back to the loop's message
        ItemIndex(["1", "2"], [[32100], [32100]], 32150, eos_token_id=1, scheme="independent")
