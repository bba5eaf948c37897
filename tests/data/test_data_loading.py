"""Loaders, schema, indexing, splits, negatives, storage and bad input, on the real shared data."""

from __future__ import annotations

import gzip
import json
import logging
import shutil

import pytest

from rdrec_hf import ItemIndexing
from rdrec_hf.data import (
    DataFormatError,
    choose_explanation,
    export_hub_folder,
    get_metadata,
    load_amazon_reviews,
    load_p5_dataset,
    load_rec_dataset,
    save_rec_dataset,
    split_target,
    validate_rec_dataset,
)
from rdrec_hf.evaluation.baselines import leak_rule_ranking
from rdrec_hf.evaluation.ranking import ranking_metrics
from rdrec_hf.paths import all_beauty_reviews, p5_dataset_dir


@pytest.fixture(scope="session")
def beauty(shared):  # the file's numbering, which these tests read
    return load_p5_dataset(p5_dataset_dir("beauty"), indexing="sequential")


@pytest.fixture(scope="session")
def beauty_random(shared):
    return load_p5_dataset(p5_dataset_dir("beauty"), indexing="random")


@pytest.fixture(scope="session")
def all_beauty(shared):
    return load_amazon_reviews(all_beauty_reviews())


def _item_names(data):
    return dict(zip(data["items"]["item_id"], data["items"]["original_id"]))


@pytest.mark.parametrize(
    "name, users, items, interactions", [("beauty", 22_363, 12_101, 198_502), ("sports", 35_598, 18_357, 296_337)]
)
def test_p5_counts_are_exact(shared, beauty, name, users, items, interactions):
    data = beauty if name == "beauty" else load_p5_dataset(p5_dataset_dir(name))
    assert data["users"].num_rows == users
    assert data["items"].num_rows == items
    assert sum(len(sequence) for sequence in data["users"]["items"]) == interactions
    metadata = validate_rec_dataset(data)
    assert metadata.counts["interactions"] == interactions
    assert metadata.skipped == {}
    assert "reviews" not in data  # the shared P5 folders have no explanation files


@pytest.mark.parametrize("loader", ["load_p5_dataset", "load_amazon_reviews", "load_source"])
def test_public_loaders_default_to_the_leak_free_numbering(shared, small_p5, loader):
    """Called without `indexing`, every public loader numbers items `independent` (DEFAULT_INDEXING), not the
    paper's leaking order: the items are not 1, 2, 3, ... in order of first appearance."""
    from rdrec_hf.data import load_source

    source = small_p5 if loader == "load_p5_dataset" else all_beauty_reviews()
    data = {"load_p5_dataset": load_p5_dataset, "load_amazon_reviews": load_amazon_reviews,
            "load_source": load_source}[loader](source)
    assert get_metadata(data).indexing is ItemIndexing.INDEPENDENT
    first_appearance = list(dict.fromkeys(item for items in data["users"]["items"] for item in items))
    assert first_appearance != [str(number) for number in range(1, len(first_appearance) + 1)]


def test_p5_keeps_the_file_numbering_under_sequential_indexing(beauty):
    first = beauty["users"][0]
    assert (first["user_id"], first["original_id"], first["items"]) == ("1", "A1YJEY40YUW4SE", ["1", "2", "3", "4", "5"])
    assert beauty["items"]["item_id"][:3] == ["1", "2", "3"]
    assert get_metadata(beauty).indexing is ItemIndexing.SEQUENTIAL


def test_random_indexing_renames_items_consistently(beauty, beauty_random):
    assert get_metadata(beauty_random).indexing is ItemIndexing.RANDOM
    names, random_names = _item_names(beauty), _item_names(beauty_random)
    assert sorted(random_names, key=int) == [str(i) for i in range(1, 12_102)]
    assert sorted(random_names.values()) == sorted(names.values())
    changed = 0
    for plain, shuffled in zip(beauty["users"].select(range(300)), beauty_random["users"].select(range(300))):
        # the same asins in the same order, and (same seed) the same negative items, under other names
        for column in ("items", "valid_negatives", "test_negatives"):
            assert [names[i] for i in plain[column]] == [random_names[i] for i in shuffled[column]]
        changed += plain["items"] != shuffled["items"]
    assert changed > 290


def test_negatives_are_distinct_outside_the_users_items(beauty):
    for user in beauty["users"].select(range(2000)):
        for column in ("valid_negatives", "test_negatives"):
            negatives = user[column]
            assert len(negatives) == 99 == len(set(negatives))
            assert not set(negatives) & set(user["items"])
            assert all(1 <= int(item) <= 12_101 for item in negatives)


def test_same_seed_same_dataset_other_seed_other_samples(shared):
    def load(seed):
        data = load_amazon_reviews(all_beauty_reviews(), indexing="random", seed=seed)
        return {split: data[split].to_dict() for split in ("users", "items", "reviews")}

    first, again, other = load(0), load(0), load(1)
    assert again == first
    for split, column in [("items", "original_id"), ("users", "items"), ("users", "test_negatives")]:
        assert other[split][column] != first[split][column]
    assert sorted(other["items"]["original_id"]) == sorted(first["items"]["original_id"])


def test_all_beauty_reviews(all_beauty):
    metadata = validate_rec_dataset(all_beauty)
    assert metadata.counts["raw_users"] == 991 and metadata.counts["raw_items"] == 85
    assert metadata.counts["raw_reviews"] == 5269
    # 15 users have fewer than 3 distinct items; 2 items were reviewed only by them
    assert metadata.skipped["user_too_short"] == 15
    assert all_beauty["users"].num_rows == 991 - 15
    assert all_beauty["items"].num_rows == 83
    assert metadata.skipped["duplicate_user_item"] == 5269 - 4092  # 4,092 distinct pairs
    assert metadata.counts["interactions"] == all_beauty["reviews"].num_rows + metadata.skipped["review_without_text"]
    # 83 items: nobody can get 99 negatives, so everyone gets all the items they have not reviewed
    assert metadata.counts["users_with_fewer_negatives"] == all_beauty["users"].num_rows
    for user in all_beauty["users"]:
        assert len(set(user["items"])) == len(user["items"]) >= 3
        for column in ("valid_negatives", "test_negatives"):
            assert sorted(user[column], key=int) == [
                str(i) for i in range(1, 84) if str(i) not in set(user["items"])
            ]


def test_all_beauty_reviews_follow_the_leave_one_out_split_in_time_order(all_beauty):
    sequences = dict(zip(all_beauty["users"]["user_id"], all_beauty["users"]["items"]))
    times: dict[str, dict[str, int]] = {}
    for review in all_beauty["reviews"]:
        items = sequences[review["user_id"]]
        expected = {items[-1]: "test", items[-2]: "validation"}.get(review["item_id"], "train")
        assert review["split"] == expected
        assert review["explanation"] and review["explanation"] in " ".join(review["review"].split())
        times.setdefault(review["user_id"], {})[review["item_id"]] = review["timestamp"]
    for user_id, item_times in times.items():
        ordered = [item_times[item] for item in sequences[user_id] if item in item_times]
        assert ordered == sorted(ordered)


def test_choose_explanation_rule():
    assert choose_explanation("Love it! This cream keeps my skin soft all day. Buy it.") == (
        "This cream keeps my skin soft all day."
    )
    assert choose_explanation("Great!  Smells  nice") == "Smells nice"  # none has 4+ words: the longest
    long_sentence = " ".join(["word"] * 50)
    assert choose_explanation(long_sentence) == " ".join(["word"] * 30)


def test_save_and_load_round_trip_keeps_metadata(all_beauty, tmp_path):
    save_rec_dataset(all_beauty, tmp_path / "saved")
    loaded = load_rec_dataset(tmp_path / "saved")
    assert get_metadata(loaded) == get_metadata(all_beauty)
    for split in all_beauty:
        assert loaded[split].to_dict() == all_beauty[split].to_dict()


@pytest.mark.parametrize("with_reviews", [True, False])
def test_hub_layout_round_trip(all_beauty, tmp_path, with_reviews):
    data = all_beauty if with_reviews else all_beauty.copy()
    if not with_reviews:
        del data["reviews"]
    folder = export_hub_folder(data, tmp_path / "hub")
    assert "configs:" in (folder / "README.md").read_text()
    loaded = load_rec_dataset(folder)  # the datasets.load_dataset path a Hub id takes
    assert set(loaded) == set(data)
    assert get_metadata(loaded) == get_metadata(data)
    for split in data:
        assert loaded[split].to_dict() == data[split].to_dict()


def test_load_rec_dataset_rejects_other_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a saved dataset"):
        load_rec_dataset(tmp_path)


# ---------------------------------------------------------------- P5 folders with optional files and bad input


@pytest.fixture
def small_p5(tmp_path, shared):
    """A P5 folder with the first 30 real beauty users and the real datamaps."""
    folder = tmp_path / "p5"
    folder.mkdir()
    shutil.copy(p5_dataset_dir("beauty") / "datamaps.json", folder)
    with open(p5_dataset_dir("beauty") / "sequential.txt") as handle:
        lines = [next(handle) for _ in range(30)]
    (folder / "sequential.txt").write_text("".join(lines))
    return folder


def _write_line(folder, name, number, text):
    lines = (folder / name).read_text().splitlines()
    lines[number - 1] = text
    (folder / name).write_text("\n".join(lines) + "\n")


def test_p5_with_explanations_negatives_and_rationales(small_p5):
    sequences = {line.split()[0]: line.split()[1:] for line in (small_p5 / "sequential.txt").read_text().splitlines()}
    test_item = sequences["2"][-1]
    records = {
        "train": [  # the file says train, the leave-one-out split says test: relabelled
            {"user": "2", "item": test_item, "explanation": "smells great", "feature": "smell",
             "user_preference": "likes scents", "item_attribution": "scented"},
        ],
        "val": [
            {"user": "A1YJEY40YUW4SE", "item": "7806397051", "explanation": "nice colours", "feature": None,
             "user_preference": "", "item_attribution": "colourful"},
        ],
        "test": [],
    }
    datamaps = json.loads((small_p5 / "datamaps.json").read_text())
    records["val"][0]["item"] = datamaps["id2item"]["1"]  # original ids are accepted too
    (small_p5 / "explanation_rationale.json").write_text(json.dumps(records))
    negatives = [str(i) for i in range(1000, 1099)]
    (small_p5 / "negative.txt").write_text("".join(f"{u} {' '.join(negatives)}\n" for u in sequences))

    data = load_p5_dataset(small_p5, indexing="sequential")  # the file's numbers, read below
    reviews = data["reviews"].to_list()
    assert [r["split"] for r in reviews] == ["test", "train"]
    assert reviews[0]["item_attribute"] == "scented" and reviews[0]["rationale_status"] == "ok"
    assert reviews[1]["user_id"] == "1" and reviews[1]["item_id"] == "1" and reviews[1]["rationale_status"] == "failed"
    assert data["users"]["test_negatives"][0] == negatives
    assert data["users"]["valid_negatives"][0] != negatives
    assert get_metadata(data).options == {"negative_file": "negative.txt", "review_file": "explanation_rationale.json"}
    shuffled = load_p5_dataset(small_p5, indexing="random", seed=4)  # reviews and fixed negatives renamed too
    names, shuffled_names = _item_names(data), _item_names(shuffled)
    assert [names[i] for i in data["reviews"]["item_id"]] == [shuffled_names[i] for i in shuffled["reviews"]["item_id"]]
    assert [names[i] for i in negatives] == [shuffled_names[i] for i in shuffled["users"]["test_negatives"][0]]
    assert shuffled["reviews"]["item_id"] != data["reviews"]["item_id"]


def test_p5_reads_the_rationale_file_under_the_name_the_reference_writes(small_p5, caplog):
    """The reference writes explanation_rational.json and reads explanation_rationale.json: both are read,
    the preferred name first, and the metadata and the log say which."""
    record = {"user": "1", "item": "1", "explanation": "fine", "user_preference": "p", "item_attribution": "a"}
    (small_p5 / "explanation_rational.json").write_text(json.dumps({"train": [record], "val": [], "test": []}))
    (small_p5 / "explanation.json").write_text(json.dumps({"train": [], "val": [], "test": []}))
    with caplog.at_level(logging.INFO, logger="rdrec_hf.data.p5"):
        data = load_p5_dataset(small_p5)
    assert get_metadata(data).options["review_file"] == "explanation_rational.json"
    assert data["reviews"].num_rows == 1 and data["reviews"]["item_attribute"] == ["a"]
    assert "explanation_rational.json (1 records" in caplog.text and "ignored explanation.json" in caplog.text
    (small_p5 / "explanation_rationale.json").write_text(json.dumps({"train": [record, record], "val": [], "test": []}))
    assert get_metadata(load_p5_dataset(small_p5)).options["review_file"] == "explanation_rationale.json"


@pytest.mark.parametrize(
    "line, message",
    [
        ("5 4 x 26", r"sequential.txt:5: non-integer item id 'x'"),
        ("5 4 999999", r"sequential.txt:5: item id 999999 is not in datamaps.json"),
        ("abc 4 25", r"sequential.txt:5: non-integer user id 'abc'"),
        ("1 4 25 26", r"sequential.txt:5: user 1 appears twice"),
        ("5", r"sequential.txt:5: user 5 has no items"),
    ],
)
def test_p5_malformed_lines_name_file_and_line(small_p5, line, message):
    _write_line(small_p5, "sequential.txt", 5, line)
    with pytest.raises(DataFormatError, match=message):
        load_p5_dataset(small_p5)


def test_p5_short_users_are_skipped_and_counted(small_p5):
    _write_line(small_p5, "sequential.txt", 5, "5 4 25")
    _write_line(small_p5, "sequential.txt", 6, "6 33 34 35")  # 3 items: the least a split needs
    data = load_p5_dataset(small_p5)
    assert data["users"].num_rows == 29
    assert get_metadata(data).skipped == {"user_too_short": 1}


def test_p5_bad_negative_files(small_p5):
    (small_p5 / "negative.txt").write_text("1 " + " ".join(map(str, range(1000, 1050))) + "\n")
    with pytest.raises(DataFormatError, match=r"negative.txt:1: 50 negatives, expected num_negatives=99"):
        load_p5_dataset(small_p5)
    (small_p5 / "negative.txt").write_text("1 " + " ".join(map(str, range(1, 100))) + "\n")
    with pytest.raises(DataFormatError, match=r"negative.txt:1: negatives of user 1 include their items"):
        load_p5_dataset(small_p5)


def test_p5_missing_files_and_bad_records(small_p5):
    (small_p5 / "explanation.json").write_text(json.dumps({"train": [{"user": "nobody", "item": "1",
                                                                      "explanation": "x"}], "val": [], "test": []}))
    with pytest.raises(DataFormatError, match=r"explanation.json:train\[0\]: user 'nobody'"):
        load_p5_dataset(small_p5)
    (small_p5 / "explanation.json").write_text('{"train": [')
    with pytest.raises(DataFormatError, match=r"explanation.json:1: invalid JSON"):
        load_p5_dataset(small_p5)
    (small_p5 / "sequential.txt").unlink()
    with pytest.raises(FileNotFoundError, match="sequential.txt"):
        load_p5_dataset(small_p5)


# ---------------------------------------------------------------- Amazon JSON lines: formats and bad input


def _write_reviews(path, records):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


def _review(user, item, time, text="It works well for dry skin.", **extra):
    return {"reviewerID": user, "asin": item, "unixReviewTime": time, "overall": 4.0, "reviewText": text, **extra}


def test_amazon_2023_field_names_and_plain_json(tmp_path):
    records = [
        {"user_id": "U1", "parent_asin": f"P{i}", "timestamp": 1_600_000_000_000 + i * 1000, "rating": 5.0,
         "text": "Good stuff for the price."}
        for i in range(4)
    ]
    data = load_amazon_reviews(_write_reviews(tmp_path / "reviews.json", records), indexing="sequential")
    assert data["users"]["items"] == [["1", "2", "3", "4"]]
    assert data["reviews"]["timestamp"] == [1_600_000_000 + i for i in range(4)]
    assert data["reviews"]["split"] == ["train", "train", "validation", "test"]


def test_amazon_bad_input(tmp_path):
    good = [_review("U1", f"I{i}", 100 + i) for i in range(3)]
    path = _write_reviews(tmp_path / "bad.json.gz", [*good, "{not json"])
    with pytest.raises(DataFormatError, match=r"bad.json.gz:4: invalid JSON"):
        load_amazon_reviews(path)
    path = _write_reviews(tmp_path / "no_item.json", [*good, {"reviewerID": "U2", "unixReviewTime": 5}])
    with pytest.raises(DataFormatError, match=r"no_item.json:4: needs a user, an item and a time field"):
        load_amazon_reviews(path)
    path = _write_reviews(tmp_path / "time.json", [*good, _review("U2", "I1", "yesterday")])
    with pytest.raises(DataFormatError, match=r"time.json:4: non-integer time 'yesterday'"):
        load_amazon_reviews(path)
    with pytest.raises(FileNotFoundError):
        load_amazon_reviews(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="min_interactions must be >= 3"):
        load_amazon_reviews(path, min_interactions=2)


def test_amazon_counted_skips(tmp_path):
    records = [
        _review("U1", "I1", 100), _review("U1", "I2", 101, text="  "), _review("U1", "I3", 102),
        _review("U1", "I1", 103),  # the same pair again (another style)
        _review("U2", "I1", 100), _review("U2", "I3", 101),  # too short
    ]
    data = load_amazon_reviews(_write_reviews(tmp_path / "r.json", records), indexing="sequential")
    metadata = get_metadata(data)
    assert metadata.skipped == {"duplicate_user_item": 1, "review_without_text": 1, "user_too_short": 1}
    assert data["users"]["items"] == [["1", "2", "3"]]
    assert data["reviews"]["item_id"] == ["1", "3"]
    assert metadata.counts["users_with_fewer_negatives"] == 1 and data["users"]["test_negatives"] == [[]]


# ---------------------------------------------------------------- the leak the indexing scheme removes


def _leak_rule_ndcg(data):
    rankings, targets = [], []
    for items in data["users"]["items"]:
        history, target = split_target(items, "test")
        rankings.append(leak_rule_ranking(history, data["items"].num_rows, k=5))
        targets.append(target)
    return ranking_metrics(rankings, targets, ks=(5,))["ndcg@5"]


def test_leak_rule_exploits_sequential_indexing_only(beauty, beauty_random):
    assert 0.040 < _leak_rule_ndcg(beauty) < 0.050  # about 0.045, above published P5/POD sequential results
    assert _leak_rule_ndcg(beauty_random) < 0.002


def test_p5_review_records_outside_the_kept_sequences_are_counted(small_p5):
    _write_line(small_p5, "sequential.txt", 5, "5 4 25")  # too short: user 5 and its review are skipped
    records = [
        {"user": "5", "item": "4", "explanation": "fine"},
        {"user": "1", "item": "999", "explanation": "never bought"},  # item 999 not in user 1's sequence
        {"user": "1", "item": "2", "explanation": "kept"},
        {"user": "1", "item": "3", "explanation": "  "},
    ]
    (small_p5 / "explanation.json").write_text(json.dumps({"train": records, "val": [], "test": []}))
    data = load_p5_dataset(small_p5)
    assert data["reviews"]["explanation"] == ["kept"]
    assert data["reviews"]["rationale_status"] == [None]
    assert get_metadata(data).skipped == {
        "review_not_in_sequence": 1, "review_of_skipped_user": 1, "review_without_text": 1, "user_too_short": 1
    }
