"""Regression, a task like any other: numbers read from manifest columns, a cross-validated ridge
head, RMSE / MAE / R² / Spearman in the user's units, the report's plots, an export that predicts
the numbers without torch, and every bad target one line (issue 24)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.errors import InputError, ZooError

from conftest import full_only, run_zoo

IMAGE = "efficientnet_lite0"


def _rotated_digits(folder: Path, count: int, seed: int) -> list[dict[str, object]]:
    """Digits of scikit-learn, each rotated by a random angle: the angle, the ink's share of the
    picture, and a 1-5 rating (few distinct whole numbers: classes by zoo's rule)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder.mkdir(parents=True, exist_ok=True)
    images = load_digits().images
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        ink = np.rint(images[i] * 255 / 16).astype(np.uint8)
        picture = Image.fromarray(np.pad(255 - ink, 4, constant_values=255)).resize((64, 64), Image.BICUBIC)
        angle = float(rng.uniform(-60, 60))
        picture = picture.rotate(angle, resample=Image.BICUBIC, fillcolor=255).convert("RGB")
        picture.save(folder / f"{seed}-{i}.png")
        share = float((np.asarray(picture)[..., 0] < 128).mean())
        rows.append({"path": f"{seed}-{i}.png", "angle": round(angle, 3), "ink": round(share, 4),
                     "rating": int(rng.integers(1, 6))})
    return rows


def _write(path: Path, rows: list[dict[str, object]], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def numbers(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("rotated")
    return (_write(folder / "train.csv", _rotated_digits(folder, 40, seed=1)),
            _write(folder / "test.csv", _rotated_digits(folder, 20, seed=2)))


@pytest.fixture(scope="module")
def regression_run(numbers, tmp_path_factory):
    train, test = numbers
    lines: list[str] = []
    run = zoo.finetune(IMAGE, str(train), test=str(test), target="angle,ink", out=tmp_path_factory.mktemp("r") / "run",
                       progress=False, log=lines.append)
    return run, lines


@pytest.mark.slow
def test_numbers_in_a_target_column_make_a_regression_reported_in_their_units(regression_run, numbers):
    run, lines = regression_run
    assert run.task_name == "regression" and run.classes == ("angle", "ink")
    assert any(line.startswith("task: regression (--target angle,ink") for line in lines)
    metrics = run.metrics
    test = metrics["test"]
    assert {"rmse", "mae", "r2", "spearman", "per_target"} <= set(test) and test["n"] == 20
    # the numbers are in the user's units: scikit-learn's on the predicted and true columns
    rows = list(csv.DictReader(numbers[1].open()))
    truth = np.array([[float(r["angle"]), float(r["ink"])] for r in rows])
    predicted = np.array(metrics["test"]["points"]["predicted"])
    from sklearn.metrics import mean_squared_error

    assert test["per_target"]["angle"]["rmse"] == pytest.approx(np.sqrt(mean_squared_error(truth[:, 0], predicted[:, 0])))
    assert test["rmse"] == pytest.approx(np.mean([test["per_target"][t]["rmse"] for t in ("angle", "ink")]))
    base = metrics["baseline"]
    assert base["name"].startswith("ridge on raw pixels") and base["mean"]["test"]["rmse"] > 0
    assert metrics["baseline_line"].startswith("baseline (ridge on raw pixels") and "RMSE" in metrics["baseline_line"]
    assert metrics["selection"]["rank_name"] == "mse" and "alpha" in metrics["selection"]["params"]
    assert (run.dir / "report" / "regression_test.png").read_bytes()[:4] == b"\x89PNG"
    assert not (run.dir / "report" / "curves.png").exists()  # no epochs ran: nothing to draw
    page = (run.dir / "report" / "index.html").read_text()
    assert 'id="per-target"' in page and "Grad-CAM" not in page
    predictions = [json.loads(line) for line in (run.dir / "report" / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 20 and set(predictions[0]["values"]["true"]) == {"angle", "ink"}


@pytest.mark.slow
def test_the_exported_regression_predicts_the_networks_numbers_without_torch(regression_run, numbers, tmp_path):
    run, _ = regression_run
    exported = run_zoo("export", str(run.dir), "--out", str(tmp_path / "model.onnx"), timeout=300)
    assert exported.returncode == 0, exported.stderr
    assert "2 targets" in exported.stdout and "classes" not in exported.stdout
    images = [str(numbers[1].parent / r["path"]) for r in list(csv.DictReader(numbers[1].open()))[:6]]
    predicted = run_zoo("predict", str(tmp_path / "model.onnx"), *images, "--json")
    assert predicted.returncode == 0, predicted.stderr
    answers = json.loads(predicted.stdout)["predictions"]
    assert set(answers[0]["values"]) == {"angle", "ink"} and "predictions" not in answers[0]
    model = run.load_model()
    with torch.no_grad():
        standardised = model(model.backbone.preprocess(images)).numpy()
    record = run.task
    expected = standardised * np.asarray(record["std"]) + np.asarray(record["mean"])
    got = np.array([[a["values"]["angle"], a["values"]["ink"]] for a in answers])
    # onnxruntime and PyTorch sum in float32 in other orders; a ridge fitted with little penalty on 40
    # examples (weights of norm ~150 on unit features) turns those last bits into ~2e-4 of the spread
    assert (np.abs(got - expected) / np.asarray(record["std"])).max() < 5e-4
    human = run_zoo("predict", str(tmp_path / "model.onnx"), images[0])
    assert human.returncode == 0 and "angle" in human.stdout and "value" in human.stdout


@pytest.mark.slow
def test_the_task_rule_and_its_override(numbers, tmp_path):
    from zoo.data import open_dataset
    from zoo.runs.options import FinetuneOptions
    from zoo.tasks import choose_task

    train, _ = numbers
    raw = open_dataset(str(train), modality="image")
    for target, expected in (("angle", "regression"), ("rating", "classification"), ("angle,ink", "regression")):
        task, why = choose_task("auto", raw, FinetuneOptions.from_flat(IMAGE, str(train), target=target))
        assert task.name == expected and "--task overrides" in why
    forced, why = choose_task("regression", raw, FinetuneOptions.from_flat(IMAGE, str(train), target="rating"))
    assert forced.name == "regression" and "--task regression" in why
    # the card's cut: choosing one probes every layer (test_crossfit's ground), twice as long
    ratings = zoo.finetune(IMAGE, str(train), target="rating", out=tmp_path / "ratings", cut="global_pool.flatten",
                           progress=False, log=lambda _: None)
    assert ratings.task_name == "classification" and ratings.classes == tuple(str(i) for i in range(1, 6)
                                                                              if str(i) in ratings.classes)


def _bad(tmp_path: Path, numbers: tuple[Path, Path], column: str, value: object, row: int = 3) -> Path:
    rows = list(csv.DictReader(numbers[0].open()))
    for r in rows:
        r["path"] = str(numbers[0].parent / r["path"])
    rows[row] = {**rows[row], column: value}
    return _write(tmp_path / "bad.csv", rows)


@pytest.mark.parametrize("value, says", [("heavy", "is not a number"), ("", "empty"), ("nan", "NaN"),
                                          ("inf", "infinite"), ("-Infinity", "infinite"), ("1;2", "several values")])
@pytest.mark.slow
def test_a_bad_target_is_one_line_naming_the_row_and_skip_bad_leaves_it_out(numbers, tmp_path, value, says):
    data = _bad(tmp_path, numbers, "angle", value)
    result = run_zoo("finetune", IMAGE, "--data", str(data), "--target", "angle", "--out", str(tmp_path / "r"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{data}:5" in result.stderr and says in result.stderr and "angle" in result.stderr
    assert not (tmp_path / "r").exists()
    skipped = zoo.finetune(IMAGE, str(data), target="angle", skip_bad=True, out=tmp_path / "s",
                           cut="global_pool.flatten", progress=False, log=lambda _: None)
    listed = json.loads((skipped.dir / "skipped.json").read_text())
    assert [entry["where"] for entry in listed] == [f"{data}:5"]


@pytest.mark.slow
def test_whole_data_problems_are_one_line_each(numbers, tmp_path, digit_folder):
    folder = numbers[0].parent
    constant = _write(tmp_path / "constant.csv", [{**r, "path": str(folder / r["path"]), "angle": 7}
                                                  for r in csv.DictReader(numbers[0].open())])
    cases = [
        ({"data": str(constant), "target": "angle", "task": "regression"},
         "has the same value (7) in every training example"),
        ({"data": str(numbers[0]), "target": "angel"}, "names the column 'angel', which the data does not have"),
        ({"data": str(digit_folder), "task": "regression", "target": "angle"}, "use a manifest"),
        ({"data": str(numbers[0]), "task": "regression"}, "--target COLUMN"),
        ({"data": str(numbers[0]), "target": "angle", "per_class": 3}, "--per-class does not apply"),
    ]
    for options, says in cases:
        with pytest.raises((InputError, ZooError), match=None) as caught:
            zoo.finetune(IMAGE, out=tmp_path / "never", progress=False, log=lambda _: None, **options)
        assert says in str(caught.value), (options, str(caught.value))
        assert "\n" not in str(caught.value) and not (tmp_path / "never").exists()


@full_only
@pytest.mark.slow
def test_regression_trains_by_epochs_on_a_split_and_resumes_exactly(numbers, tmp_path):
    from conftest import assert_same_final_weights, killed_and_resumed

    train, test = numbers
    args = ["finetune", IMAGE, "--data", str(train), "--target", "angle", "--validation", "split", "--head", "mlp",
            "--epochs", "6", "--unfreeze", "1", "--unfreeze-epochs", "2", "--no-augment", "--workers", "0", "-q"]
    straight, killed = killed_and_resumed(args, tmp_path, "checkpoints/epoch-0007.pt", timeout=600)
    assert_same_final_weights(straight, killed)
    history = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert history[0]["metric"] == "rmse" and history[0]["val_metric"] > 0
    run = zoo.open_run(tmp_path / "straight")
    assert run.metrics["validation"] == "split" and (run.dir / "report" / "curves.png").is_file()


@pytest.mark.slow
def test_zoo_probe_ranks_layers_by_cross_validated_r2(numbers, tmp_path):
    train, test = numbers
    report = zoo.probe([IMAGE], train, target="angle", test=test, out=tmp_path / "probe", log=lambda _: None)
    assert [r.r2 for r in report.rows] == sorted((r.r2 for r in report.rows), reverse=True)
    assert report.best.test_accuracy is not None and report.labelled == 40
    shown = run_zoo("probe", IMAGE, "--data", str(train), "--target", "angle", "--out", str(tmp_path / "p2"))
    assert shown.returncode == 0 and "cv R²" in shown.stdout and "ranked by cross-validated R²" in shown.stdout
