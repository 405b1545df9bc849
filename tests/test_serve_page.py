"""The page at ``GET /``, in a real headless Chromium (Debian's, installed by install.sh) driven by
Playwright: pick a model, upload an image or type a text, read the answer from the page; it is
what the server answers through the API. A bad upload shows the server's error on the page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import zoo
from servekit import TOPIC_TEXTS, digit_png, model_path, thread_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """A fresh Chromium profile; missing Chromium skips locally and fails under CI (install.sh installs it)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        message = "Debian's chromium is not installed: run ./install.sh (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with thread_server([f"digits={model_path(tmp_path_factory, 'digits')}",
                        f"topics={model_path(tmp_path_factory, 'topics')}"]) as running:
        yield running


@pytest.mark.slow
def test_upload_an_image_and_type_a_text(server, browser_context, tmp_path):
    image = tmp_path / "seven.png"
    image.write_bytes(digit_png(7, size=64))
    expected = zoo.Client(server.url).predict([image], model="digits")[0]["predictions"]
    page = browser_context.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#model option").all_inner_texts() == ["digits (v1, classifier, image)",
                                                               "topics (v1, classifier, text)"]
    assert "sha256" in page.inner_text("#model-info")
    page.set_input_files("#file", str(image))  # choosing a file sends it
    page.wait_for_selector("#result .prediction")
    labels = page.locator("#result .label").all_inner_texts()
    shown = page.locator("#result td.p").all_inner_texts()
    assert labels == [p["label"] for p in expected]
    assert shown == [f"{p['probability']:.4f}" for p in expected]
    assert page.inner_text("#file-name").startswith("seven.png")

    page.select_option("#model", "topics/1")
    assert page.is_visible("#text") and not page.is_visible("#drop")
    page.fill("#text", TOPIC_TEXTS[1])
    page.fill("#top-k", "2")
    page.click("#send")
    page.wait_for_selector("#result .prediction")
    expected = zoo.Client(server.url).predict([TOPIC_TEXTS[1]], model="topics", top_k=2)[0]["predictions"]
    assert page.locator("#result .label").all_inner_texts() == [p["label"] for p in expected]
    page.close()


@pytest.mark.slow
def test_a_bad_upload_shows_the_error(server, browser_context, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not an image at all")
    page = browser_context.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#file", str(notes))
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    assert "notes.png: not an image" in page.inner_text("#error")
    assert page.locator("#result .prediction").count() == 0
    page.close()
