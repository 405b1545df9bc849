"""zoo probe: every cut point of real backbones on real data, ranked by a nested cross-validated probe."""

from __future__ import annotations

import json

import numpy as np
import pytest

import zoo
from zoo.errors import InputError
from zoo.fitting.linear import _normalise, _row_space, cross_validate, fit_probe

from conftest import full_only, run_zoo, write_digit_folder


def test_the_row_space_projection_changes_nothing_but_the_speed():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x, test = _normalise(rng.normal(size=(40, 300))), _normalise(rng.normal(size=(15, 300)))
    y = rng.integers(0, 4, 40)
    full = LogisticRegression(C=100, max_iter=20000, tol=1e-10).fit(x, y)
    z, z_test = _row_space(x, test)
    small = LogisticRegression(C=100, max_iter=20000, tol=1e-10).fit(z, y)
    assert z.shape == (40, 40)
    np.testing.assert_allclose(small.predict_proba(z_test), full.predict_proba(test), atol=1e-8)


@pytest.mark.slow
def test_cross_validation_on_separable_and_on_random_features():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 10)
    centres = rng.normal(size=(3, 50)) * 5
    clear = cross_validate(centres[labels] + rng.normal(size=(30, 50)), labels)
    noise = cross_validate(rng.normal(size=(30, 50)), labels)
    assert clear.accuracy == 1.0 and clear.folds == 5 and clear.repeats == 3 and clear.samples == 30
    assert noise.accuracy < 0.6
    model = fit_probe(centres[labels], labels, clear.C)
    assert list(model.predict(centres)) == [0, 1, 2]


def test_a_class_with_one_example_is_a_clear_error():
    with pytest.raises(InputError, match="a class has a single labelled example"):
        cross_validate(np.eye(5), [0, 0, 1, 1, 2], where="tiny.csv")


@pytest.mark.slow
def test_probe_ranks_every_cut_point_of_a_real_backbone(tmp_path):
    data = write_digit_folder(tmp_path / "digits", dark_ink=True)
    report = zoo.probe(["efficientnet_lite0"], data, out=tmp_path / "probe", log=lambda _: None)
    card = zoo.get_card("efficientnet_lite0")
    grids = {f"{name}@2" for name in card.features}  # every feature map also pooled on a 2x2 grid
    assert {r.layer for r in report.rows} == {card.embedding.node, *card.features, *grids, "all"}
    assert [r.log_loss for r in report.rows] == sorted(r.log_loss for r in report.rows)
    assert report.best.accuracy >= 0.8 and report.labelled == 24 and report.folds == 5
    dims = {r.layer: r.dim for r in report.rows}
    assert dims == {card.embedding.node: 1280, **card.features, "all": 1280 + sum(card.features.values()),
                    **{f"{name}@2": 4 * dim for name, dim in card.features.items()}}
    stored = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert stored["best"]["layer"] == report.best.layer and len(stored["rows"]) == len(report.rows)
    assert (tmp_path / "probe" / "probe.png").read_bytes()[:4] == b"\x89PNG"
    assert report.passes["efficientnet_lite0"]["engine"] == "onnxruntime"
    again = zoo.probe(["efficientnet_lite0"], data, log=lambda _: None)  # the features come from the cache
    assert again.passes["efficientnet_lite0"]["cache"] == "hit"
    assert [(r.layer, r.accuracy) for r in again.rows] == [(r.layer, r.accuracy) for r in report.rows]


@full_only
@pytest.mark.slow
def test_an_interrupted_probe_starts_again_from_what_was_stored(tmp_path, zoo_env):
    data = write_digit_folder(tmp_path / "digits", dark_ink=True)
    first = zoo.probe(["efficientnet_lite0"], data, log=lambda _: None)
    stored = sorted((zoo_env / "features" / "efficientnet_lite0").glob("*.npy"))
    assert len(stored) == 9  # the embedding, 4 features and the 4 on a grid, each its own file
    stored[0].unlink()  # as if killed before the last one landed
    again = zoo.probe(["efficientnet_lite0"], data, log=lambda _: None)
    assert again.passes["efficientnet_lite0"]["cache"] == "computed"
    assert [(r.layer, round(r.accuracy, 6)) for r in again.rows] == [(r.layer, round(r.accuracy, 6)) for r in first.rows]


@pytest.mark.slow
def test_held_out_scores_and_a_test_set(tmp_path):
    data = write_digit_folder(tmp_path / "digits", dark_ink=True)
    report = zoo.probe(["efficientnet_lite0"], data, per_class=4, score_held_out=True, log=lambda _: None)
    assert report.labelled == 12 and report.test == 12
    assert all(r.test_accuracy is not None and 0 <= r.test_accuracy <= 1 for r in report.rows)
    quiet = zoo.probe(["efficientnet_lite0"], data, per_class=4, log=lambda _: None)
    assert quiet.test == 0 and all(r.test_accuracy is None for r in quiet.rows)


@pytest.mark.slow
def test_wrong_modality_and_unavailable_models(tmp_path, monkeypatch):
    data = write_digit_folder(tmp_path / "digits", dark_ink=True)
    with pytest.raises(InputError, match="several modalities"):
        zoo.probe(["efficientnet_lite0", "all-minilm-l6-v2-offline"], data, log=lambda _: None)
    with pytest.raises(InputError):
        zoo.probe(["all-minilm-l6-v2-offline"], "digits", log=lambda _: None)  # text model, image data
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    # 2 labelled per class: 6 folds instead of 15 (every cut's probe is test_probe_ranks_every_cut_point's ground)
    report = zoo.probe(["efficientnet_lite0", "resnet18"], data, per_class=2, log=lambda _: None)
    assert [m for m, _ in report.skipped] == ["resnet18"] and "offline" in report.skipped[0][1].lower()
    assert {r.model for r in report.rows} == {"efficientnet_lite0"}


@full_only
@pytest.mark.slow
def test_cli_probe(tmp_path):
    data = write_digit_folder(tmp_path / "digits", dark_ink=True)
    result = run_zoo("probe", "efficientnet_lite0", "--data", str(data), "--out", str(tmp_path / "p"), "--json",
                     timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["best"]["model"] == "efficientnet_lite0" and out["files"][0].endswith("probe.json")
    human = run_zoo("probe", "efficientnet_lite0", "--data", str(data), "--out", str(tmp_path / "q"), timeout=300)
    assert human.returncode == 0 and "cv accuracy" in human.stdout and "(embedding)" in human.stdout


@pytest.mark.slow
def test_probe_of_a_text_model_on_images_is_a_clear_error():
    result = run_zoo("probe", "all-minilm-l6-v2-offline", "--data", "digits", "--quiet")
    assert result.returncode == 1 and "Traceback" not in result.stderr and "modality" in result.stderr


@pytest.mark.slow
def test_an_imbalanced_set_is_probed_with_balanced_class_weights(tmp_path):
    from conftest import write_digit_folder

    data = write_digit_folder(tmp_path / "digits", dark_ink=True)
    for extra in sorted((data / "digit-7").iterdir())[2:]:
        extra.unlink()  # 8, 8 and 2 images
    lines: list[str] = []
    report = zoo.probe(["efficientnet_lite0"], str(data), log=lines.append)
    assert report.class_weight == "balanced" and any("balanced class weights" in line for line in lines)
    plain = zoo.probe(["efficientnet_lite0"], str(data), class_weight="none", log=lambda _: None)
    assert plain.class_weight is None


def test_two_examples_per_class_are_cross_validated_with_a_fixed_strength():
    from zoo.fitting.linear import UNTUNED_C

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 2)
    x = rng.normal(size=(10, 16)) + 3 * np.eye(5)[y] @ rng.normal(size=(5, 16))
    score = cross_validate(x, y)  # each outer fold trains on one example per class: no inner folds
    assert score.folds == 2 and score.C == UNTUNED_C and 0 <= score.accuracy <= 1
