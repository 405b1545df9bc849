"""--recipe contrastive: the text encoder trained on pairs of labelled texts, then the head (issue 12)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import full_only, kill_when_written, run_zoo

import zoo
from zoo.errors import ZooError
from zoo.train.contrastive import ROUNDS, draw_pairs, pair_count

TEXT_MODEL = "all-minilm-l6-v2-offline"


def quiet(**options):
    return {"progress": False, "log": lambda _: None, **options}


def test_pairs_are_seeded_bounded_and_labelled_by_class():
    labels = [0, 0, 0, 1, 1, 2]  # class 2 has a single text: it can have no partner of its class
    pairs = draw_pairs(labels, 50, seed=3)
    assert pairs.shape == (50, 3)
    assert np.array_equal(pairs, draw_pairs(labels, 50, seed=3))
    assert not np.array_equal(pairs, draw_pairs(labels, 50, seed=4))
    y = np.asarray(labels)
    same = pairs[:, 2] == 1
    assert (y[pairs[same, 0]] == y[pairs[same, 1]]).all() and (pairs[same, 0] != pairs[same, 1]).all()
    assert (y[pairs[~same, 0]] != y[pairs[~same, 1]]).all()
    assert not ((pairs[:, 0] == 5) & same).any()
    assert set(pairs[:, 0].tolist()) == set(range(6))  # every text takes part
    assert pair_count("auto", 10) == 400 and pair_count("auto", 1000) == 1280 and pair_count(7, 1000) == 7


#: a few pairs at a high learning rate: the encoder moves visibly in seconds
FAST = {"recipe": "contrastive", "pairs": 48, "contrastive_lr": 2e-4}


@pytest.fixture(scope="module")
def straight(text_csv, tmp_path_factory):
    return zoo.finetune(TEXT_MODEL, str(text_csv), out=tmp_path_factory.mktemp("contrastive") / "run",
                        **quiet(**FAST))


@pytest.mark.slow
def test_contrastive_trains_the_encoder_then_the_head_and_exports_it(straight, text_csv, tmp_path):
    run = straight
    assert run.config["recipe"] == "contrastive" and run.config["unfreeze"] == 0
    record = json.loads((run.dir / "contrastive.json").read_text())
    assert record["pairs"] == 48 and len(record["rounds"]) == ROUNDS
    assert run.metrics["recipe"] == "contrastive" and run.metrics["contrastive"]["pairs"] == 48
    assert any(line.startswith("contrastive: 48 pairs") for line in run.report_lines())
    assert any("optimistic" in line for line in run.report_lines())  # cross-validated after training on all
    # the adapted encoder is in final.pt (every parameter, changed), and the rounds' state is gone
    final = torch.load(run.dir / "checkpoints" / "final.pt", weights_only=True)
    pulled = zoo.load(TEXT_MODEL)
    names = dict(pulled.body.named_parameters())
    assert set(final["body"]) == set(names)
    assert max(float((final["body"][k] - names[k].detach()).abs().max()) for k in names) > 1e-4
    assert not (run.dir / "checkpoints" / "contrastive.pt").exists()
    assert not (run.dir / "checkpoints" / "encoder.pt").exists()
    # the run's model embeds with the adapted encoder: the head on its embeddings is the head of the run
    from zoo.data import open_dataset

    texts = [e.item for e in open_dataset(str(text_csv), modality="text").examples]
    model = run.load_model()
    with torch.no_grad():
        logits = model(**model.backbone.preprocess(texts[:4]))
        adapted = model.backbone(**model.backbone.preprocess(texts[:4]))
        assert not torch.allclose(adapted, pulled.embed(texts[:4]), atol=1e-4)
        assert torch.allclose(logits, model.head(adapted), atol=1e-6)
    # export validates the graph against this model; predict answers from the exported file
    out = tmp_path / "model.onnx"
    result = run_zoo("export", str(run.dir), "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    result = run_zoo("predict", str(out), texts[0], "--json")
    assert result.returncode == 0, result.stderr
    predicted = json.loads(result.stdout)["predictions"][0]["predictions"][0]["label"]
    assert predicted == run.classes[int(logits[0].argmax())]


@pytest.mark.slow
def test_a_validation_split_judges_each_round_and_keeps_the_best(text_csv, tmp_path):
    run = zoo.finetune(TEXT_MODEL, str(text_csv), out=tmp_path / "run", recipe="contrastive", pairs=32,
                       validation="split", val_split=0.34, **quiet())
    record = run.metrics["contrastive"]
    assert record["judged"] and "val_loss" in record["start"] and all("val_loss" in r for r in record["rounds"])
    losses = [record["start"]["val_loss"]] + [r["val_loss"] for r in record["rounds"]]
    assert record["best"] == int(np.argmin(losses))
    final = torch.load(run.dir / "checkpoints" / "final.pt", weights_only=True)
    pulled = dict(zoo.load(TEXT_MODEL).body.named_parameters())
    unchanged = all(torch.equal(final["body"][k], v.detach()) for k, v in pulled.items())
    assert unchanged == (record["best"] == 0)


@full_only  # the one loop's resume from any step is test_loop's; this is the contrastive rounds' end to end
@pytest.mark.slow
def test_a_killed_contrastive_run_resumes_to_the_same_weights(straight, text_csv, tmp_path):
    folder = tmp_path / "killed"
    args = ["finetune", TEXT_MODEL, "--data", str(text_csv), "--out", str(folder), "--recipe", "contrastive",
            "--pairs", "48", "--contrastive-lr", "2e-4", "-q"]
    kill_when_written(args, folder / "checkpoints" / "contrastive" / "epoch-0001.pt")
    assert not (folder / "checkpoints" / "final.pt").exists()
    result = run_zoo("finetune", "--resume", str(folder), "-q", timeout=300)
    assert result.returncode == 0, result.stderr
    a = torch.load(straight.dir / "checkpoints" / "final.pt", weights_only=True)
    b = torch.load(folder / "checkpoints" / "final.pt", weights_only=True)
    for part in ("body", "head"):
        assert set(a[part]) == set(b[part])
        assert max(float((a[part][k] - b[part][k]).abs().max()) for k in a[part]) < 1e-5
    rounds = json.loads((folder / "contrastive.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == list(range(1, ROUNDS + 1))


@pytest.mark.parametrize("options, message", [
    ({"recipe": "contrastive", "unfreeze": 2}, "leave out --unfreeze"),
    ({"recipe": "contrastive", "cut": "all"}, "leave out --cut"),
    ({"recipe": "contrastive", "pairs": 0}, "--pairs takes a positive number"),
    ({"recipe": "pairs"}, "--recipe takes auto, gradual, contrastive"),
])
@pytest.mark.slow
def test_contrastive_options_that_do_not_fit_say_so(text_csv, tmp_path, options, message):
    with pytest.raises(ZooError, match=message):
        zoo.finetune(TEXT_MODEL, str(text_csv), out=tmp_path / "run", **quiet(**options))


@pytest.mark.slow
def test_contrastive_on_an_image_model_is_one_line(digit_folder, tmp_path):
    result = run_zoo("finetune", "efficientnet_lite0", "--data", str(digit_folder), "--recipe", "contrastive",
                     "--out", str(tmp_path / "run"))
    assert result.returncode != 0
    assert "trains a text encoder on pairs" in result.stderr and "Traceback" not in result.stderr


def test_auto_picks_contrastive_where_it_was_measured_best(text_csv):
    from zoo.data import make_splits
    from zoo.pulling import resolve_card
    from zoo.tasks import get_task
    from zoo.runs.options import FinetuneOptions
    from zoo.train.plan import make_plan

    card, task = resolve_card(TEXT_MODEL), get_task("classification")

    def decided(per_class=None, **options):
        chosen = FinetuneOptions.from_flat(TEXT_MODEL, str(text_csv), per_class=per_class, **options)
        splits = make_splits(str(text_csv), modality="text", val_split=chosen.data.split_fraction, per_class=per_class)
        return make_plan(chosen, card, task, splits)

    options, plan = decided()  # 6 labelled texts per class, cross-validated
    assert plan.recipe == "contrastive" and "between 5 and 25" in plan.reasons[1]
    assert options.unfreezing.unfreeze == 0
    assert decided(per_class=3)[1].recipe == "gradual"  # below 5 per class: the head with the label prior
    assert decided(unfreeze=2)[1].recipe == "gradual"  # asked for unfreezing
    assert decided(val_split=0.34)[1].recipe == "gradual"  # a validation split
    assert decided(recipe="gradual")[0].unfreezing.unfreeze == 2
