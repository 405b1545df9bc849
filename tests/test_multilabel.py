"""Multi-label text: ';'-separated labels, a sigmoid per label, thresholds chosen on folds (issue 12)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TOPICS, run_zoo, write_text_csv

import zoo
from zoo.errors import InputError, ZooError
from zoo.tasks.multilabel import choose_thresholds

TEXT_MODEL = "all-minilm-l6-v2-offline"


def quiet(**options):
    return {"progress": False, "log": lambda _: None, **options}


def mixed_rows(offset: int = 0) -> list[tuple[str, str]]:
    """Texts of one topic, and texts joining two topics' sentences labelled with both."""
    names = list(TOPICS)
    rows = []
    for i, (label, texts) in enumerate(TOPICS.items()):
        other = names[(i + 1 + offset) % len(names)]
        for j, text in enumerate(texts):
            if j % 2:
                rows.append((text, label))
            else:
                rows.append((f"{text}. {TOPICS[other][(j + 1) % len(texts)]}", f"{label};{other}"))
    return rows


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multilabel")
    data = write_text_csv(folder / "train.csv", mixed_rows())
    test = write_text_csv(folder / "test.csv", mixed_rows(offset=1))
    return zoo.finetune(TEXT_MODEL, str(data), test=str(test), out=folder / "run", **quiet()), test


@pytest.mark.slow
def test_semicolon_labels_make_a_multi_label_run_with_thresholds_and_f1(multi_run):
    run, test = multi_run
    assert run.classes == tuple(sorted(TOPICS))  # the label space: every name, not the combinations
    assert run.config["task"] == "multi-label" and run.multi_label["thresholds"].keys() == set(TOPICS)
    metrics = run.metrics
    assert metrics["multi_label"] and {"micro_f1", "macro_f1", "accuracy", "per_label"} <= set(metrics["test"])
    assert set(metrics["test"]["per_label"]) == set(TOPICS)
    assert metrics["test"]["micro_f1"] > 0.8
    assert "micro-F1" in metrics["baseline_line"] and "TF-IDF" in metrics["baseline"]["name"]
    assert "test micro-F1" in run.summary()
    # the head is a sigmoid per label: the report's test scores come from the saved model
    from sklearn.metrics import f1_score

    from zoo.data import open_dataset
    from zoo.data.multilabel import label_sets

    dataset = open_dataset(str(test), modality="text")
    truth = label_sets(dataset, run.classes).matrix
    model = run.load_model()
    texts = [e.item for e in dataset.examples]
    with torch.no_grad():
        probabilities = torch.sigmoid(model(**model.backbone.preprocess(texts))).numpy()
    thresholds = np.array([run.multi_label["thresholds"][c] for c in run.classes])
    predicted = probabilities >= thresholds
    assert f1_score(truth, predicted, average="micro") == pytest.approx(metrics["test"]["micro_f1"], abs=1e-9)


@pytest.mark.slow
def test_a_multi_label_run_exports_a_sigmoid_and_predicts_label_sets(multi_run, tmp_path):
    run, test = multi_run
    out = tmp_path / "model.onnx"
    result = run_zoo("export", str(run.dir), "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    texts = ["The striker scored twice in the final minutes. Shares fell after the earnings report",
             "Knead the dough and let it rise"]
    result = run_zoo("predict", str(out), *texts, "--json")
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)["predictions"]
    model = run.load_model()
    with torch.no_grad():
        probabilities = torch.sigmoid(model(**model.backbone.preprocess(texts))).numpy()
    for answer, row in zip(answers, probabilities):
        expected = [c for c, p in zip(run.classes, row) if p >= run.multi_label["thresholds"][c]]
        assert answer["labels"] == expected
        top = {p["label"]: p["probability"] for p in answer["predictions"]}
        assert all(abs(top[c] - float(p)) < 1e-4 for c, p in zip(run.classes, row))
    table = run_zoo("predict", str(out), texts[0])
    assert table.returncode == 0 and "over threshold" in table.stdout


def test_thresholds_maximise_each_labels_f1():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    truth = (rng.random((40, 3)) < [0.2, 0.5, 0.8]).astype(int)
    scores = np.clip(truth * 0.3 + rng.random((40, 3)) * 0.7, 0, 1)
    chosen = choose_thresholds(truth, scores)
    for label in range(3):
        best = max(f1_score(truth[:, label], scores[:, label] >= t, zero_division=0) for t in np.unique(scores[:, label]))
        assert f1_score(truth[:, label], scores[:, label] >= chosen[label]) == pytest.approx(best)


@pytest.mark.slow
def test_bad_multi_label_data_is_one_line_each(tmp_path):
    data = write_text_csv(tmp_path / "train.csv", mixed_rows())
    unseen = write_text_csv(tmp_path / "test.csv", [("The match was close", "sport;weather")])
    result = run_zoo("finetune", TEXT_MODEL, "--data", str(data), "--test", str(unseen), "--out", str(tmp_path / "a"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "test.csv:2: label 'weather' does not occur in the training data" in result.stderr
    result = run_zoo("finetune", TEXT_MODEL, "--data", str(data), "--single-label", "--out", str(tmp_path / "b"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "train.csv:2: the label names several labels" in result.stderr and "--single-label" in result.stderr
    empty = write_text_csv(tmp_path / "empty.csv", mixed_rows() + [("A text", "sport;;finance")])
    with pytest.raises(InputError, match=r"empty\.csv:20: the label 'sport;;finance' has an empty name"):
        zoo.finetune(TEXT_MODEL, str(empty), out=tmp_path / "c", **quiet())
    rare = write_text_csv(tmp_path / "rare.csv", mixed_rows() + [("Rain tomorrow", "sport;weather")])
    with pytest.raises(InputError, match="label 'weather' has 1 example with it"):
        zoo.finetune(TEXT_MODEL, str(rare), out=tmp_path / "d", **quiet())
    with pytest.raises(ZooError, match="--per-class does not apply"):
        zoo.finetune(TEXT_MODEL, str(data), per_class=3, out=tmp_path / "e", **quiet())


@pytest.mark.slow
def test_finetune_labels_name_the_classes_for_the_prior_and_must_cover_the_data(text_csv, tmp_path):
    from zoo.prompts import TEMPLATES, prompt_prototypes

    described = tmp_path / "labels.txt"
    described.write_text("sport: games, matches and athletes\ncooking: recipes and food\nfinance: money and markets\n")
    run = zoo.finetune(TEXT_MODEL, str(text_csv), out=tmp_path / "run", recipe="gradual", unfreeze=0,
                       labels=str(described), **quiet())
    prior = json.loads((run.dir / "prior.json").read_text())
    texts = {"sport": "games, matches and athletes", "cooking": "recipes and food", "finance": "money and markets"}
    expected = prompt_prototypes(zoo.load(TEXT_MODEL), [texts[c] for c in run.classes], TEMPLATES)
    assert np.allclose(np.asarray(prior["prototypes"]), expected, atol=1e-5)
    result = run_zoo("finetune", TEXT_MODEL, "--data", str(text_csv), "--labels", "sport,finance",
                     "--out", str(tmp_path / "other"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "the label 'cooking' is in the data but not in --labels (sport, finance)" in result.stderr
