"""Fine-tuning an image-text model from its zero-shot classifier, then mixing the weights (WiSE-FT).

Tiny random-weight CLIP and SigLIP repositories saved by transformers (tests/clipkit.py), served
by the local Hub server and read through the real `hf:` path; pictures of coloured blobs in
class folders. Real pretrained weights cannot be downloaded here, so these tests check the
mechanics end to end, not quality: the recipe chosen for an image-text model, the head started
from the class names' prototypes, the mixing weight chosen on the folds (or the validation split)
and recorded, a = 0 the zero-shot classifier itself and a = 1 the fine-tuned network, the
mixture exported and answered by `zoo predict` as PyTorch computes it, a killed run resumed to
the same weights, the report page's side-by-side table, the label prior of the frozen head, and
every bad request one line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import hubserver
from click.testing import CliRunner
from clipkit import CLIP, SIGLIP, VIT, clip_repo, shared_home, siglip_repo, vit_repo  # noqa: F401
from conftest import full_only, kill_when_written, run_zoo

import zoo
from zoo.cli import cli
from zoo.prompts import IMAGE_TEMPLATES

module_hub = hubserver.module_hub
MAKERS = {CLIP: clip_repo, SIGLIP: siglip_repo, VIT: vit_repo}
COLOURS = {"cat": (200, 60, 60), "dog": (60, 200, 60), "car": (60, 60, 200)}
#: Small and fast: one stage unfrozen for two epochs, no augmentation, no loader processes.
QUICK = ["--unfreeze", "1", "--unfreeze-epochs", "2", "--no-augment", "--workers", "0", "--quiet"]


@pytest.fixture(scope="module")
def repos(module_hub, tmp_path_factory):
    root = tmp_path_factory.mktemp("repos")
    for name, make in MAKERS.items():
        module_hub.add_repo(name, make(root / name.split("/")[1]), card_data={"license": "mit"})


@pytest.fixture
def hf(repos, shared_home):
    return repos


def write_classes(folder, per_class: int = 6, seed: int = 0, classes=tuple(COLOURS)):
    """Class folders of pictures: noisy blobs around each class's colour, of varied sizes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in classes:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            blob = np.array(COLOURS[name]) + rng.integers(-90, 90, size=(5, 5, 3))
            picture = Image.fromarray(np.clip(blob, 0, 255).astype(np.uint8)).resize((36 + i % 5, 40))
            picture.save(folder / name / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    return {"train": write_classes(root / "train"), "test": write_classes(root / "test", per_class=3, seed=1)}


def finetune(model: str, pictures, out, *more: str, test: bool = True):
    """`zoo finetune` in a subprocess (the CLI as a person runs it); the finished run."""
    args = ["finetune", f"hf:{model}", "--data", str(pictures["train"]), *(["--test", str(pictures["test"])] if test
                                                                           else []), "--out", str(out), *QUICK, *more]
    done = run_zoo(*args, timeout=600)
    assert done.returncode == 0, done.stderr
    return zoo.open_run(out)


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_states_equal(a, b) -> None:
    for part in ("head", "body"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)


def _last_checkpoint(run):
    return max(run.dir.glob("checkpoints/epoch-*.pt"))


def _pixels(model: str, pictures):
    items = sorted(str(p) for p in pictures["test"].rglob("*.png"))
    return items, zoo.load(f"hf:{model}").preprocess(items)


# --------------------------------------------------------------------------- the recipe, chosen on folds


@pytest.mark.slow
def test_an_image_text_run_is_fine_tuned_from_zero_shot_and_the_mixing_weight_chosen_on_folds(hf, pictures, tmp_path):
    run = finetune(CLIP, pictures, tmp_path / "run")
    plan = json.loads((run.dir / "config.json").read_text())["plan"]
    assert plan["recipe"] == "wise-ft" and plan["unfrozen"] == "folds"
    assert any("zero-shot classifier" in reason for reason in plan["reasons"])
    assert run.config["cut"] == "image_embeds" and run.config["unfreeze"] == 1
    record = run.metrics["wise_ft"]
    folds = [json.loads(p.read_text()) for p in sorted((run.dir / "wiseft").glob("fold-*.json"))]
    assert len(folds) == record["folds"] >= 2
    # every weight of the grid judged on every fold; the record holds their means, in order
    alphas = [round(0.1 * i, 1) for i in range(11)]
    assert [s["alpha"] for s in record["alphas"]] == alphas
    for score in record["alphas"]:
        for key in ("metric", "loss"):
            assert score[key] == pytest.approx(np.mean([f["alphas"][str(score["alpha"])][key] for f in folds]))
    # the chosen a: the best held-out accuracy, ties broken by the lower loss
    best = max(record["alphas"], key=lambda s: (s["metric"], -s["loss"]))
    assert record["best"] == best["alpha"] and record["alpha"] == best["alpha"]
    assert json.loads((run.dir / "wiseft" / "choice.json").read_text())["alpha"] == record["alpha"]
    # the ends of the sweep are zero-shot (each fold's first point) and the end of the schedule
    scores = {s["alpha"]: {"loss": s["loss"], "metric": s["metric"]} for s in record["alphas"]}
    assert record["zero_shot"] == scores[0.0] == record["trajectory"][0]
    assert record["fine_tuned"] == scores[1.0] == record["trajectory"][-1]
    assert record["mixed"] == scores[record["alpha"]]
    # kept only when it beats the frozen head on the same folds; the record says which is the model
    assert record["kept"] == (best["metric"] > record["frozen_head"]["metric"])
    assert run.choices["wise_ft"]["kept"] == record["kept"]
    assert (run.choices["head"]["kind"] == "prototypes") == record["kept"]
    assert any(line.startswith("wise-ft (") for line in run.report_lines())
    # the report page: zero-shot, fine-tuned and mixed side by side, numbers as in metrics.json
    page = (run.dir / "report" / "index.html").read_text()
    assert 'id="wise-ft"' in page and "Zero-shot, fine-tuned and mixed" in page
    for key in ("zero_shot", "fine_tuned", "mixed", "frozen_head"):
        assert f'data-key="wise_ft.{key}.metric" data-value="{record[key]["metric"]!r}"' in page


def test_the_choice_of_the_mixing_weight():
    from zoo.train.wiseft import ALPHAS, _choose

    scores = {str(a): {"metric": 0.5, "loss": 1.0} for a in ALPHAS}
    scores["0.3"] = {"metric": 0.8, "loss": 0.9}
    scores["0.6"] = {"metric": 0.8, "loss": 0.7}  # as accurate, a lower loss
    assert _choose(scores, {"metric": 0.7, "loss": 0.5}, True, "auto") == {
        "alpha": 0.6, "best": 0.6, "fixed": False, "kept": True}
    assert not _choose(scores, {"metric": 0.8, "loss": 0.5}, True, "auto")["kept"]  # a tie keeps the frozen head
    assert _choose(scores, {"metric": 0.9, "loss": 0.5}, True, 0.25) == {
        "alpha": 0.25, "best": 0.6, "fixed": True, "kept": True}  # --mix is the model whatever the folds say
    assert _choose(scores, {"metric": 0.4, "loss": 0.5}, False, "auto")["alpha"] == 0.0  # lower is better: the first


# --------------------------------------------------------------------------- the two ends, and the mixture


@pytest.mark.slow
def test_mix_zero_is_the_zero_shot_classifier_and_mix_one_the_fine_tuned_network(hf, pictures, tmp_path):
    items, pixels = _pixels(CLIP, pictures)
    described = {"car": "a red car at night", "cat": "cat", "dog": "a dog on a sunny day"}
    labels = ["--labels", ",".join(f"{name}: {text}" for name, text in described.items())]
    zero = finetune(CLIP, pictures, tmp_path / "zero", "--mix", "0", *labels)
    assert zero.metrics["wise_ft"]["kept"] and zero.metrics["wise_ft"]["chosen_by"] == "--mix"
    assert tuple(zero.classes) == tuple(described)
    classifier = zoo.zero_shot(f"hf:{CLIP}", described)  # the descriptions in the same photo prompts
    assert zero.metrics["wise_ft"]["templates"] == list(IMAGE_TEMPLATES)
    with torch.no_grad():
        ours = zero.load_model()(pixels)
        theirs = classifier.to_module()(pixels)
    assert torch.equal(ours, theirs)  # the pulled image tower and the names' prototypes, exactly
    np.testing.assert_allclose(ours.softmax(-1).numpy(), classifier.probabilities(classifier.embed(items)), atol=1e-5)
    one = finetune(CLIP, pictures, tmp_path / "one", "--mix", "1", *labels)
    _assert_states_equal(_state(one.dir / "checkpoints" / "final.pt"), _state(_last_checkpoint(one)))
    assert one.metrics["wise_ft"]["held_out"]["test"]["fine_tuned"]["accuracy"] == one.metrics["test"]["accuracy"]
    assert one.metrics["wise_ft"]["held_out"]["test"]["zero_shot"]["accuracy"] == zero.metrics["test"]["accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize("model", [SIGLIP])
def test_the_mixture_is_theta_of_a_and_exports_to_what_zoo_predict_answers(hf, pictures, tmp_path, model):
    from zoo.train.wiseft import mixed

    run = finetune(model, pictures, tmp_path / "run", "--mix", "0.3")
    final = _state(run.dir / "checkpoints" / "final.pt")
    tuned = _state(_last_checkpoint(run))
    start = json.loads((run.dir / "wiseft" / "zero_shot.json").read_text())
    pulled = zoo.load(f"hf:{model}").body.state_dict()
    zero = {"head": {"linear.weight": torch.tensor(start["prototypes"]),
                     "scale": torch.tensor(start["scale"]), "bias": torch.tensor(start["bias"])},
            "body": {k: pulled[k] for k in tuned["body"]}}
    assert start["bias"] == pytest.approx(-5.0) and tuned["body"]  # SigLIP's own bias; stages were trained
    expected = mixed(zero, tuned, 0.3)
    for part in ("head", "body"):
        for key, value in expected[part].items():
            torch.testing.assert_close(final[part][key], value, atol=1e-6, rtol=0)
    assert any(not torch.equal(final["body"][k], tuned["body"][k]) for k in tuned["body"])
    # the report: each network on the test set beside the folds' estimates, the mixture's the run's own
    held = run.metrics["wise_ft"]["held_out"]["test"]
    assert set(held) == {"zero_shot", "fine_tuned", "frozen_head"}
    page = (run.dir / "report" / "index.html").read_text()
    for key in held:
        assert f'data-key="wise_ft.held_out.test.{key}.accuracy" data-value="{held[key]["accuracy"]!r}"' in page
    assert f'data-key="test.accuracy" data-value="{run.metrics["test"]["accuracy"]!r}"' in page
    assert "Every mixing weight on held-out data (" + f"{run.metrics['wise_ft']['folds']} folds)" in page
    # exported, validated against PyTorch, answered by the torch-free runtime as PyTorch computes it
    exported = run_zoo("export", str(run.dir), "--samples", "4")
    assert exported.returncode == 0, exported.stderr
    assert "+ prototypes head" in exported.stdout + exported.stderr  # the metadata names the head it is
    items, pixels = _pixels(model, pictures)
    predicted = run_zoo("predict", str(run.dir / "model.onnx"), *items, "--top-k", "3", "--json")
    assert predicted.returncode == 0, predicted.stderr
    with torch.no_grad():
        expected_probabilities = run.load_model()(pixels).softmax(-1).numpy()
    for row, answer in zip(expected_probabilities, json.loads(predicted.stdout)["predictions"]):
        got = {p["label"]: p["probability"] for p in answer["predictions"]}
        np.testing.assert_allclose([got[c] for c in run.classes], row, atol=1e-4)


# --------------------------------------------------------------------------- resume


@full_only
@pytest.mark.slow
def test_a_killed_wise_ft_run_resumes_to_the_same_weights(hf, pictures, tmp_path):
    args = ["finetune", f"hf:{CLIP}", "--data", str(pictures["train"]), *QUICK, "--mix", "0.5", "--seed", "1"]
    straight = run_zoo(*args, "--out", str(tmp_path / "straight"), timeout=600)
    assert straight.returncode == 0, straight.stderr
    killed = tmp_path / "killed"
    # killed once between the folds, once in the fine-tuning on every example
    kill_when_written([*args, "--out", str(killed)], killed / "wiseft" / "fold-0.json")
    assert not (killed / "wiseft" / "choice.json").exists(), "the folds ended before the run could be killed"
    kill_when_written(["finetune", "--resume", str(killed), "--quiet"], killed / "checkpoints" / "epoch-0002.pt")
    assert not (killed / "checkpoints" / "final.pt").exists(), "the run finished before it could be killed"
    resumed = run_zoo("finetune", "--resume", str(killed), "--quiet", timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    _assert_states_equal(_state(tmp_path / "straight" / "checkpoints" / "final.pt"),
                         _state(killed / "checkpoints" / "final.pt"))
    a, b = (json.loads((folder / "report" / "metrics.json").read_text())["wise_ft"] for folder in
            (tmp_path / "straight", killed))
    assert a["alphas"] == b["alphas"] and a["trajectory"] == b["trajectory"]


# --------------------------------------------------------------------------- larger data: a validation split


@pytest.mark.slow
def test_above_25_per_class_the_mixing_weight_is_chosen_on_the_validation_split(hf, tmp_path):
    data = write_classes(tmp_path / "data", per_class=28, classes=("cat", "dog"))
    run = finetune(CLIP, {"train": data}, tmp_path / "run", test=False)
    plan = json.loads((run.dir / "config.json").read_text())["plan"]
    assert (plan["recipe"], plan["unfrozen"], plan["validation"]) == ("wise-ft", "split", "split")
    record = run.metrics["wise_ft"]
    assert record["chosen_by"] == "the validation split" and record["folds"] is None
    rows = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    tuning = [r for r in rows if r["epoch"] > 1]
    assert len(tuning) == 2 and all(r["val_loss"] is not None for r in tuning)  # the schedule, judged on val
    assert record["fine_tuned"] == {"loss": tuning[-1]["val_loss"], "metric": tuning[-1]["val_metric"]}
    best = max(record["alphas"], key=lambda s: (s["metric"], -s["loss"]))
    assert record["alpha"] == best["alpha"] and record["kept"] == (best["metric"] > record["frozen_head"]["metric"])
    if record["kept"]:  # the mixture: the fine-tuning's last epoch is the run's best
        assert record["held_out"]["val"]["zero_shot"]["n"] == run.metrics["val"]["n"]
        assert (run.best["epoch"], run.best["phase"]) == (tuning[-1]["epoch"], 1)
    else:  # the frozen head stays: the run's best is its epoch, and final.pt holds no trained stage
        assert (run.best["epoch"], run.best["phase"]) == (1, 0)
        assert not _state(run.dir / "checkpoints" / "final.pt")["body"]


# --------------------------------------------------------------------------- the frozen head's prior


@pytest.mark.slow
def test_the_frozen_head_of_an_image_text_run_is_mixed_with_the_zero_shot_classifier(hf, pictures, tmp_path):
    described = {"cat": "a small cat", "dog": "dog", "car": "a red car at night"}  # --labels: what to embed
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{name}: {text}\n" for name, text in described.items()))
    run = finetune(CLIP, pictures, tmp_path / "run", "--unfreeze", "0", "--labels", str(labels), test=False)
    assert run.config["recipe"] == "gradual" and "wise_ft" not in run.metrics  # no stage to fine-tune: frozen
    prior = json.loads((run.dir / "prior.json").read_text())
    classifier = zoo.zero_shot(f"hf:{CLIP}", {name: described[name] for name in run.classes})
    np.testing.assert_allclose(prior["prototypes"], classifier.prototypes, atol=1e-6)
    assert prior["scale"] == pytest.approx(classifier.scale) and prior["templates"] == list(IMAGE_TEMPLATES)
    assert {s["weight"] for s in prior["scores"]} == {0.0, 0.25, 0.5, 0.75, 1.0}  # zero-shot alone among them
    assert run.label_prior["weight"] == prior["weight"]


# --------------------------------------------------------------------------- bad requests


def _one_line_error(result, message: str) -> None:
    assert result.exit_code == 1 and message in result.stderr, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.slow
def test_bad_wise_ft_requests_are_one_line_each(hf, pictures, tmp_path):
    data = ["--data", str(pictures["train"])]
    cases = [
        ([f"hf:{VIT}", *data, "--recipe", "wise-ft"], "has no text tower"),
        ([f"hf:{VIT}", *data, "--mix", "0.5"], "leave out --mix"),
        ([f"hf:{CLIP}", *data, "--recipe", "wise-ft", "--unfreeze", "0"], "--unfreeze 0 leaves no stage"),
        ([f"hf:{CLIP}", *data, "--recipe", "wise-ft", "--cut", "vision_model.encoder.layers.0"], "joint embedding"),
        ([f"hf:{CLIP}", *data, "--recipe", "wise-ft", "--head", "mlp"], "trained by epochs"),
        ([f"hf:{CLIP}", *data, "--recipe", "wise-ft", "--validation", "split"], "trained by epochs"),
        ([f"hf:{CLIP}", *data, "--recipe", "gradual", "--mix", "0.5"], "leave it out for --recipe gradual"),
        ([f"hf:{CLIP}", *data, "--mix", "1.5"], "--mix takes 'auto' or a weight from 0"),
        ([f"hf:{CLIP}", *data, "--mix", "half"], "--mix takes 'auto' or a weight from 0"),
    ]
    for number, (args, message) in enumerate(cases):
        _one_line_error(CliRunner().invoke(cli, ["finetune", *args, "--out", str(tmp_path / f"r{number}"), "-q"]),
                        message)


@pytest.mark.slow
def test_above_25_per_class_gradual_unfreezing_on_a_split_starts_from_the_training_part(hf, tmp_path):
    """The split's training part is embedded when its phases need it (the cross-validated head's
    features are every labelled example's): the gradual recipe's split, beside wise-ft's."""
    data = write_classes(tmp_path / "data", per_class=28, classes=("cat", "dog"))
    run = finetune(CLIP, {"train": data}, tmp_path / "run", "--recipe", "gradual", test=False)
    assert (run.config["recipe"], run.config["validation"]) == ("gradual", "split")
    assert "unfrozen" in run.metrics and run.metrics["val"]["n"] > 0
    unfrozen = run.metrics["unfrozen"]  # the run's best is the model it keeps
    assert run.best["phase"] == (unfrozen["phase"] if unfrozen["kept"] else 0)
