"""zoo finetune end to end on small real datasets written by the tests (images and text)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import full_only, kill_when_written, run_zoo, write_digit_folder

import zoo
from zoo.errors import ZooError

IMAGE_MODEL = "efficientnet_lite0"
TEXT_MODEL = "all-minilm-l6-v2-offline"


def quick(**options):
    base = {"val_split": 0.25, "head_epochs": 40, "patience": 10, "progress": False, "log": lambda _: None}
    return {**base, **options}


@pytest.mark.slow
def test_head_only_run_writes_a_readable_run_folder(digit_folder, tmp_path):
    run = zoo.finetune(IMAGE_MODEL, str(digit_folder), out=tmp_path / "run", **quick())
    folder = run.dir
    for name in ("config.json", "labels.json", "metrics.jsonl", "checkpoints/best.json", "checkpoints/final.pt",
                 "report/metrics.json", "report/curves.png", "report/confusion_val.png", "features/index.json"):
        assert (folder / name).is_file(), name
    assert run.classes == ("digit-0", "digit-1", "digit-7")
    epochs = sorted(folder.glob("checkpoints/epoch-*.pt"))
    assert len(epochs) == len(run.history) >= 1  # one checkpoint per epoch
    assert run.val_accuracy is not None and run.val_accuracy >= 0.8  # digits 0/1/7 are easy for ImageNet features
    assert set(run.metrics["val"]) >= {"accuracy", "macro_f1", "per_class", "confusion"}
    config = json.loads((folder / "config.json").read_text())
    assert config["config"]["model"] == IMAGE_MODEL and config["weights"]["sha256"]
    assert config["data"]["train"]["size"] + config["data"]["val"]["size"] == 24
    model = run.load_model()
    images = [str(next((digit_folder / c).iterdir())) for c in run.classes]
    predictions = model(model.backbone.preprocess(images)).argmax(1).tolist()
    assert predictions == [0, 1, 2]


@full_only
@pytest.mark.slow
def test_embeddings_are_cached_and_reused(digit_folder, tmp_path):
    first = zoo.finetune(IMAGE_MODEL, str(digit_folder), out=tmp_path / "a", **quick())
    records = json.loads((first.dir / "features" / "index.json").read_text())
    assert records["train"]["hit"] is False  # each test has its own ZOO_HOME, so the first run computes
    second = zoo.finetune(IMAGE_MODEL, str(digit_folder), out=tmp_path / "b", **quick(head_lr=1e-2))
    again = json.loads((second.dir / "features" / "index.json").read_text())
    assert again["train"]["hit"] is True and again["val"]["hit"] is True
    assert again["train"]["key"] == records["train"]["key"]


@pytest.mark.slow
def test_rollback_restores_the_best_epoch(digit_folder, tmp_path):
    # A wild learning rate makes validation worse after its best epoch; patience lets it go on.
    run = zoo.finetune(IMAGE_MODEL, str(digit_folder), out=tmp_path / "run",
                       **quick(head_lr=3.0, head_epochs=25, patience=25, label_smoothing=0.0))
    losses = [row["val_loss"] for row in run.history]
    best = run.best["epoch"]
    assert best < len(run.history), "the scenario needs later epochs that are worse"
    assert min(losses[best:]) >= losses[best - 1] - 1e-6 or run.history[best - 1]["val_metric"] >= max(
        r["val_metric"] for r in run.history)
    final = torch.load(run.dir / "checkpoints" / "final.pt", weights_only=True)
    chosen = torch.load(run.dir / "checkpoints" / f"epoch-{best:04d}.pt", weights_only=True)
    for key, value in chosen["head"].items():
        torch.testing.assert_close(final["head"][key], value)
    assert run.val_accuracy == pytest.approx(run.history[best - 1]["val_metric"])


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_best(digit_folder, tmp_path):
    lines = []
    run = zoo.finetune(IMAGE_MODEL, str(digit_folder), out=tmp_path / "run",
                       **quick(head_lr=1e25, head_epochs=30, patience=30, log=lines.append))
    assert run.metrics["stopped"] and "NaN or infinite" in run.metrics["stopped"]
    assert any("keeping the best checkpoint" in line for line in lines)
    final = torch.load(run.dir / "checkpoints" / "final.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in final["head"].values())


@pytest.mark.slow
def test_an_existing_run_folder_is_never_overwritten(digit_folder, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    with pytest.raises(ZooError, match="exists and is not empty.*--resume"):
        zoo.finetune(IMAGE_MODEL, str(digit_folder), out=tmp_path / "run", **quick())
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_text_run_with_unfreezing(text_csv, tmp_path):
    run = zoo.finetune(TEXT_MODEL, str(text_csv), out=tmp_path / "run",
                       **quick(val_split=0.34, unfreeze=1, unfreeze_epochs=2, unfreeze_patience=2))
    assert run.classes == ("cooking", "finance", "sport")
    stages = {row["stage"] for row in run.history}
    assert stages == {"head", "unfreeze-1"}
    assert run.val_accuracy >= 2 / 3


def test_auto_unfreezing_is_decided_by_modality():
    from zoo.runs.options import UnfreezeOptions

    unfreezing = UnfreezeOptions()  # unfreeze="auto", as measured in bench/
    assert unfreezing.resolved("image", "gradual").unfreeze == 0
    assert unfreezing.resolved("text", "gradual").unfreeze == 2
    assert UnfreezeOptions(unfreeze="all").resolved("text", "gradual").unfreeze == "all"


def _final_weights(folder: Path) -> dict[str, torch.Tensor]:
    final = torch.load(folder / "checkpoints" / "final.pt", weights_only=True)
    return {**{f"head.{k}": v for k, v in final["head"].items()}, **{f"body.{k}": v for k, v in final["body"].items()}}


@full_only
@pytest.mark.slow
def test_resume_after_kill_matches_a_straight_run(digit_folder, tmp_path):
    args = [IMAGE_MODEL, "--data", str(digit_folder), "--val-split", "0.25", "--epochs", "8", "--unfreeze", "1",
            "--unfreeze-epochs", "3", "--no-augment", "--workers", "0", "--quiet", "--seed", "3"]
    straight = run_zoo("finetune", *args, "--out", str(tmp_path / "straight"), timeout=600)
    assert straight.returncode == 0, straight.stderr

    killed_dir = tmp_path / "killed"
    # epoch 10 is inside the unfreezing phase (8 head epochs)
    kill_when_written(["finetune", *args, "--out", str(killed_dir)], killed_dir / "checkpoints" / "epoch-0010.pt")
    assert not (killed_dir / "checkpoints" / "final.pt").exists(), "the run finished before it could be killed"

    resumed = run_zoo("finetune", "--resume", str(killed_dir), "--quiet", timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    a, b = _final_weights(tmp_path / "straight"), _final_weights(killed_dir)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    straight_history = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    resumed_history = [json.loads(x) for x in (killed_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in straight_history] == [r["epoch"] for r in resumed_history]
    # every epoch's weights stay (the rollback needs them); only the newest keeps an optimizer state
    for folder in (tmp_path / "straight", killed_dir):
        checkpoints = folder / "checkpoints"
        epochs = sorted(checkpoints.glob("epoch-*.pt"))
        assert len(epochs) == len(straight_history)
        assert [p.name for p in checkpoints.glob("optimizer-*.pt")] == [epochs[-1].name.replace("epoch", "optimizer")]
        assert all("optimizer" not in torch.load(p, weights_only=True) for p in epochs)


@pytest.mark.slow
def test_cli_end_to_end(digit_folder, tmp_path):
    result = run_zoo("finetune", IMAGE_MODEL, "--data", str(digit_folder), "--out", str(tmp_path / "run"),
                     "--val-split", "0.25", "--epochs", "20", "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["val"]["accuracy"] >= 0.8 and data["run"] == str(tmp_path / "run")


@pytest.mark.slow
def test_cli_bad_image_names_the_file_and_skip_bad_lists_it(digit_folder, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(digit_folder, data)
    (data / "digit-1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    failed = run_zoo("finetune", IMAGE_MODEL, "--data", str(data), "--out", str(tmp_path / "a"), "--quiet")
    assert failed.returncode == 1 and "broken.png" in failed.stderr and "Traceback" not in failed.stderr
    assert "--skip-bad" in failed.stderr
    ok = run_zoo("finetune", IMAGE_MODEL, "--data", str(data), "--out", str(tmp_path / "b"), "--quiet",
                 "--val-split", "0.25", "--epochs", "5", "--skip-bad")
    assert ok.returncode == 0, ok.stderr
    skipped = json.loads((tmp_path / "b" / "skipped.json").read_text())
    assert len(skipped) == 1 and "broken.png" in skipped[0]["where"]


@pytest.mark.slow
def test_an_imbalanced_training_set_gets_balanced_class_weights(tmp_path):
    from zoo.classweights import class_weights

    assert class_weights([8, 8, 2], "auto") == pytest.approx([0.75, 0.75, 3.0])
    assert class_weights([8, 8, 3], "auto") is None and class_weights([8, 8, 3], "balanced") is not None
    assert class_weights([8, 8, 2], "none") is None
    data = write_digit_folder(tmp_path / "digits", dark_ink=True)
    for extra in sorted((data / "digit-7").iterdir())[2:]:
        extra.unlink()  # 8, 8 and 2 images: 6 training examples against 1
    lines: list[str] = []
    # the card's cut: the weights go into the head's folds the same way at any cut (choosing one is test_crossfit's)
    run = zoo.finetune("efficientnet_lite0", str(data), out=tmp_path / "run", head_epochs=5, cut="global_pool.flatten",
                       progress=False, log=lines.append)
    weights = run.choices["class_weights"]
    assert weights["digit-7"] > 2 * weights["digit-0"] and any("balanced class weights" in line for line in lines)
    plain = zoo.finetune("efficientnet_lite0", str(data), out=tmp_path / "plain", head_epochs=5, class_weight="none",
                         cut="global_pool.flatten", progress=False, log=lambda _: None)
    assert plain.choices["class_weights"] is None


def test_the_reports_metrics_are_scikit_learns():
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    from zoo.tasks.metrics import classification_report

    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = rng.integers(0, 3, 40)  # class 3 never occurs in the labels ...
        predicted = rng.integers(0, 4, 40)  # ... but is predicted: macro-F1 counts it as 0, like scikit-learn
        report = classification_report(truth, predicted, ["a", "b", "c", "d"])
        assert report["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))
        assert report["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
        precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=[0, 1, 2, 3],
                                                                         zero_division=0)
        assert [report["per_class"][c]["f1"] for c in "abcd"] == pytest.approx(list(f1))
        assert [report["per_class"][c]["support"] for c in "abcd"] == list(support)
