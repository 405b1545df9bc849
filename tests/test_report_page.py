"""report/index.html in a real headless Chromium (Debian's, driven by Playwright), for every recipe
that exists: a cross-validated head, a split with epochs, unfrozen phases (by epochs and judged on
folds), contrastive text, multi-label text and sounds. Each page loads with no console error and no
request outside itself, shows its sections, draws no degenerate plot (curves only where epochs
ran), and every number it shows equals report/metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_zoo, write_digit_folder, write_text_csv, write_topics_csv
from test_serve_page import browser_context  # noqa: F401  (one Chromium fixture for every page test)

import zoo
from zoo.errors import ZooError
from zoo.report import build, read_predictions, write_predictions
from zoo.predictions import GALLERY, picks

IMAGE, TEXT = "efficientnet_lite0", "all-minilm-l6-v2-offline"
QUIET = {"progress": False, "log": lambda _: None}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One small run of each recipe, sharing a ZOO_HOME (the frozen features are computed once)."""
    from test_audio import write_sounds
    from test_multilabel import mixed_rows

    root = tmp_path_factory.mktemp("report_runs")
    data = root / "data"
    digits = write_digit_folder(data / "digits", dark_ink=False)
    held_out = write_digit_folder(data / "digits_test", dark_ink=True)
    topics = write_topics_csv(data / "topics.csv")
    tagged, tagged_test = (write_text_csv(data / f"{name}.csv", mixed_rows(offset)) for name, offset in
                           (("tagged", 0), ("tagged_test", 1)))
    sounds, sounds_test = write_sounds(data / "clips"), write_sounds(data / "clips_test", per_class=3)
    plans = {
        "cv-head": (IMAGE, digits, {"test": str(held_out)}),
        "split": (IMAGE, digits, {"test": str(held_out), "val_split": 0.25, "head_epochs": 6, "patience": 10}),
        "unfrozen": (IMAGE, digits, {"test": str(held_out), "val_split": 0.25, "head_epochs": 3, "unfreeze": 1,
                                     "unfreeze_epochs": 2}),
        "cv-unfrozen": (TEXT, topics, {"unfreeze": 1, "unfreeze_epochs": 2}),
        "contrastive": (TEXT, topics, {"test": str(topics), "recipe": "contrastive", "pairs": 48,
                                       "contrastive_lr": 2e-4}),
        "multi-label": (TEXT, tagged, {"test": str(tagged_test)}),
        # at the card's cut: the cv-head run is the one that compares cuts (and draws their chart)
        "sounds": (IMAGE, sounds, {"test": str(sounds_test), "front_end": {"clip_seconds": 0.8}, "unfreeze": 0,
                                   "cut": "global_pool.flatten"}),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_HOME", str(root / "home"))
        return {name: zoo.finetune(model, str(data), out=root / name, **QUIET, **options).dir
                for name, (model, data, options) in plans.items()}


def value_at(metrics, key):
    """metrics.json's value at a dotted key (list positions as numbers)."""
    value = metrics
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def open_page(context, path: Path):
    """The page, with every console error and every request that leaves it recorded."""
    page = context.new_page()
    errors, requests = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url)
            if not request.url.startswith(("data:", "file:")) else None)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors, requests


#: Which runs had epochs (learning curves) and which are images (heatmaps).
EPOCHS = {"split", "unfrozen"}
IMAGES = {"cv-head", "split", "unfrozen"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cv-head", "split", "unfrozen", "cv-unfrozen", "contrastive", "multi-label",
                                  "sounds"])
def test_each_recipe_page_shows_its_sections_and_the_numbers_of_metrics_json(runs, browser_context, name):
    folder = runs[name]
    metrics = json.loads((folder / "report" / "metrics.json").read_text())
    page, errors, requests = open_page(browser_context, folder / "report" / "index.html")
    try:
        assert errors == [] and requests == []
        sections = page.eval_on_selector_all("section", "nodes => nodes.map(n => n.id)")
        assert {"summary", "plan", "metrics", "baseline", "gallery"} <= set(sections)
        assert ("curves" in sections) == (name in EPOCHS)  # a run without epochs draws no curve
        assert ("heatmaps" in sections) == (name in IMAGES)
        # every number shown is metrics.json's, at its key, to the digits shown
        shown = page.eval_on_selector_all("[data-key][data-value]", "nodes => nodes.map(n => [n.dataset.key, "
                                                                   "n.dataset.value, n.textContent])")
        checked = [(key, raw, text) for key, raw, text in shown if key]
        assert len(checked) >= 5
        for key, raw, text in checked:
            expected = value_at(metrics, key)
            assert float(raw) == pytest.approx(expected, rel=1e-12), key
            assert text == (f"{expected:.3f}" if isinstance(expected, float) else str(expected)), key
        keys = {key for key, _, _ in checked}
        headline = "test.micro_f1" if name == "multi-label" else "test.accuracy"
        assert (headline in keys) == ("test" in metrics)
        assert page.inner_text("#baseline .baseline-line") == metrics["baseline_line"]
        # the charts: the cut candidates where several were compared, the folds' schedule, the rounds
        assert page.locator("#cut-chart").count() == (len((metrics.get("selection") or {}).get("rows", [])) >= 2)
        assert page.locator("#folds-chart").count() == (name == "cv-unfrozen")
        assert page.locator("#rounds-chart").count() == (name == "contrastive")
        for image in page.locator("img").all():
            assert image.get_attribute("src").startswith("data:image/png;base64,")
            assert image.evaluate("node => node.naturalWidth") > 0
        # the gallery: mistakes then unsure right ones, each with its example
        lines = read_predictions(folder).get("test", [])
        if not lines:  # a run without a test set; multi-label runs until the trainer records theirs
            assert name in ("cv-unfrozen", "multi-label") and "no per-example predictions" in page.inner_text("#gallery")
        else:
            assert len(lines) == metrics["test"]["n"]
            chosen = picks(lines)
            assert page.locator("#gallery .card").count() == len(chosen.mistakes) + len(chosen.unsure) > 0
            kind = ".text" if name in ("contrastive", "multi-label") else "img"
            assert page.locator(f"#gallery .card {kind}").count() == page.locator("#gallery .card").count()
        if name in IMAGES:
            assert page.locator("#heatmaps .card img").count() >= 1
            assert "Grad-CAM" in page.inner_text("#heatmaps")
    finally:
        page.close()


@pytest.mark.slow
def test_predictions_are_written_for_every_held_out_example(runs):
    folder = runs["split"]
    sets = read_predictions(folder)
    metrics = json.loads((folder / "report" / "metrics.json").read_text())
    classes = json.loads((folder / "labels.json").read_text())
    for name in ("val", "test"):
        lines = sets[name]
        assert len(lines) == metrics[name]["n"] and [line["index"] for line in lines] == list(range(len(lines)))
        assert sum(line["correct"] for line in lines) / len(lines) == pytest.approx(metrics[name]["accuracy"])
        for line in lines:
            assert Path(line["item"]["path"]).is_file() and line["true"] in classes
            assert line["score"] == pytest.approx(max(line["probabilities"]), abs=1e-6)


@pytest.mark.slow
def test_zoo_report_writes_the_page_again_from_the_folder(runs, tmp_path):
    folder = runs["cv-head"]
    page = folder / "report" / "index.html"
    before = page.read_text()
    page.unlink()
    done = run_zoo("report", str(folder))
    assert done.returncode == 0 and done.stdout.strip() == str(page)
    assert page.read_text().count("<section") == before.count("<section")
    missing = run_zoo("report", str(tmp_path))
    assert missing.returncode == 1 and "not a zoo run folder" in missing.stderr and "Traceback" not in missing.stderr


# --------------------------------------------------------------------------- fast: the predictions file


class Tiny:
    """A dataset with the attributes write_predictions reads."""

    def __init__(self, modality, items, labels):
        from zoo.data.dataset import Example

        self.modality = modality
        self.examples = tuple(Example(item, label, f"tiny[{i}]") for i, (item, label) in enumerate(zip(items, labels)))

    def __len__(self):
        return len(self.examples)


def test_write_predictions_replaces_its_set_and_saves_only_the_shown_arrays(tmp_path):
    import numpy as np

    images = [np.full((8, 8, 3), i * 8, dtype=np.uint8) for i in range(30)]
    labels = [i % 2 for i in range(30)]
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet([1, 1], size=30)
    write_predictions(tmp_path, "test", Tiny("image", images, labels), probabilities, ["a", "b"])
    write_predictions(tmp_path, "val", Tiny("text", ["x" * 5000, "short"], [0, 1]), [[0.9, 0.1], [0.2, 0.8]],
                      ["a", "b"])
    write_predictions(tmp_path, "test", Tiny("image", images, labels), probabilities, ["a", "b"])  # again
    sets = read_predictions(tmp_path)
    assert len(sets["test"]) == 30 and len(sets["val"]) == 2
    chosen = picks(sets["test"])
    saved = sorted(p.name for p in (tmp_path / "report" / "items").iterdir())
    assert saved == sorted(f"test-{line['index']:05d}.png" for line in chosen.shown())
    assert len(chosen.mistakes) <= GALLERY and all(line["item"]["image"] is None for line in sets["test"]
                                                    if line not in chosen.shown())
    from PIL import Image

    first = chosen.shown()[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / first["item"]["image"])), images[first["index"]])
    assert sets["val"][0]["item"]["cut"] is True and len(sets["val"][0]["item"]["text"]) == 1000
    scores = [line["score"] for line in chosen.mistakes]
    assert scores == sorted(scores, reverse=True) and all(not line["correct"] for line in chosen.mistakes)


def test_multi_label_predictions_decide_by_each_threshold(tmp_path):
    truth = [[1, 0, 1], [0, 1, 0]]
    write_predictions(tmp_path, "test", Tiny("text", ["one", "two"], [0, 0]), [[0.9, 0.2, 0.4], [0.1, 0.7, 0.2]],
                      ["a", "b", "c"], thresholds={"a": 0.5, "b": 0.5, "c": 0.3}, truth=truth)
    first, second = read_predictions(tmp_path)["test"]
    assert first["true"] == ["a", "c"] and first["predicted"] == ["a", "c"] and first["correct"]
    assert second["predicted"] == ["b"] and second["correct"]
    assert first["score"] == pytest.approx((0.9 + 0.8 + 0.4) / 3)


def test_a_folder_that_is_no_run_or_is_damaged_is_one_line(tmp_path):
    with pytest.raises(ZooError, match="not a zoo run folder"):
        build(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"config": {"model": "m", "data": "d"}}))
    (tmp_path / "labels.json").write_text('["a", "b"]')
    (tmp_path / "selection.json").write_text("{torn")
    with pytest.raises(ZooError, match=r"selection.json: damaged"):
        build(tmp_path)


def test_an_unfinished_run_gets_a_page_that_says_so(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"config": {"model": "m", "data": "d"}}))
    (tmp_path / "labels.json").write_text('["a", "b"]')
    html = build(tmp_path).read_text()
    assert "No metrics yet" in html and 'data-status="killed"' in html and 'id="curves"' not in html


def test_a_task_without_sections_says_so_and_a_registered_hook_adds_them(tmp_path):
    from markupsafe import Markup

    from zoo.report import sections

    (tmp_path / "config.json").write_text(json.dumps({"config": {"model": "m", "data": "d"},
                                                      "task": {"name": "counting"}}))  # a third party's task
    (tmp_path / "labels.json").write_text('["objects"]')
    assert "No plots for the task <b>counting</b>" in build(tmp_path).read_text()
    sections.register_task_sections("counting", lambda files: [sections.Section("residuals", "Residuals",
                                                                                 Markup("<p>drawn</p>"))])
    try:
        assert '<section id="residuals">' in build(tmp_path).read_text()
    finally:
        sections._TASK_SECTIONS.pop("counting")


@pytest.mark.slow
def test_finetune_cli_takes_report_to_and_names_the_extra(tmp_path):
    done = run_zoo("finetune", IMAGE, "--data", "digits", "--out", str(tmp_path / "r"), "--report-to", "nope")
    assert done.returncode == 1 and "unknown tracker" in done.stderr and not (tmp_path / "r").exists()
