"""Small data in zoo finetune: the cut, the head and the depth chosen by cross-validation on every
labelled example, trained on all of them, with the baseline in the report (issue 11)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_same_final_weights, full_only, killed_and_resumed, run_zoo

import zoo
from zoo.errors import InputError, ZooError

IMAGE_MODEL = "efficientnet_lite0"
TEXT_MODEL = "all-minilm-l6-v2-offline"


def quiet(**options):
    return {"progress": False, "log": lambda _: None, **options}


@pytest.mark.slow
def test_small_data_is_cross_validated_trained_on_all_and_reports_the_baseline(digit_folder, tmp_path):
    lines: list[str] = []
    run = zoo.finetune(IMAGE_MODEL, str(digit_folder), out=tmp_path / "run", progress=False, log=lines.append)
    config = json.loads((run.dir / "config.json").read_text())
    assert config["config"]["validation"] == "cv"
    assert config["data"]["train"]["size"] + config["data"]["val"]["size"] == 24
    selection = json.loads((run.dir / "selection.json").read_text())
    from zoo.pulling import resolve_card

    card = resolve_card(IMAGE_MODEL)
    tried = [tuple(r["cut"]) for r in selection["rows"]]
    assert tried[0] == (card.embedding.node,) and set(card.features) <= {c[0] for c in tried}
    assert tried[-1] == (*card.features, card.embedding.node)  # all joined
    chosen = min(selection["rows"], key=lambda r: r["log_loss"])
    assert tuple(selection["cut"]) == tuple(chosen["cut"]) and selection["C"] == chosen["C"]
    assert (tuple(run.choices["cut"]) if run.choices["cut"] else (card.embedding.node,)) == tuple(selection["cut"])
    metrics = run.metrics
    assert metrics["validation"] == "cv" and metrics["cv"]["head"]["accuracy"] == chosen["accuracy"]
    assert metrics["baseline"]["name"].startswith("logistic regression on raw pixels")
    assert metrics["baseline"]["cv"]["folds"] == chosen["folds"]  # cross-validated the same way
    assert "baseline (" in metrics["baseline_line"] and any(line == metrics["baseline_line"] for line in lines)
    assert [row["stage"] for row in run.history] == ["head (cv)"]
    # the head is the fitted logistic regression: the torch module gives scikit-learn's probabilities
    from zoo.fitting.linear import fit_probe
    from zoo.train.selection import joined

    model = run.load_model()
    images = [str(p) for c in run.classes for p in sorted((digit_folder / c).iterdir())[:2]]
    with torch.no_grad():
        mine = torch.softmax(model(model.backbone.preprocess(images)), 1).numpy()
    from zoo.data import open_dataset
    from zoo.layer_features import layer_features

    labelled = open_dataset(str(digit_folder), modality="image")
    features, _ = layer_features(card, labelled, None, engine="auto", say=lambda _: None, layers=selection["cut"])
    x = joined({k: v for k, (v, _) in features.items()}, selection["cut"])
    order = {str(e.item): i for i, e in enumerate(labelled.examples)}
    probe = fit_probe(x, labelled.labels, selection["C"])
    reference = probe.predict_proba(x[[order[i] for i in images]])
    np.testing.assert_allclose(mine, reference, atol=2e-3)


@pytest.mark.slow
def test_the_chosen_cut_is_used_by_export_and_predict(digit_folder, tmp_path):
    pytest.importorskip("onnxruntime")
    run = zoo.finetune(IMAGE_MODEL, str(digit_folder), out=tmp_path / "run", cut="blocks.6", **quiet())
    assert run.cut == ("blocks.6",)
    assert run.load_model().backbone.feature_dim == 320
    exported = run_zoo("export", str(run.dir), "--json", timeout=300)
    assert exported.returncode == 0, exported.stderr
    image = str(next((digit_folder / "digit-7").iterdir()))
    predicted = run_zoo("predict", str(run.dir / "model.onnx"), image, "--json")
    assert predicted.returncode == 0, predicted.stderr
    model = run.load_model()
    with torch.no_grad():
        expected = run.classes[int(model(model.backbone.preprocess([image])).argmax(1))]
    out = json.loads(predicted.stdout)
    assert out["predictions"][0]["predictions"][0]["label"] == expected


@pytest.mark.slow
def test_cut_values_and_bad_ones(digit_folder, tmp_path):
    from zoo.pulling import resolve_card
    from zoo.train.selection import parse_cut

    card = resolve_card(IMAGE_MODEL)
    assert parse_cut(card, "auto") is None
    assert parse_cut(card, "blocks.4+blocks.6") == ("blocks.4", "blocks.6")
    assert parse_cut(card, "all") == (*card.features, card.embedding.node)
    with pytest.raises(InputError, match="blocks.99.*choose from.*blocks.6"):
        parse_cut(card, "blocks.99")
    result = run_zoo("finetune", IMAGE_MODEL, "--data", str(digit_folder), "--out", str(tmp_path / "r"),
                     "--cut", "nowhere", "--quiet")
    assert result.returncode == 1 and "nowhere" in result.stderr and "Traceback" not in result.stderr
    joined_run = zoo.finetune(IMAGE_MODEL, str(digit_folder), out=tmp_path / "joined", cut="blocks.4+blocks.6",
                              validation="split", val_split=0.25, head_epochs=5, **quiet())
    assert joined_run.cut == ("blocks.4", "blocks.6") and joined_run.metrics["validation"] == "split"
    features = json.loads((joined_run.dir / "features" / "index.json").read_text())
    assert features["train"]["layers"] == ["blocks.4", "blocks.6"]  # from the per-layer cache, joined


@pytest.mark.slow
def test_validation_auto_uses_a_split_when_asked_or_when_cv_cannot_work(digit_folder, tmp_path):
    split = zoo.finetune(IMAGE_MODEL, str(digit_folder), out=tmp_path / "a", val_split=0.25, head_epochs=5, **quiet())
    assert split.metrics["validation"] == "split" and split.metrics["baseline"]["val"]["n"] == split.metrics["val"]["n"]
    assert "val" in split.metrics and split.metrics["baseline_line"].startswith("baseline (")
    import shutil

    data = tmp_path / "single"
    shutil.copytree(digit_folder, data)
    for extra in sorted((data / "digit-7").iterdir())[1:]:
        extra.unlink()  # one example of digit-7: no fold can train on it and test it
    lines: list[str] = []
    run = zoo.finetune(IMAGE_MODEL, str(data), out=tmp_path / "b", head_epochs=5, progress=False, log=lines.append)
    assert run.metrics["validation"] == "split"
    assert any("a class has a single labelled example" in line for line in lines)
    with pytest.raises(ZooError, match="at least 2 labelled examples per class"):
        zoo.finetune(IMAGE_MODEL, str(data), out=tmp_path / "c", validation="cv", **quiet())
    refused = run_zoo("finetune", IMAGE_MODEL, "--data", str(data), "--out", str(tmp_path / "d"), "--validation", "cv",
                      "--quiet")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr and "--validation split" in refused.stderr
    with pytest.raises(ZooError, match="leave out --val"):
        zoo.finetune(IMAGE_MODEL, str(data), out=tmp_path / "e", validation="cv", val_split=0.3, **quiet())


@pytest.mark.slow
def test_text_unfreezing_gets_its_schedule_from_folds_and_never_ends_below_the_head(text_csv, tmp_path):
    run = zoo.finetune(TEXT_MODEL, str(text_csv), out=tmp_path / "run", unfreeze=1, unfreeze_epochs=2, **quiet())
    schedule = json.loads((run.dir / "cv" / "schedule.json").read_text())
    assert schedule["k"] == 3 and len(list((run.dir / "cv").glob("fold-*.json"))) == 3
    assert len(schedule["mean_loss"]) == 1 + 2  # the head, then two unfrozen epochs
    kept = schedule["keep"]
    assert kept == (schedule["chosen"] > 0 and schedule["unfrozen_metric"] > schedule["head_metric"])
    assert run.metrics["cv"]["schedule"]["kept"] == kept
    stages = [row["stage"] for row in run.history]
    if kept:
        assert stages == ["head (cv)"] + ["unfreeze-1"] * schedule["chosen"] and run.best["phase"] == 1
    else:
        assert stages == ["head (cv)"] and run.best["phase"] == 0
    assert run.metrics["baseline"]["name"].startswith("TF-IDF")


@full_only  # the one loop's resume from any step is test_loop's; this is the folds strategy's end to end
@pytest.mark.slow
def test_a_killed_cross_validated_run_resumes_to_the_same_weights(digit_folder, tmp_path):
    args = [IMAGE_MODEL, "--data", str(digit_folder), "--unfreeze", "1", "--unfreeze-epochs", "1", "--no-augment",
            "--workers", "0", "--quiet", "--seed", "1"]
    straight, killed = killed_and_resumed(["finetune", *args], tmp_path, "cv/fold-0.json", timeout=600)
    assert_same_final_weights(straight, killed)
    for name in ("schedule.json",):
        assert json.loads((killed / "cv" / name).read_text())["mean_loss"] == pytest.approx(
            json.loads((tmp_path / "straight" / "cv" / name).read_text())["mean_loss"], abs=1e-5)


@full_only
@pytest.mark.slow
def test_json_output_carries_the_baseline(digit_folder, tmp_path):
    result = run_zoo("finetune", IMAGE_MODEL, "--data", str(digit_folder), "--out", str(tmp_path / "run"), "--json",
                     "--metric", "macro_f1", timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["validation"] == "cv" and data["metric"] == "macro_f1"
    assert data["baseline"]["cv"]["macro_f1"] >= 0 and "macro-F1" in data["baseline_line"]


def test_learning_rate_schedule_and_augmentation_policies():
    from PIL import Image

    from zoo.batches import augment, augmentation
    from zoo.train.stepping import schedule
    from zoo.runs.options import AUGMENTATIONS, UnfreezeOptions

    group = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [group], "lr": 1.0, "base_lr": 1.0}])
    rates = []
    for step in range(100):
        schedule(optimizer, step / 100, 0.1)
        rates.append(optimizer.param_groups[0]["lr"])
    peak = int(np.argmax(rates))
    assert 8 <= peak <= 11 and rates[0] < 0.05 and rates[-1] < 0.01
    assert all(a <= b for a, b in zip(rates[:peak], rates[1:peak + 1]))  # warmup rises
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1:]))  # cosine falls
    image = Image.fromarray((np.random.default_rng(0).random((40, 30, 3)) * 255).astype("uint8"))
    for policy in AUGMENTATIONS:
        if policy != "none":
            assert augmentation(policy, image.size) is not None
            first, again = np.asarray(augment(image, 7, policy)), np.asarray(augment(image, 7, policy))
            assert np.array_equal(first, again)  # a function of the seed alone
    state = torch.random.get_rng_state()
    augment(image, 3)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's random state is untouched
    assert UnfreezeOptions(augment=False).augment == "none"  # configs from before
    with pytest.raises(ZooError, match="--augment takes"):
        UnfreezeOptions(augment="wild")


@pytest.mark.slow
def test_two_class_probe_becomes_a_two_output_head():
    from zoo.fitting.linear import fit_probe
    from zoo.tasks.heads import NormalisedLinear

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 50)) + np.repeat([[1.0], [-1.0]], 15, axis=0)
    y = [0] * 15 + [1] * 15
    probe = fit_probe(x, y, 10.0)
    head = NormalisedLinear.fitted(*probe.linear())
    with torch.no_grad():
        mine = torch.softmax(head(torch.from_numpy(x).float()), 1).numpy()
    np.testing.assert_allclose(mine, probe.predict_proba(x), atol=1e-5)


@pytest.mark.slow
def test_a_backbone_cut_elsewhere_compiles_its_own_engine():
    pytest.importorskip("onnxruntime")
    from sklearn.datasets import load_sample_images

    images = list(load_sample_images().images)
    cut = zoo.load(IMAGE_MODEL, cut=["blocks.4", "blocks.6"], engine="auto")
    assert cut.engine == "onnxruntime"
    fast = cut.embed(images)
    cut.use_engine(None)
    torch.testing.assert_close(fast, cut.embed(images), atol=1e-4, rtol=1e-3)
    assert fast.shape == (2, 112 + 320)
    plain = zoo.load(IMAGE_MODEL, engine="auto")  # the card's cut keeps its own compiled graph
    assert plain.engine == "onnxruntime" and plain.embed(images).shape == (2, 1280)


@pytest.mark.slow
def test_zoo_embed_of_a_run_uses_its_cut_and_search_embeds_queries_the_same_way(digit_folder, tmp_path):
    run = zoo.finetune(IMAGE_MODEL, str(digit_folder), out=tmp_path / "run", cut="blocks.6", **quiet())
    db = tmp_path / "db"
    report = zoo.embed_dataset(str(run.dir), str(digit_folder), db=db)
    assert report.model == f"run:{run.dir.resolve()}" and report.table == "run" and report.embedded == 24
    from zoo.embed.store import VectorStore

    table = VectorStore(db).table("run")
    assert table.info.dim == 320
    image = str(next((digit_folder / "digit-1").iterdir()))
    hits = zoo.search(db, image, k=1).hits
    assert hits[0].score == pytest.approx(1.0, abs=1e-4) and hits[0].source == image
    again = zoo.embed_dataset(str(run.dir), str(digit_folder), db=db)
    assert again.embedded == 0 and again.unchanged == 24
    (run.dir / "checkpoints" / "final.pt").unlink()
    result = run_zoo("search", "--db", str(db), image)
    assert result.returncode == 1 and "final.pt" in result.stderr and "Traceback" not in result.stderr


def test_above_25_labels_per_class_the_head_is_still_cross_validated_and_a_split_judges_only_epochs():
    """Issue 24: the frozen head is cross-validated on every labelled example at any size where the
    features fit in memory; a validation split is held out only for what trains by epochs."""
    from zoo.data import make_splits
    from zoo.pulling import resolve_card
    from zoo.tasks import get_task
    from zoo.runs.options import FinetuneOptions
    from zoo.train.plan import CV_PER_CLASS, make_plan

    card, task = resolve_card(IMAGE_MODEL), get_task("classification")
    few = make_splits("digits", modality="image", per_class=CV_PER_CLASS, seed=0)
    many = make_splits("digits", modality="image", per_class=CV_PER_CLASS + 1, seed=0)

    def planned(splits, **options):
        return make_plan(FinetuneOptions.from_flat(IMAGE_MODEL, "digits", **options), card, task, splits)[1]

    assert (planned(few).head, planned(few).unfrozen, planned(few).validation) == ("cv", None, "cv")
    assert (planned(many).head, planned(many).unfrozen, planned(many).validation) == ("cv", None, "cv")
    assert (planned(few, unfreeze=1).unfrozen, planned(few, unfreeze=1).validation) == ("folds", "cv")
    chosen = planned(many, unfreeze=1)
    assert (chosen.head, chosen.unfrozen, chosen.validation) == ("cv", "split", "split")
    assert "a validation split judges only what trains by epochs" in chosen.reasons[0]
    assert planned(few, head="mlp").head == "epochs" and planned(few, head="mlp").validation == "split"


@pytest.mark.slow
def test_a_text_run_mixes_in_the_label_names_with_a_weight_chosen_on_folds(text_csv, tmp_path):
    from zoo.embed import zero_shot
    from zoo.tasks.heads import LabelAwareHead
    from zoo.tasks.prior import WEIGHTS

    lines: list[str] = []
    run = zoo.finetune(TEXT_MODEL, str(text_csv), out=tmp_path / "run", unfreeze=0, label_prior="always",
                       progress=False, log=lines.append)
    prior = json.loads((run.dir / "prior.json").read_text())
    assert prior["weight"] in WEIGHTS and run.label_prior["weight"] == prior["weight"]
    from zoo.tasks.prior import SCALES

    assert sorted({(s["scale"], s["weight"]) for s in prior["scores"]}) == [(c, w) for c in SCALES for w in WEIGHTS]
    chosen = max(prior["scores"], key=lambda s: (s["accuracy"], -s["log_loss"], -s["weight"]))
    assert (chosen["weight"], chosen["scale"]) == (prior["weight"], prior["scale"])
    assert any("label names as a prior" in line for line in lines)
    # weight 1 is zero-shot itself: its out-of-fold accuracy is zero-shot's on the labelled texts
    from zoo.data import open_dataset

    labelled = open_dataset(str(text_csv), modality="text")
    classifier = zero_shot(TEXT_MODEL, {c: c for c in labelled.classes})
    predicted = [p.label for p in classifier.predict([e.item for e in labelled.examples])]
    accuracy = np.mean([p == labelled.classes[e.label] for p, e in zip(predicted, labelled.examples)])
    alone = next(s for s in prior["scores"] if s["weight"] == 1.0)
    assert alone["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    model = run.load_model()
    assert isinstance(model.head, LabelAwareHead) and float(model.head.weight) == prior["weight"]
    assert model.head.scale == prior["scale"]
    with torch.no_grad():
        batch = model.backbone.preprocess([e.item for e in labelled.examples[:4]])
        probabilities = torch.softmax(model(**batch), 1)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(4))
    off = zoo.finetune(TEXT_MODEL, str(text_csv), out=tmp_path / "off", unfreeze=0, label_prior="none", **quiet())
    assert off.label_prior is None and not (off.dir / "prior.json").exists()
    auto = zoo.finetune(TEXT_MODEL, str(text_csv), out=tmp_path / "auto", unfreeze=0, **quiet())
    assert auto.label_prior is None  # 6 labelled texts per class: over the measured 5
    pytest.importorskip("onnxruntime")
    exported = run_zoo("export", str(run.dir), timeout=300)
    assert exported.returncode == 0, exported.stderr
