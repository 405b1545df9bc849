"""zoo fewshot: prototype classifiers on digits and texts, saved, reloaded, as a torch module, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import full_only, run_zoo, write_text_csv

from zoo.data import make_splits
from zoo.embed import FewShot, fewshot, load_fewshot
from zoo.errors import InputError, ZooError

IMAGE_MODEL = "efficientnet_lite0"
TEXT_MODEL = "all-minilm-l6-v2-offline"


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> tuple[Path, list[np.ndarray], list[str]]:
    """3 labelled digits per class as PNG class folders (zoo's own per_class split), and 4 test
    images per class from the rest of that split."""
    from PIL import Image

    splits = make_splits("digits", modality="image", per_class=3, seed=0)
    root = tmp_path_factory.mktemp("support")
    for n, example in enumerate(splits.train.examples + splits.val.examples):
        folder = root / splits.classes[example.label]
        folder.mkdir(exist_ok=True)
        Image.fromarray(example.item).save(folder / f"{n}.png")
    taken: dict[int, int] = {}
    images, labels = [], []
    for example in splits.test.examples:
        if taken.get(example.label, 0) < 4:
            taken[example.label] = taken.get(example.label, 0) + 1
            images.append(example.item)
            labels.append(splits.classes[example.label])
    return root, images, labels


@pytest.mark.slow
def test_digits_accuracy_is_well_above_chance_and_survives_a_reload(digits, tmp_path):
    support, images, labels = digits
    classifier = fewshot(IMAGE_MODEL, support, workers=0)
    assert classifier.classes == tuple(str(d) for d in range(10)) and classifier.counts == (3,) * 10
    assert np.allclose(np.linalg.norm(classifier.prototypes, axis=1), 1.0, atol=1e-5)

    predictions = classifier.predict(images, top_k=3)
    accuracy = np.mean([p.label == truth for p, truth in zip(predictions, labels)])
    assert accuracy >= 0.5, accuracy  # chance is 0.1
    assert all(len(p.top) == 3 and p.top[0][1] >= p.top[1][1] >= p.top[2][1] for p in predictions)

    folder = classifier.save(tmp_path / "clf")
    assert {p.name for p in folder.iterdir()} == {"fewshot.json", "labels.json", "prototypes.npy"}
    assert json.loads((folder / "labels.json").read_text()) == list(classifier.classes)
    reloaded = load_fewshot(folder)
    again = reloaded.predict(images[:3], top_k=3)
    for before, after in zip(predictions[:3], again):
        assert before.label == after.label
        assert before.top[0][1] == pytest.approx(after.top[0][1], abs=1e-4)

    # the same classifier as one torch module: backbone + a head whose weights are the prototypes
    module = reloaded.to_module()
    batch = reloaded.backbone.preprocess(images[:3])
    with torch.no_grad():
        probabilities = module(batch).softmax(dim=-1).numpy()
    expected = reloaded.probabilities(reloaded.embed(images[:3]))
    assert np.allclose(probabilities, expected, atol=1e-4)


@pytest.mark.slow
def test_text_fewshot_and_model_checks(tmp_path):
    rows = [("The striker scored twice in the final minutes", "sport"), ("The team won the championship match", "sport"),
            ("Simmer the tomato sauce for twenty minutes", "cooking"), ("Whisk the eggs with sugar", "cooking"),
            ("The central bank raised interest rates", "finance"), ("Shares fell after the earnings report", "finance")]
    classifier = fewshot(TEXT_MODEL, write_text_csv(tmp_path / "support.csv", rows))
    queries = ["The goalkeeper saved a penalty in extra time", "Roast the chicken with garlic and rosemary",
               "Bond yields climbed as inflation rose"]
    assert [p.label for p in classifier.predict(queries)] == ["sport", "cooking", "finance"]
    with pytest.raises(InputError, match="takes a non-empty text, not an object of type ndarray"):
        classifier.predict([np.zeros((8, 8, 3), np.uint8)])

    folder = classifier.save(tmp_path / "clf")
    meta = json.loads((folder / "fewshot.json").read_text())
    assert (meta["model"], meta["dim"], meta["input"]["max_length"]) == (TEXT_MODEL, 384, 256)
    (name, sha), = [(n, s) for n, s in meta["weights"].items() if n.endswith(".safetensors")]
    good = dict(meta)
    meta["weights"] = {**meta["weights"], name: "0" * 64}  # as if it had been built on other bytes
    (folder / "fewshot.json").write_text(json.dumps(meta))
    with pytest.raises(ZooError, match=f"file {name!r} of sha256 {'0' * 64}, but the cache now holds sha256 {sha}"):
        load_fewshot(folder).predict(queries[:1])
    good["embedder"] = "0" * 32  # other preprocessing or cut point, same bytes
    (folder / "fewshot.json").write_text(json.dumps(good))
    with pytest.raises(ZooError, match="build it again"):
        load_fewshot(folder).predict(queries[:1])
    with pytest.raises(InputError, match="not a few-shot classifier folder"):
        load_fewshot(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(ZooError, match="choose another --out"):
        classifier.save(tmp_path / "other")


@pytest.mark.slow
def test_one_class_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    from PIL import Image

    Image.new("RGB", (32, 32), "white").save(tmp_path / "only" / "a.png")
    with pytest.raises(InputError, match="at least two"):
        fewshot(IMAGE_MODEL, tmp_path)
    with pytest.raises(InputError, match="no support example for class 'b'"):
        FewShot.from_embeddings(np.ones((2, 4)), [0, 0], ["a", "b"], model="m", revision="r", embedder="e",
                                modality="image", input={})


@full_only
@pytest.mark.slow
def test_cli_build_save_and_predict(digits, tmp_path):
    support, images, labels = digits
    from PIL import Image

    small = tmp_path / "support"  # two classes, two examples each: the CLI, not the accuracy, is tested here
    for name in ("0", "1"):
        (small / name).mkdir(parents=True)
        for path in sorted((support / name).iterdir())[:2]:
            (small / name / path.name).write_bytes(path.read_bytes())
    queries = tmp_path / "queries"
    queries.mkdir()
    for digit in ("0", "1"):  # a test image of each class
        Image.fromarray(images[labels.index(digit)]).save(queries / f"{digit}.png")
    out = tmp_path / "clf"
    first = queries / "0.png"
    built = run_zoo("fewshot", IMAGE_MODEL, "--support", str(small), "--out", str(out), "--predict", str(first), "--json")
    assert built.returncode == 0, built.stderr
    report = json.loads(built.stdout)
    assert report["classifier"] == str(out) and report["support"] == {"0": 2, "1": 2}
    assert report["predictions"][0]["input"] == str(first)
    assert [p["label"] for p in report["predictions"][0]["predictions"]] == ["0", "1"]

    reused = run_zoo("fewshot", str(out), "--predict", str(queries))  # a folder stands for its images
    assert reused.returncode == 0, reused.stderr
    lines = reused.stdout.splitlines()
    assert lines[0].split() == ["input", "label", "probability", "next"] and len(lines) == 2 + 2

    wrong = run_zoo("fewshot", IMAGE_MODEL, "--predict", str(first))
    assert wrong.returncode == 2 and "give --support DATA" in wrong.stderr

    # exported like a fine-tuned run: the prototypes become the head, predictions match the classifier's
    exported = run_zoo("export", str(out), "--json")
    assert exported.returncode == 0, exported.stderr
    record = json.loads(exported.stdout)
    assert record["path"] == str(out.resolve() / "model.onnx") and record["labels"] == ["0", "1"]
    assert record["source"]["fewshot"] == str(out.resolve()) and record["source"]["head"] == "prototypes"
    assert record["weights"]["prototypes_sha256"] and record["validation"]["passed"]
    assert record["validation"]["inputs"] == "the support set"
    predicted = run_zoo("predict", record["path"], str(queries), "--json")
    assert predicted.returncode == 0, predicted.stderr
    onnx_top = {Path(p["input"]).name: p["predictions"] for p in json.loads(predicted.stdout)["predictions"]}
    expected = {Path(p.input).name: p for p in load_fewshot(out).predict(sorted(str(q) for q in queries.iterdir()))}
    assert onnx_top.keys() == expected.keys()
    for name, top in onnx_top.items():
        assert top[0]["label"] == expected[name].label
        assert top[0]["probability"] == pytest.approx(expected[name].top[0][1], abs=1e-4)


@pytest.mark.slow
def test_text_fewshot_exports_int8_checked_on_its_support_set(tmp_path):
    from zoo.export import export, read_info
    from zoo.runtime import predict

    rows = [("The striker scored twice in the final minutes", "sport"), ("The team won the championship match", "sport"),
            ("The goalkeeper saved a penalty", "sport"), ("Simmer the tomato sauce for twenty minutes", "cooking"),
            ("Whisk the eggs with sugar", "cooking"), ("Roast the chicken with garlic", "cooking")]
    folder = fewshot(TEXT_MODEL, write_text_csv(tmp_path / "support.csv", rows)).save(tmp_path / "clf")
    result = export(folder, quantize="int8", max_drop=100, log=lambda _: None)
    assert result.path == folder.resolve() / "model.int8.onnx"
    assert {p.name for p in result.files} == {"model.int8.onnx", "model.int8.tokenizer.json"}
    q = read_info(result.path).quantization
    assert q["calibration"] == {"samples": 6, "from": "the support set"}
    assert q["evaluation"]["set"] == "the support set" and q["evaluation"]["samples"] == 6
    queries = ["The referee blew the final whistle", "Bake the bread until golden"]
    onnx_labels = [p.label for p in predict(result.path, queries).predictions]
    assert onnx_labels == [p.label for p in load_fewshot(folder).predict(queries)] == ["sport", "cooking"]

    (folder / "fewshot.json").unlink()  # neither a run nor a few-shot folder any more
    with pytest.raises(ZooError, match="neither a zoo run"):
        export(folder, log=lambda _: None)


@pytest.mark.slow
def test_zero_shot_from_label_names_saves_predicts_and_exports_like_a_fewshot_folder(tmp_path):
    from zoo.embed import zero_shot

    labels = tmp_path / "labels.txt"
    labels.write_text("# topics\nsport\npolitics: parliament, elections and government\ncooking: recipes and food\n",
                      encoding="utf-8")
    classifier = zero_shot(TEXT_MODEL, labels)
    assert classifier.zero_shot and classifier.classes == ("sport", "politics", "cooking")
    texts = ["the striker scored twice in the second half", "parliament passed the budget after a long debate",
             "bake the bread for twenty minutes"]
    assert [p.label for p in classifier.predict(texts)] == ["sport", "politics", "cooking"]
    folder = classifier.save(tmp_path / "zs")
    meta = json.loads((folder / "fewshot.json").read_text())
    assert meta["support"]["zero_shot"]["labels"]["politics"] == "parliament, elections and government"
    assert meta["counts"] == [0, 0, 0] and len(meta["support"]["zero_shot"]["templates"]) == 3
    again = load_fewshot(folder)
    np.testing.assert_allclose(again.prototypes, classifier.prototypes)
    assert [p.label for p in again.predict(texts)] == ["sport", "politics", "cooking"]
    # the prototypes are the normalised mean of the embedded prompts
    import zoo

    model = zoo.load(TEXT_MODEL)
    prompts = model.embed(["sport", "a text about sport.", "this text is about sport."]).numpy()
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
    mean = prompts.mean(0)
    np.testing.assert_allclose(classifier.prototypes[0], mean / np.linalg.norm(mean), atol=1e-5)
    pytest.importorskip("onnxruntime")
    exported = run_zoo("export", str(folder), timeout=300)
    assert exported.returncode == 0, exported.stderr
    predicted = run_zoo("predict", str(folder / "model.onnx"), texts[0], "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["predictions"][0]["predictions"][0]["label"] == "sport"


@pytest.mark.slow
def test_zero_shot_bad_input_is_one_line_each(tmp_path):
    cases = [
        (["--labels", "sport,,politics"], "label 2 is empty"),
        (["--labels", "sport,politics,sport"], "given twice"),
        (["--labels", "sport"], "at least two"),
        (["--labels", "sport,politics", "--template", "about sports"], "exactly one '{}'"),
    ]
    for args, message in cases:
        result = run_zoo("fewshot", TEXT_MODEL, *args, "--out", str(tmp_path / "x"))
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, args
    image = run_zoo("fewshot", "efficientnet_lite0", "--labels", "cat,dog", "--out", str(tmp_path / "y"))
    assert image.returncode == 1 and "text encoder" in image.stderr and "Traceback" not in image.stderr
    both = run_zoo("fewshot", TEXT_MODEL, "--labels", "a,b", "--support", "digits")
    assert both.returncode == 2 and "not both" in both.stderr


@pytest.mark.slow
def test_a_fewshot_json_missing_keys_is_one_line(tmp_path):
    from conftest import run_zoo

    from zoo.embed import zero_shot

    folder = zero_shot(TEXT_MODEL, "sport,cooking").save(tmp_path / "zs")
    meta = json.loads((folder / "fewshot.json").read_text())
    del meta["embedder"], meta["scale"]
    (folder / "fewshot.json").write_text(json.dumps(meta))
    result = run_zoo("fewshot", str(folder), "--predict", "a late goal")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "fewshot.json: damaged: embedder, scale missing" in result.stderr
