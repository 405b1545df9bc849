"""Object detection by transfer (plugin zoo_dense): the COCO, YOLO and VOC formats, each bad input one
line, the task claimed and named, strides on cards, the runtime's post-processing against
torchvision's, and (slow) a real run: report, export checked against PyTorch's kept detections,
`zoo predict` without torch, `zoo serve`, kill -9 and resume, two processes against one.

The data are generated pictures (squares and discs on noise, boxes exact) in the formats' own
layouts; the network is efficientnet_lite0 read at 96 pixels (a user card beside the built-in
one), so a run takes seconds a phase.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import (NO_TORCH, REPO, assert_same_final_weights, assert_weights_within, full_only, killed_and_resumed,
                      run_zoo)

import zoo
from zoo.data import make_splits, open_dataset
from zoo.errors import InputError, RegistryError

SIDE = 96
CLASSES = ("disc", "square")
MODEL = "lite0-96"


# --------------------------------------------------------------------------- data


def shapes(count: int, seed: int) -> list[tuple[np.ndarray, list[tuple[str, list[float]]]]]:
    """Pictures of 1-2 shapes on noise, each with its objects (class, [x0, y0, x1, y1])."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        pixels = rng.integers(0, 90, size=(SIDE, SIDE, 3)).astype(np.uint8)
        objects = []
        for _ in range(int(rng.integers(1, 3))):
            size = int(rng.integers(22, 40))
            x, y = int(rng.integers(0, SIDE - size)), int(rng.integers(0, SIDE - size))
            name = CLASSES[int(rng.integers(2))]
            if name == "square":
                pixels[y:y + size, x:x + size] = (230, 40, 40)
            else:
                yy, xx = np.mgrid[:SIDE, :SIDE]
                pixels[(yy - y - size / 2 + .5) ** 2 + (xx - x - size / 2 + .5) ** 2 <= (size / 2) ** 2] = (40, 90, 240)
            objects.append((name, [float(x), float(y), float(x + size), float(y + size)]))
        out.append((pixels, objects))
    return out


def write_png(path: Path, pixels: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def write_coco(folder: Path, name: str, pictures, *, images_folder: bool = True) -> Path:
    """COCO JSON beside an images/ folder (file_name relative to it)."""
    images, annotations = [], []
    for number, (pixels, objects) in enumerate(pictures):
        file = f"{name}-{number:03d}.png"
        write_png(folder / ("images" if images_folder else ".") / file, pixels)
        images.append({"id": number + 1, "file_name": file, "width": SIDE, "height": SIDE})
        for cls, (x0, y0, x1, y1) in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": number + 1, "category_id": CLASSES.index(cls) + 1,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]}))
    return path


def write_yolo(folder: Path, pictures) -> Path:
    for number, (pixels, objects) in enumerate(pictures):
        write_png(folder / "images" / "train" / f"{number:03d}.png", pixels)
        lines = [f"{CLASSES.index(c)} {(x0 + x1) / 2 / SIDE} {(y0 + y1) / 2 / SIDE} {(x1 - x0) / SIDE} {(y1 - y0) / SIDE}"
                 for c, (x0, y0, x1, y1) in objects]
        label = folder / "labels" / "train" / f"{number:03d}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("\n".join(lines) + "\n")
    yaml = folder / "data.yaml"
    yaml.write_text("path: .\ntrain: images/train\nnames:\n  0: disc\n  1: square\n")
    return yaml


def write_voc(folder: Path, pictures) -> Path:
    for number, (pixels, objects) in enumerate(pictures):
        write_png(folder / "JPEGImages" / f"{number:03d}.png", pixels)
        boxes = "".join(f"<object><name>{c}</name><difficult>0</difficult><bndbox><xmin>{x0:g}</xmin><ymin>{y0:g}</ymin>"
                        f"<xmax>{x1:g}</xmax><ymax>{y1:g}</ymax></bndbox></object>" for c, (x0, y0, x1, y1) in objects)
        xml = folder / "Annotations" / f"{number:03d}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(f"<annotation><filename>{number:03d}.png</filename><size><width>{SIDE}</width>"
                       f"<height>{SIDE}</height><depth>3</depth></size>{boxes}</annotation>")
    return folder


def small_card(folder: Path) -> Path:
    """The built-in efficientnet_lite0 card as MODEL, read at 96 pixels: the same weights, fast."""
    text = (REPO / "registry.toml").read_text(encoding="utf-8")
    block = re.search(r"\[models\.efficientnet_lite0\]\n(.*?)(?=\n\[models\.)", text, re.S).group(1)
    block = re.sub(r"input = \{ size = \[224, 224\], resize = 256,", "input = { size = [96, 96], resize = 96,", block)
    path = folder / "small.toml"
    path.write_text(f"[models.{MODEL}]\n{block}\n")
    return path


def toml(value) -> str:
    """A value as TOML writes it (inline tables): enough for a card's table."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return json.dumps(value)


def objects_of(dataset) -> list[list[tuple[str, list[float]]]]:
    return [[(o["class"], [round(v, 2) for v in o["box"]]) for o in e.fields["objects"]] for e in dataset.examples]


# --------------------------------------------------------------------------- formats


def test_coco_yolo_and_voc_read_the_same_boxes(tmp_path):
    pictures = shapes(6, seed=1)
    expected = [[(c, [round(v, 2) for v in box]) for c, box in objects] for _, objects in pictures]
    coco = open_dataset(write_coco(tmp_path / "coco", "train", pictures), modality="image")
    yolo = open_dataset(write_yolo(tmp_path / "yolo", pictures), modality="image")
    voc = open_dataset(write_voc(tmp_path / "voc", pictures), modality="image")
    for dataset in (coco, yolo, voc):
        assert not dataset.problems and len(dataset) == 6
        assert all(e.fields["size"] == (SIDE, SIDE) and e.fields["categories"] == CLASSES for e in dataset.examples)
        got = objects_of(dataset)
        assert [[c for c, _ in o] for o in got] == [[c for c, _ in o] for o in expected]
        np.testing.assert_allclose([b for o in got for _, b in o], [b for o in expected for _, b in o], atol=0.01)
    # file_name beside the JSON works too, and YOLO's class names come from data.yaml
    beside = open_dataset(write_coco(tmp_path / "flat", "train", pictures, images_folder=False),
                                   modality="image")
    assert objects_of(beside) == objects_of(coco)


def _coco_fault(tmp_path: Path, fault: str) -> Path:
    path = write_coco(tmp_path, "train", shapes(4, seed=2))
    data = json.loads(path.read_text())
    first = data["annotations"][0]
    if fault == "outside":
        first["bbox"] = [80, 80, 40, 10]
    elif fault == "zero-area":
        first["bbox"][2] = 0
    elif fault == "unknown-class":
        first["category_id"] = 9
    elif fault == "no-image":
        first["image_id"] = 77
    elif fault == "missing-file":
        (tmp_path / "images" / data["images"][1]["file_name"]).unlink()
    elif fault == "unreadable-file":
        (tmp_path / "images" / data["images"][1]["file_name"]).write_bytes(b"not a png")
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("fault, message", [
    ("outside", r"train\.json: annotations\[0\] \(id 1\): box \[80, 80, 120, 90\] lies outside the image \(96x96\)"),
    ("zero-area", r"train\.json: annotations\[0\] \(id 1\): box .* has zero area"),
    ("unknown-class", r"train\.json: annotations\[0\] \(id 1\): category_id 9 is not among the categories \(1, 2\)"),
    ("no-image", r"train\.json: annotations\[0\] \(id 1\): image_id 77 is not among the images"),
    ("missing-file", r"train\.json: images\[1\] 'train-001\.png': image file not found"),
    ("unreadable-file", r"train\.json: images\[1\] 'train-001\.png': not an image"),
])
@pytest.mark.slow
def test_each_bad_coco_input_is_one_line_naming_file_and_row(tmp_path, fault, message):
    path = _coco_fault(tmp_path, fault)
    with pytest.raises(InputError) as error:
        make_splits(path, modality="image", by_class=False)
    lines = [line.strip() for line in str(error.value).splitlines()]
    assert lines[0] == "1 problem in the data:" and re.search(message, lines[1]), str(error.value)
    skipped = make_splits(path, modality="image", by_class=False, skip_bad=True)
    assert len(skipped.skipped) == 1 and len(skipped.train) + len(skipped.val) == 4 - (fault != "no-image")


@pytest.mark.parametrize("fault, message", [
    ("class", r"labels/train/000\.txt:1: class 5 is not among the 2 names of data\.yaml \(0\.\.1\)"),
    ("outside", r"labels/train/000\.txt:1: box .* lies outside the image \(96x96\)"),
    ("malformed", r"labels/train/000\.txt:1: expected 'class cx cy w h' \(numbers\), got 'zero 0\.5"),
    ("orphan", r"labels/train/099\.txt: a label file without an image"),
])
def test_each_bad_yolo_input_is_one_line(tmp_path, fault, message):
    yaml = write_yolo(tmp_path, shapes(3, seed=3))
    label = tmp_path / "labels" / "train" / "000.txt"
    if fault == "class":
        label.write_text("5 0.5 0.5 0.2 0.2\n")
    elif fault == "outside":
        label.write_text("0 0.95 0.5 0.3 0.2\n")
    elif fault == "malformed":
        label.write_text("zero 0.5 0.5 0.2 0.2\n")
    else:
        (tmp_path / "labels" / "train" / "099.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(InputError, match=message):
        make_splits(yaml, modality="image", by_class=False)


@pytest.mark.parametrize("fault, message", [
    ("outside", r"Annotations/000\.xml: object 1 \((disc|square)\): box .* lies outside the image"),
    ("zero-area", r"Annotations/000\.xml: object 1 \((disc|square)\): box .* has zero area"),
    ("broken-xml", r"Annotations/000\.xml: unreadable XML"),
    ("missing-file", r"Annotations/001\.xml: image file not found: \S*JPEGImages/001\.png"),
])
@pytest.mark.slow
def test_each_bad_voc_input_is_one_line(tmp_path, fault, message):
    root = write_voc(tmp_path, shapes(3, seed=4))
    xml = root / "Annotations" / "000.xml"
    text = xml.read_text()
    if fault == "outside":
        xml.write_text(re.sub(r"<xmax>[\d.]+</xmax>", "<xmax>140</xmax>", text, count=1))
    elif fault == "zero-area":
        xmin = re.search(r"<xmin>([\d.]+)</xmin>", text).group(1)
        xml.write_text(re.sub(r"<xmax>[\d.]+</xmax>", f"<xmax>{xmin}</xmax>", text, count=1))
    elif fault == "broken-xml":
        xml.write_text(text[:40])
    else:
        (root / "JPEGImages" / "001.png").unlink()
    with pytest.raises(InputError, match=message):
        make_splits(root, modality="image", by_class=False)


@pytest.mark.slow
def test_the_cli_says_a_bad_box_in_one_line_and_skip_bad_is_the_fix(tmp_path):
    path = _coco_fault(tmp_path, "outside")
    done = run_zoo("--registry", str(small_card(tmp_path)), "finetune", MODEL, "--data", str(path),
                   "--out", str(tmp_path / "run"), timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "lies outside the image (96x96)" in done.stderr and "--skip-bad" in done.stderr
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- the task


def test_boxes_are_claimed_by_detection_and_detect_names_it(tmp_path):
    from zoo.runs.options import FinetuneOptions
    from zoo.tasks import choose_task, get_task

    path = write_coco(tmp_path, "train", shapes(3, seed=5))
    raw = open_dataset(path, modality="image")
    options = FinetuneOptions.from_flat(MODEL, str(path))
    task, why = choose_task("auto", raw, options)
    assert task.name == "detection" and "plugin" in why
    assert get_task("detect") is task
    plugin = {p.name: p for p in zoo.list_plugins()}["zoo_dense"]
    assert plugin.status == "ok" and plugin.origin == "built-in"  # shipped in zoo's wheel, found by its entry point
    assert {"register_tasks", "register_dataset_formats"} <= set(plugin.hooks)
    with pytest.raises(zoo.ZooError, match="--per-class does not apply"):
        task.check(FinetuneOptions.from_flat(MODEL, str(path), per_class=3))


def test_features_carry_their_strides_and_old_cards_stay_valid(tmp_path):
    from zoo.card import Origin
    from zoo.registries import parse_models

    base = {"description": "d", "modality": "image", "task": "image-classification", "license": "MIT", "params": 10,
            "source": {"type": "url", "url": "http://127.0.0.1:1/x.pt"}, "adapter": {"type": "torchvision",
                                                                                   "arch": "resnet18"},
            "input": {"size": [32, 32], "mean": [0.5] * 3, "std": [0.5] * 3}, "embedding": {"node": "flatten", "dim": 8}, "stages": ["conv1", "layer1"]}
    origin = Origin("user", "test.toml")
    old, new = parse_models({"old": {**base, "features": {"layer1": 64}},
                             "new": {**base, "features": {"layer1": {"channels": 64, "stride": 4}, "layer2": 128}}},
                            origin, "test.toml")
    assert dict(old.features) == {"layer1": 64} and not old.strides
    assert dict(new.features) == {"layer1": 64, "layer2": 128} and dict(new.strides) == {"layer1": 4}
    assert new.to_dict()["features"] == {"layer1": {"channels": 64, "stride": 4}, "layer2": {"channels": 128}}
    with pytest.raises(RegistryError, match=r"model 'bad', key 'features\.layer1\.stride': must be a positive"):
        parse_models({"bad": {**base, "features": {"layer1": {"channels": 64, "stride": 0}}}}, origin, "test.toml")
    with pytest.raises(RegistryError, match=r"key 'features\.layer1\.strides'.*Did you mean 'stride'"):
        parse_models({"bad": {**base, "features": {"layer1": {"channels": 64, "strides": 4}}}}, origin, "test.toml")
    lite = zoo.get_card("efficientnet_lite0")
    assert dict(lite.strides) == {"blocks.1": 4, "blocks.2": 8, "blocks.4": 16, "blocks.6": 32}


@pytest.mark.slow
def test_the_runtime_keeps_the_boxes_torchvision_keeps(tmp_path):
    """zoo.postprocess on the exported graph's rows (computed here in PyTorch) against FCOS's own
    post-processing, on a detector with random head weights whose scores cross the threshold."""
    from dataclasses import replace

    import torch

    from zoo.postprocess import kept_detections
    from zoo.pulling import resolve_card
    from zoo.tasks import Targets, get_task

    task = get_task("detection")
    card = resolve_card(MODEL, [small_card(tmp_path)])
    card = replace(card, input=task.input_spec(card))
    torch.manual_seed(0)
    network = task.network(zoo.load(card, features=task.feature_maps(card), pretrained=False),
                           Targets(CLASSES, []), None).eval()
    with torch.no_grad():
        # a new FCOS head scores every point near 0.01 (its prior): raise them around the threshold
        network.head["detector"].classification_head.cls_logits.bias.fill_(-2.0)
        graph = task.graph(network, {"input": {"size": [SIDE, SIDE]}})
        pixels = torch.randn(3, 3, SIDE, SIDE)
        reference = network(pixels)
        rows = graph(pixels).numpy()
    settings = network.record
    compared = 0
    for answer, raw in zip(reference, rows):
        ours = kept_detections(raw, graph.levels, settings, (SIDE, SIDE), (SIDE * 2, SIDE))  # a 2:1 picture
        assert len(ours["scores"]) == len(answer["scores"]) > 0
        np.testing.assert_array_equal(ours["labels"], answer["labels"].numpy())
        np.testing.assert_allclose(ours["scores"], answer["scores"].numpy(), rtol=1e-5)
        np.testing.assert_allclose(ours["boxes"], answer["boxes"].numpy() * [2, 1, 2, 1], atol=1e-3)
        compared += len(ours["scores"])
    assert compared > 10


@pytest.mark.slow
def test_torchvisions_detection_weights_have_cards_that_cut_inside_their_backbone():
    import torch

    names = {c.name: c for c in zoo.list_models(task="object-detection")}
    assert set(names) == {"fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
                          "fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn",
                          "retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large"}
    card = names["fasterrcnn_mobilenet_v3_large_320_fpn"]
    assert card.metric("box_map") == 22.8 and card.gflops == 0.719 and card.head == "roi_heads.box_predictor"
    assert dict(card.strides) == {"backbone.body.3": 4, "backbone.body.6": 8, "backbone.body.12": 16,
                                  "backbone.body.16": 32}
    backbone = zoo.load(card, pretrained=False, features=list(card.features))
    shapes = {k: tuple(v.shape) for k, v in backbone(torch.zeros(1, 3, 320, 320)).items()}
    assert shapes == {name: (1, channels, 320 // card.strides[name], 320 // card.strides[name])
                      for name, channels in card.features.items()}
    assert [name for name, _ in backbone.stages()] == list(card.stages)
    assert {c.name for c in zoo.list_models(task="instance-segmentation")} == {"maskrcnn_resnet50_fpn",
                                                                              "maskrcnn_resnet50_fpn_v2"}


@pytest.mark.slow
def test_a_detection_card_through_zoo_detects_as_torchvisions_own_model():
    """zoo's adapter builds a detection card's network as torchvision's builder does for its weights
    (random weights offline, loaded into both): the same detections; and zoo's cut inside its
    backbone gives that backbone's own maps."""
    from unittest import mock

    import torch
    import torchvision

    from zoo.plugins import get_host

    card = zoo.get_card("ssdlite320_mobilenet_v3_large")
    weights = torchvision.models.get_weight(card.source.get("weights"))
    ours = get_host().adapters()["torchvision"].value.build(card, None)
    torch.manual_seed(0)
    state = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in ours.state_dict().items()}
    ours.load_state_dict(state)
    with mock.patch.object(type(weights), "get_state_dict", lambda *a, **k: state):
        theirs = torchvision.models.get_model("ssdlite320_mobilenet_v3_large", weights=weights).eval()
    pictures = [torch.rand(3, 320, 400, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    with torch.no_grad():
        found, reference = ours(pictures), theirs(pictures)
        backbone = zoo.load(card, pretrained=False, features=list(card.features))
        backbone.body.load_state_dict({k: v for k, v in state.items() if k.startswith("backbone.features.")})
        maps = backbone(torch.stack(pictures))
        last = theirs.backbone.features(torch.stack(pictures))
    for a, b in zip(found, reference):
        assert len(a["boxes"]) == len(b["boxes"]) > 0
        for key in ("boxes", "scores", "labels"):
            torch.testing.assert_close(a[key], b[key])
    torch.testing.assert_close(maps["backbone.features.1"], last)


# --------------------------------------------------------------------------- a real run (slow)


def _finetune(tmp_path: Path, data: Path, *more: str) -> list[str]:
    """`zoo finetune` of the small card on ``data``: two epochs on the maps, two with the top stage."""
    return ["--registry", str(small_card(tmp_path)), "finetune", MODEL, "--data", str(data), "--task", "detect",
            "--unfreeze", "1", "--unfreeze-epochs", "2", "--batch-size", "8", "--seed", "0", "--quiet", *more]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("shapes")
    return {"train": write_coco(folder, "train", shapes(24, seed=10)), "test": write_coco(folder, "test", shapes(8, 11)),
            "folder": folder}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> dict[str, Path]:
    """One run, exported: the slow tests share it."""
    folder = tmp_path_factory.mktemp("run")
    from _pytest.monkeypatch import MonkeyPatch

    from conftest import isolated_zoo

    patch = MonkeyPatch()
    with isolated_zoo(patch, folder / "home"):
        run = zoo.finetune(MODEL, str(data["train"]), test=str(data["test"]), out=folder / "run",
                           registry=[str(small_card(folder))], task="detect", unfreeze=1, unfreeze_epochs=2,
                           batch_size=8, progress=False, log=lambda _: None)
        exported = zoo.export(run.dir, log=lambda _: None)
    patch.undo()
    return {"run": run.dir, "model": exported.path, "home": folder / "home"}


@pytest.mark.slow
def test_a_run_writes_coco_metrics_pictures_and_its_baseline(trained):
    run = zoo.open_run(trained["run"])
    test = run.metrics["test"]
    assert set(test) >= {"map", "map_50", "map_75", "mar_100", "per_class", "curves", "n", "objects"}
    assert test["n"] == 8 and set(test["per_class"]) <= set(CLASSES)
    assert run.task_name == "detection" and run.classes == CLASSES
    assert run.task["input"]["size"] == [SIDE, SIDE] and run.choices["head"]["detector"] == "fcos"
    assert [r["phase"] for r in run.history] == [0, 0, 1, 1]
    assert run.metrics["baseline"]["name"].startswith("the same network on the architecture with random weights")
    assert "baseline (" in run.metrics["baseline_line"] and "mAP@[.5:.95]" in run.metrics["baseline_line"]
    for name in ("pr_test.png", "boxes_test.png", "pr_val.png", "index.html"):
        assert (trained["run"] / "report" / name).is_file(), name
    lines = [json.loads(line) for line in (trained["run"] / "report" / "predictions.jsonl").read_text().splitlines()]
    assert {line["set"] for line in lines} == {"val", "test"} and all("boxes" in line for line in lines)


@pytest.mark.slow
def test_predict_equals_pytorchs_kept_detections_on_every_test_picture_without_torch(trained, data):
    """`zoo predict --json --min-score 0` in a process where torch cannot be imported, against the
    run's network in PyTorch (torchvision's post-processing) on every test picture."""
    import torch

    from zoo.preprocess import image_array
    from zoo.postprocess import picture_size

    info = zoo.open_model(trained["model"]).info
    assert info.kind == "detection" and info.validation["answers"]["pictures"] >= 8
    pictures = sorted((data["folder"] / "images").glob("test-*.png"))
    script = NO_TORCH + f"""
from zoo.cli import main
try:
    main(["predict", {str(trained['model'])!r}, *{[str(p) for p in pictures]!r}, "--json", "--min-score", "0"])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "transformers", "timm", "onnx"))
print("HEAVY", heavy, file=sys.stderr)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "ZOO_HOME": str(trained["home"])})
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr
    predicted = json.loads(done.stdout)["predictions"]
    run = zoo.open_run(trained["run"])
    network = run.load_model()
    spec = run.card().input
    compared = 0
    for picture, answer in zip(pictures, predicted):
        with torch.no_grad():
            reference = network(torch.from_numpy(image_array(picture, spec))[None])[0]
        width, height = picture_size(picture)
        scale = np.asarray([width / SIDE, height / SIDE] * 2)
        assert len(answer["boxes"]) == len(reference["scores"]), picture
        for box, (b, s, c) in zip(answer["boxes"], zip(reference["boxes"], reference["scores"], reference["labels"])):
            assert box["label"] == CLASSES[int(c)] and abs(box["score"] - float(s)) < 1e-3
            np.testing.assert_allclose(box["box"], b.numpy() * scale, atol=0.05)
            compared += 1
    assert compared > 0


@pytest.mark.slow
def test_predict_draws_the_boxes_and_serve_answers_them(trained, data, tmp_path):
    pictures = sorted((data["folder"] / "images").glob("test-00[01].png"))
    done = run_zoo("predict", str(trained["model"]), *map(str, pictures), "--min-score", "0", "--out",
                   str(tmp_path / "drawn"), env={"ZOO_HOME": str(trained["home"])})
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == [p.name for p in pictures]
    assert "box (x0 y0 x1 y1)" in done.stdout
    from zoo.runtime import predict

    expected = predict(trained["model"], [str(pictures[0])]).to_dict()["predictions"][0]["boxes"]
    from starlette.testclient import TestClient

    from zoo.serve import ServeSettings, prepare

    running = prepare([f"shapes={trained['model']}"], ServeSettings(port=0))
    try:
        with TestClient(running.app) as client:
            answer = client.post("/v1/models/shapes:predict", content=pictures[0].read_bytes(),
                                 headers={"content-type": "image/png"})
    finally:
        running.sock.close()
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["boxes"] == expected


@full_only
@pytest.mark.slow
def test_a_killed_detection_run_resumes_to_the_same_weights(data, tmp_path):
    args = _finetune(tmp_path, data["train"], "--test", str(data["test"]))
    straight, killed = killed_and_resumed(args, tmp_path, "checkpoints/epoch-0003.pt")
    assert_same_final_weights(straight, killed)
    assert json.loads((straight / "report" / "metrics.json").read_text())["test"]["map"] == pytest.approx(
        json.loads((killed / "report" / "metrics.json").read_text())["test"]["map"], abs=1e-6)


@full_only
@pytest.mark.slow
def test_two_processes_train_the_detector_one_process_trains(data, tmp_path):
    args = _finetune(tmp_path, data["train"], "--workers", "0")
    one = run_zoo(*args, "--out", str(tmp_path / "one"), timeout=900)
    assert one.returncode == 0, one.stderr
    two = run_zoo(*args, "--out", str(tmp_path / "two"), "--nproc", "2", timeout=900)
    assert two.returncode == 0, two.stderr
    # The same training, but not to the last bit: torchvision's FCOS divides its losses by the number
    # of foreground points in what each process sees (its part of the batch), as its own reference
    # training under DDP does, so the averaged gradient differs slightly from one process's; Adam
    # then turns small differences of near-zero gradients into full steps. The weights are judged
    # as one vector, and the runs by their validation mAP.
    assert_weights_within(tmp_path / "one", tmp_path / "two", 0.02)
    metrics = [json.loads((tmp_path / n / "report" / "metrics.json").read_text())["val"]["map"] for n in ("one", "two")]
    assert metrics[0] == pytest.approx(metrics[1], abs=0.03)
