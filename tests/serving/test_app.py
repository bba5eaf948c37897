"""The Gradio app on a trained tiny student: the page's answers and messages, the `rdrec-hf app` process and
the Space folder served on 127.0.0.1, and a headless Chromium driving the page (marker `browser`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import TEACHER_NOTE

from rdrec_hf.serving.app import RecommenderPage
from rdrec_hf.cli import EXIT_USER_ERROR, main
from rdrec_hf.data import load_rec_dataset
from rdrec_hf.serving.export import write_space
from rdrec_hf.checkpoints import load_trained_student
from rdrec_hf.models.item_ids import ItemIndexing

RDREC = str(Path(sys.executable).with_name("rdrec-hf"))
SCREENSHOT_COPY = os.environ.get("RDREC_APP_SCREENSHOT")  # where to copy the screenshot (README's PNG)
# A `make demo` folder (model/, rationales/) whose model the browser test drives instead of the tiny fixture's:
# README's screenshot is taken with RDREC_APP_DEMO=runs/demo RDREC_APP_SCREENSHOT=docs/app_screenshot.png.
DEMO_DIR = os.environ.get("RDREC_APP_DEMO")


@pytest.fixture(scope="module")
def page(trained_student):
    model_dir, data_dir = trained_student
    model, tokenizer = load_trained_student(str(model_dir))
    return RecommenderPage(model, tokenizer, load_rec_dataset(data_dir), "tiny", seed=0)


def test_recommendations_with_explanations_rationales_and_baselines(page):
    user = "12"
    status, history, recs, baselines, user_rationales = page.recommend(user, "", 5, explain=True, hold_out=True)
    assert status.startswith("Top 5 for user 12 (reviewer ") and "Held-out next item" in status
    assert recs.count('<td class="item-id">') == 5 and recs.count('<td class="explanation"></td>') == 0
    assert 'id="baselines"' in baselines and "popularity" in baselines and "leak rule" in baselines
    assert "leak-free" in baselines and "The held-out item is" in baselines
    items = page.view.histories[user]
    assert history.count('<td class="item-id">') == len(items) and "held out (the test item)" in history
    assert 'class="rating">' in history and 'class="review">' in history
    assert "student" in user_rationales and "teacher" in user_rationales


def test_teacher_rationales_appear_beside_the_students(page, trained_student):
    # k = the catalog: every item outside the history is listed, items 1-5 among them with the teacher's text.
    user = next(u for u, items in page.view.histories.items() if any(int(i) <= 5 for i in items[:-2]))
    status, _, recs, _, user_rationales = page.recommend(user, "", len(page.item_index), explain=False, hold_out=False)
    assert "Only" in status and "catalog items remain outside the history" in status
    reviews = load_rec_dataset(trained_student[1])["reviews"]
    with_teacher_text = {item for item, split in zip(reviews["item_id"], reviews["split"]) if split == "train" and int(item) <= 5}
    assert recs.count(TEACHER_NOTE) == len(with_teacher_text - set(page.view.histories[user])) > 0
    assert TEACHER_NOTE in user_rationales


def test_a_model_that_never_trained_the_text_tasks_shows_its_items_without_texts(trained_student):
    """The checkpoint records its tasks: a ranking-only student's items come without explanations or rationales,
    and the status says why (an untrained decoder's tokens are never shown)."""
    model, tokenizer = load_trained_student(str(trained_student[0]))
    assert model.config.trained_tasks == ["sequential", "topn", "explanation", "rationale"]
    model.config.trained_tasks = ["sequential", "topn"]
    page = RecommenderPage(model, tokenizer, load_rec_dataset(trained_student[1]), "ranking only", seed=0)
    status, _, recs, _, user_rationales = page.recommend("12", "", 5, explain=True, hold_out=True)
    assert status.startswith("Top 5 for user 12") and "not trained on explanations or rationales" in status
    assert recs.count('<td class="explanation"></td>') == 5 and "did not train the rationale task" in user_rationales


def test_typed_history_and_top_n(page):
    status, *_ = page.recommend("", "3, 17 42", 3)
    assert status.startswith("Top 3 for a typed history")
    status, candidates = page.sample_candidates("12")
    ids = candidates.split()
    assert len(ids) == 1 + len(page.view.test_negatives["12"]) and page.view.histories["12"][-1] in ids
    status, ranked = page.rank("12", candidates)
    assert ranked.count('<td class="item-id">') == len(ids) and "test item" in ranked and "ranked exactly" in status


@pytest.mark.parametrize(
    ("query", "history", "k", "message"),
    [
        ("no-such-user", "", 5, "unknown user 'no-such-user'"),
        ("", "", 5, "give a user (id or reviewer id) or a history"),
        ("", "3 99999", 5, "history items not in the model's catalog: ['99999']"),
        ("12", "", 0, "k must be from 1 to 83"),
        ("12", "", 500, "k must be from 1 to 83"),
        ("12", "", 2.5, "k must be from 1 to 83"),
    ],
)
def test_bad_input_is_a_message(page, query, history, k, message):
    status, *panels = page.recommend(query, history, k)
    assert status.startswith("**Error:** ") and message in status, status
    assert panels == ["", "", "", ""]


def test_bad_candidates_and_a_model_without_catalog(page, trained_student):
    assert "appear more than once" in page.rank("12", "3 3")[0]
    assert "an empty candidate list" in page.rank("12", "")[0]
    assert "candidate list items not in the model's catalog: ['0']" in page.rank("", "0 1")[0]
    model, tokenizer = load_trained_student(str(trained_student[0]))
    model.set_item_index(None)
    bare = RecommenderPage(model, tokenizer, None, "no catalog")
    assert "has no item catalog" in bare.header()
    assert "has no item catalog" in bare.recommend("", "3", 5)[0]
    assert "no dataset is loaded" in RecommenderPage(*load_trained_student(str(trained_student[0]))).recommend("12", "", 5)[0]


def test_leak_note_follows_the_numbering(page):
    assert "leak-free" in page.leak_note()
    on_sequential = RecommenderPage(page.model, page.tokenizer)
    on_sequential.view = replace(page.view, indexing=ItemIndexing.SEQUENTIAL)
    assert "Numbering leaks" in on_sequential.leak_note()


# ------------------------------------------------------------------------------- served on 127.0.0.1
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(command: list[str], port: int, cwd=None, env_extra=None, timeout: float = 240) -> subprocess.Popen:
    """Start a server process and wait until http://127.0.0.1:port answers 200."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env_extra or {})}
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: {process.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(1)
    process.kill()
    raise AssertionError(f"no answer on port {port} after {timeout} s: {process.stdout.read()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def test_space_folder_runs_locally(trained_student, tmp_path):
    model_dir, data_dir = trained_student
    space = write_space(tmp_path / "space", str(model_dir), str(data_dir))
    port = free_port()
    process = serve([sys.executable, "app.py"], port, cwd=space,
                    env_extra={"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)})  # fmt: skip
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10) as response:
            assert b"RDRec recommender" in response.read()
    finally:
        stop(process)


def test_app_command_rejects_a_missing_model(tmp_path, capsys):
    assert main(["app", "--model_name_or_path", str(tmp_path / "nope")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "no such folder, and not a Hub id" in err and "Traceback" not in err


def chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def browser():
    paths = chromium_paths()
    if paths is None:
        pytest.skip("no Chromium here: `apt-get install chromium chromium-driver` (make test does it when root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1500"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=paths[1]), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def browser_student(request):
    """``(model folder, dataset folder)`` the browser test serves: the demo's with RDREC_APP_DEMO, else the fixture's."""
    if DEMO_DIR is None:
        return request.getfixturevalue("trained_student")
    model_dir, data_dir = Path(DEMO_DIR) / "model", Path(DEMO_DIR) / "rationales"
    if not (model_dir / "config.json").is_file() or not data_dir.is_dir():
        pytest.fail(f"RDREC_APP_DEMO={DEMO_DIR}: no model/ and rationales/ there (run `make demo` first)")
    return model_dir, data_dir


@pytest.mark.browser
def test_browser_pick_a_user_and_recommend(browser_student, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    model_dir, data_dir = browser_student
    port = free_port()
    process = serve([RDREC, "app", "--model_name_or_path", str(model_dir), "--dataset", str(data_dir), "--port", str(port)], port)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 120)
        user_box = wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "#user textarea, #user input")))
        user_box.send_keys("12")
        k_box = browser.find_element(By.CSS_SELECTOR, "#k input")
        k_box.clear()
        k_box.send_keys("5")
        browser.find_element(By.ID, "recommend").click()
        wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#recommendations td.item-id")) == 5)
        catalog = set(load_rec_dataset(data_dir)["items"]["item_id"])
        items = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#recommendations td.item-id")]
        explanations = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#recommendations td.explanation")]
        assert len(set(items)) == 5 and set(items) <= catalog
        assert len(explanations) == 5 and all(text.strip() for text in explanations)
        assert "Top 5 for user 12" in browser.find_element(By.ID, "status").text
        assert browser.find_elements(By.CSS_SELECTOR, "#baselines td.popularity")
        screenshot = tmp_path / "app.png"
        browser.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 10_000
        if SCREENSHOT_COPY:
            shutil.copy2(screenshot, SCREENSHOT_COPY)

        user_box.clear()
        user_box.send_keys("no-such-user")
        browser.find_element(By.ID, "recommend").click()
        wait.until(lambda driver: "unknown user 'no-such-user'" in driver.find_element(By.ID, "status").text)
        assert "Traceback" not in browser.page_source
    finally:
        stop(process)
