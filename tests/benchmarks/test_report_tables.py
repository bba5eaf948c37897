"""benchmarks/report.py: the committed tables equal what their results files render, a changed number fails
the check, the rewrite repairs it, and a bad document or results folder is one clear error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPOSITORY, load_script

ROOT = REPOSITORY
report = load_script("benchmarks/report.py", "benchmarks_report")  # a name of its own


@pytest.fixture
def checkout(tmp_path):
    """A copy of the documents and results files, to change without touching the repository."""
    for name in report.DOCUMENTS:
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    return tmp_path


def run(root: Path, *options: str) -> int:
    return report.main(report.make_parser().parse_args(["--root", str(root), *options]))


def test_committed_documents_match_their_results_files():
    """What `make test` runs, as it runs it."""
    done = subprocess.run([sys.executable, "benchmarks/report.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_dataset_names_its_recipe_and_that_recipes_results_file():
    """benchmarks/recipe_results.json: the recipe exists, its results file holds runs of that dataset and scheme."""
    mapping = report.recipe_results()
    assert set(mapping) == {"beauty", "sports"}
    for dataset, entry in mapping.items():
        assert (ROOT / entry["recipe"]).is_file() and f"recipes/{dataset}/train/" in entry["recipe"]
        run = json.loads((ROOT / "benchmarks" / "results" / entry["results"]).read_text())
        assert run.get("dataset", "beauty") == dataset and entry["scheme"] in run["results"]


def test_a_changed_number_fails_the_check_and_the_rewrite_repairs_it(checkout, capsys):
    path = checkout / "benchmarks" / "results" / report.recipe_results()["beauty"]["results"]  # the summary's student
    results = json.loads(path.read_text())
    results["results"]["independent"]["sequential"]["model"]["ndcg@10"].update(mean=0.0512, std=0.0010)
    path.write_text(json.dumps(results))

    assert run(checkout, "--check") == 1
    diff = capsys.readouterr().out
    assert f"-| student, {report.STUDENT_LABEL}" in diff and ".0512 ± .0010" in diff
    assert "README.md (committed)" in diff and "BENCHMARKS.md (committed)" in diff  # the summary and the tables

    assert run(checkout) == 0
    assert ".0512 ± .0010" in (checkout / "BENCHMARKS.md").read_text()
    assert run(checkout, "--check") == 0


def test_text_outside_the_blocks_is_kept(checkout):
    document = checkout / "BENCHMARKS.md"
    text = document.read_text() + "\nA closing line the report does not own.\n"
    document.write_text(text)
    assert run(checkout) == 0
    assert document.read_text() == text


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("<!-- report:no_such_table -->\n<!-- /report:no_such_table -->", "unknown block 'no_such_table'"),
        ("<!-- report:app -->\nnever closed", "block 'app' has no closing"),
        ("<!-- report:app -->\n<!-- /report:app -->", "needs benchmarks/results/app.json, which is absent"),
    ],
)
def test_a_bad_block_is_one_error(checkout, capsys, block, message):
    (checkout / "benchmarks" / "results" / "app.json").unlink()
    (checkout / "README.md").write_text(f"# r\n\n{block}\n")
    assert run(checkout, "--check") == 2
    error = capsys.readouterr().err
    assert error.startswith("report: README.md: ") and message in error and "Traceback" not in error


def test_a_results_file_that_is_not_json_is_one_error(checkout, capsys):
    (checkout / "benchmarks" / "results" / "broken.json").write_text("{")
    assert run(checkout, "--check") == 2
    assert "broken.json is not valid JSON" in capsys.readouterr().err


def test_files_that_come_later_render_once_present(checkout):
    """The tables registered ahead of their files (another session writes them) say so until the file exists,
    then render from its format, and the check fails until the document is rewritten."""
    document = checkout / "README.md"
    document.write_text("".join(f"<!-- report:{name} -->\n<!-- /report:{name} -->\n"
                                for name in ("data_path", "student_vs_baselines")))
    results_dir = checkout / "benchmarks" / "results"
    for name in ("data_path.json", "student_vs_baselines.json"):
        (results_dir / name).unlink(missing_ok=True)
    assert run(checkout, "--documents", "README.md") == 0
    assert "*Not measured yet: benchmarks/results/data_path.json is absent.*" in document.read_text()
    (results_dir / "data_path.json").write_text(json.dumps(  # bench_data_path.py's fields
        {"redraw_s": {"previous": 45.0, "new": 9.0}, "examples_per_s": {"previous": 300, "new": 600},
         "redraw_speedup": 5.0, "runs": {"previous": [{"redraw_s": 45.0}], "new": [{"redraw_s": 9.0}]},
         "machine": "x86_64, 2 cores", "date": "2026-12-04", "command": "bench_data_path.py"}))
    (results_dir / "student_vs_baselines.json").write_text(json.dumps({"beauty": {  # bench_student_vs_baselines.py's
        "users": 5000, "budget_cpu_minutes": 30, "protocol": "leak-free.", "command": "bench_x.py",
        "student": {"seeds": [42, 43], "ndcg@10": [0.04, 0.042], "hr@10": [0.07, 0.072],
                    "training_minutes": [18.0, 18.5]},
        "item_knn": {"ndcg@10": 0.0438, "hr@10": 0.0704},
        "sasrec": {"ndcg@10": 0.0504, "hr@10": 0.0786, "training_minutes": 29.0},
        "popularity": {"ndcg@10": 0.0057, "hr@10": 0.0126}, "bar_met": False}}))
    assert run(checkout, "--check", "--documents", "README.md") == 1
    assert run(checkout, "--documents", "README.md") == 0
    text = document.read_text()
    assert "| `redraw_s` | 45.00 | 9.00 | 5.0x |" in text and "| `examples_per_s` | 300.00 | 600.00 | 2.0x |" in text
    assert "`runs`" not in text and "`bench_data_path.py` x86_64, 2 cores; 2026-12-04" in text
    assert "| beauty | student, seeds 42, 43 | .0710 ± .0014 | .0410 ± .0014 | .0400, .0420 | 18.0, 18.5 |" in text
    assert "| beauty | SASRec | .0786 | .0504 |  | 29.0 |" in text
    assert "| beauty | transition item-kNN | .0704 | .0438 |  |  |" in text
    assert "- beauty: leak-free; budget 30 CPU minutes; every seed at or above item-kNN: no; `bench_x.py`" in text


def test_format_helpers():
    assert report.metric(0.03989) == ".0399" and report.metric(None) == "-"
    assert report.seeded({"mean": 0.0399, "std": 0.001, "values": [0.0392, 0.0406]}) == ".0399 ± .0010"
    assert report.seeded({"mean": 0.021, "std": None, "values": [0.021]}) == ".0210"
    with pytest.raises(ValueError, match="does not match"):
        report.markdown_table(["a", "b"], [], "l")
