"""Semantic segmentation by transfer (plugin zoo_dense, ``--task segment``): the masks folder, VOC's
SegmentationClass and COCO polygons/RLE read into the same masks, each bad input one line, the
task claimed and named, the runtime's resizing and shares, and (slow) a real run: metrics and
report, export checked against PyTorch's masks, `zoo predict` without torch (mask PNGs, overlays,
shares), `zoo serve`, int8 judged by mIoU; with ZOO_TEST_FULL=1 a killed run resumed equal to a
straight one and two processes training as one (the detector's twins cover the same loop in the
default suite's time budget only in part: see conftest.full_only).

The data are generated pictures (squares and discs on noise, masks exact) in the formats' own
layouts; the network is test_detection's efficientnet_lite0 card read at 96 pixels.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import NO_TORCH, assert_same_final_weights, assert_weights_within, full_only, killed_and_resumed, run_zoo
from test_detection import MODEL, small_card, write_png

import zoo
from zoo.data import make_splits, open_dataset
from zoo.errors import InputError

SIDE = 64
CLASSES = ("background", "disc", "square")


# --------------------------------------------------------------------------- data


def pictures(count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, list[tuple[str, list[float]]]]]:
    """Pictures of 1-2 shapes on noise: (pixels, class-index mask, [(class, polygon)])."""
    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[:SIDE, :SIDE]
    for _ in range(count):
        pixels = rng.integers(0, 90, size=(SIDE, SIDE, 3)).astype(np.uint8)
        mask = np.zeros((SIDE, SIDE), np.uint8)
        shapes = []
        for _ in range(int(rng.integers(1, 3))):
            size = int(rng.integers(14, 26))
            x, y = int(rng.integers(0, SIDE - size)), int(rng.integers(0, SIDE - size))
            name = CLASSES[1 + int(rng.integers(2))]
            if name == "square":
                inside = (xx >= x) & (xx < x + size) & (yy >= y) & (yy < y + size)
                pixels[inside] = (230, 40, 40)
            else:
                inside = (yy - y - size / 2 + .5) ** 2 + (xx - x - size / 2 + .5) ** 2 <= (size / 2) ** 2
                pixels[inside] = (40, 90, 240)
            mask[inside] = CLASSES.index(name)
            shapes.append((name, inside))
        out.append((pixels, mask, shapes))
    return out


def write_folder(folder: Path, made, *, classes: tuple[str, ...] = CLASSES) -> Path:
    for number, (pixels, mask, _) in enumerate(made):
        write_png(folder / "images" / f"{number:03d}.png", pixels)
        write_png(folder / "masks" / f"{number:03d}.png", mask)
    (folder / "classes.txt").write_text("\n".join(classes) + "\n")
    return folder


def write_voc(folder: Path, made) -> Path:
    """VOC's layout: JPEGImages (PNG here: exact pixels), paletted SegmentationClass, a train list,
    and classes.txt (VOC's own 21 otherwise)."""
    from PIL import Image

    from zoo.drawing import mask_image

    ids = []
    for number, (pixels, mask, _) in enumerate(made):
        key = f"{number:03d}"
        Image.fromarray(pixels).save(write_png(folder / "JPEGImages" / f"{key}.jpg", pixels), format="PNG")
        (folder / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        mask_image(mask).save(folder / "SegmentationClass" / f"{key}.png")
        ids.append(key)
    lists = folder / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("\n".join(ids) + "\n")
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return folder


def write_coco(folder: Path, name: str, made) -> Path:
    """COCO JSON: squares as polygons, discs as uncompressed RLE (pasted-photos' encoding)."""
    from zoo_dense.demo import rle

    images, annotations = [], []
    for number, (pixels, _, shapes) in enumerate(made):
        file = f"{name}-{number:03d}.png"
        write_png(folder / "images" / file, pixels)
        images.append({"id": number + 1, "file_name": file, "width": SIDE, "height": SIDE})
        for cls, inside in shapes:
            ys, xs = np.nonzero(inside)
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            segmentation = [[x0, y0, x1, y0, x1, y1, x0, y1]] if cls == "square" else rle(inside)
            annotations.append({"id": len(annotations) + 1, "image_id": number + 1, "category_id": CLASSES.index(cls),
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": int(inside.sum()), "iscrowd": 0,
                                "segmentation": segmentation})
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": i, "name": c} for i, c in enumerate(CLASSES) if i]}))
    return path


def masks_of(path: Path, task: str = "segment") -> tuple[tuple[str, ...], list[np.ndarray]]:
    """The classes and decoded masks a segmentation run reads from ``path``."""
    from zoo.runs.options import FinetuneOptions
    from zoo.tasks import get_task
    from zoo_dense.masks import decode

    segment = get_task(task)
    options = FinetuneOptions.from_flat(MODEL, str(path), task=task)
    targets = segment.targets(open_dataset(path, modality="image"), options)
    return targets.names, [decode(v, len(targets.names)) for v in targets.values]


# --------------------------------------------------------------------------- formats


def test_a_masks_folder_voc_and_coco_polygons_and_rle_read_the_same_masks(tmp_path):
    made = pictures(5, seed=1)
    truth = [mask for _, mask, _ in made]
    for path in (write_folder(tmp_path / "folder", made), write_voc(tmp_path / "voc", made),
                 write_voc(tmp_path / "voc2", made) / "SegmentationClass",
                 write_coco(tmp_path / "coco", "train", made)):
        names, masks = masks_of(path)
        assert names == CLASSES, path
        assert len(masks) == len(truth) and all(np.array_equal(a, b) for a, b in zip(masks, truth)), path


def test_voc_without_a_class_list_has_vocs_21_classes_and_255_is_ignore(tmp_path):
    made = pictures(2, seed=2)
    made[0][1][:3] = 255  # VOC's outlines
    folder = write_voc(tmp_path / "voc", made)
    (folder / "classes.txt").unlink()
    names, masks = masks_of(folder)
    assert names[0] == "background" and len(names) == 21 and names[15] == "person"
    assert (masks[0][:3] == 255).all()


def _bad_folder(tmp_path: Path, fault: str) -> Path:
    made = pictures(3, seed=3)
    folder = write_folder(tmp_path / "bad", made)
    mask = folder / "masks" / "001.png"
    if fault == "size":
        write_png(mask, np.zeros((SIDE // 2, SIDE), np.uint8))
    elif fault == "index":
        write_png(mask, np.full((SIDE, SIDE), 7, np.uint8))
    elif fault == "missing":
        mask.unlink()
    elif fault == "colour":
        write_png(mask, np.zeros((SIDE, SIDE, 3), np.uint8))
    elif fault == "orphan":
        write_png(folder / "masks" / "999.png", np.zeros((SIDE, SIDE), np.uint8))
    return folder


@pytest.mark.parametrize("fault, message", [
    ("size", r"masks[/\\]001\.png|mask 001\.png is 64x32, its image 64x64"),
    ("index", r"mask 001\.png holds class index 7, and the class list has 3"),
    ("missing", r"no mask .*001\.png; add it"),
    ("colour", r"mask 001\.png: mode RGB"),
    ("orphan", r"999\.png.*a mask without an image"),
])
def test_each_bad_mask_is_one_line_naming_the_file(tmp_path, fault, message):
    folder = _bad_folder(tmp_path, fault)
    with pytest.raises(InputError, match=message) as caught:
        make_splits(str(folder), modality="image", seed=0, by_class=False)
    assert str(caught.value).startswith("1 problem in the data:\n") and "Traceback" not in str(caught.value)
    splits = make_splits(str(folder), modality="image", seed=0, by_class=False, skip_bad=True, val=None)
    kept = len(splits.train) + (len(splits.val) if splits.val is not None else 0)
    assert kept == 3 - (fault != "orphan")


@pytest.mark.slow
def test_an_empty_polygon_is_one_line_and_skip_bad_leaves_its_picture_out(tmp_path):
    path = write_coco(tmp_path / "coco", "train", pictures(4, seed=4))
    data = json.loads(path.read_text())
    data["annotations"][0]["segmentation"] = [[]]
    path.write_text(json.dumps(data))
    done = run_zoo("--registry", str(small_card(tmp_path)), "finetune", MODEL, "--data", str(path), "--task",
                   "segment", "--quiet", "--out", str(tmp_path / "run"))
    assert done.returncode != 0
    assert "object 1 (" in done.stderr and "an empty polygon" in done.stderr and "--skip-bad" in done.stderr
    assert "Traceback" not in done.stderr
    from zoo.tasks import get_task

    segment = get_task("segment")
    splits = make_splits(str(path), modality="image", seed=0, by_class=False, skip_bad=True, val=None,
                         problem=lambda example: segment.problem(example, None))
    assert len(splits.train) + len(splits.val or ()) == 3 and "an empty polygon" in splits.skipped[0].reason


def test_an_edited_mask_is_other_data_to_a_resumed_run(tmp_path):
    """The targets' digest (half of the fingerprint a resumed run checks) holds each mask's bytes,
    not only its path."""
    from zoo.runs.options import FinetuneOptions
    from zoo.tasks import get_task

    folder = write_folder(tmp_path / "masks", pictures(3, seed=5))
    segment = get_task("segment")
    options = FinetuneOptions.from_flat(MODEL, str(folder), task="segment")
    before = segment.targets(open_dataset(folder, modality="image"), options).digest()
    mask = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(folder / "masks" / "000.png")).copy()
    mask[0, 0] = 2 if mask[0, 0] != 2 else 1
    write_png(folder / "masks" / "000.png", mask)
    assert segment.targets(open_dataset(folder, modality="image"), options).digest() != before


def test_masks_are_claimed_by_segmentation_and_segment_names_it(tmp_path):
    from zoo.runs.options import FinetuneOptions
    from zoo.tasks import choose_task

    folder = write_folder(tmp_path / "folder", pictures(2, seed=5))
    options = FinetuneOptions.from_flat(MODEL, str(folder))
    task, why = choose_task("auto", open_dataset(folder, modality="image"), options)
    assert task.name == "segmentation" and "plugin claims" in why
    coco = write_coco(tmp_path / "coco", "train", pictures(2, seed=5))
    assert choose_task("auto", open_dataset(coco, modality="image"), options)[0].name == "detection"
    assert choose_task("segment", open_dataset(coco, modality="image"), options)[0].name == "segmentation"
    with pytest.raises(zoo.ZooError, match="--per-class does not apply"):
        task.check(FinetuneOptions.from_flat(MODEL, str(folder), per_class=3))


# --------------------------------------------------------------------------- runtime pieces


def test_masks_scale_to_the_picture_and_shares_count_its_pixels():
    from zoo.postprocess import class_shares, mask_in_picture

    mask = np.arange(16).reshape(4, 4) % 3
    big = mask_in_picture(mask, (8, 6))
    rows, columns = [0, 1, 1, 2, 3, 3], [0, 0, 1, 1, 2, 2, 3, 3]  # the network pixel each centre falls in
    assert np.array_equal(big, mask[np.ix_(rows, columns)])
    assert np.array_equal(mask_in_picture(big, (4, 4)), mask_in_picture(mask, (4, 4)))
    np.testing.assert_allclose(class_shares(mask, 3), np.bincount(mask.reshape(-1), minlength=3) / 16)


def test_the_pixel_scores_are_iou_and_accuracy():
    from zoo_dense.pixels import confusion, scores

    truth = np.array([[0, 0, 1, 1], [0, 255, 2, 2]], np.uint8)
    predicted = np.array([[0, 1, 1, 1], [0, 2, 2, 0]], np.uint8)
    matrix = confusion(truth, predicted, 3)
    assert matrix.sum() == 7 and matrix[0, 0] == 2
    measured = scores(matrix, CLASSES)
    assert measured["pixel_accuracy"] == pytest.approx(5 / 7)
    assert measured["iou"] == pytest.approx({"background": 2 / 4, "disc": 2 / 3, "square": 1 / 2})
    assert measured["miou"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)


# --------------------------------------------------------------------------- a real run (slow)


def _finetune(tmp_path: Path, data: dict[str, Path], *more: str) -> list[str]:
    """`zoo finetune --task segment` of the small card: two epochs on the maps, two with the top stage."""
    return ["--registry", str(small_card(tmp_path)), "finetune", MODEL, "--data", str(data["train"]), "--test",
            str(data["test"]), "--task", "segment", "--unfreeze", "1", "--unfreeze-epochs", "2", "--batch-size", "8",
            "--seed", "0", "--quiet", *more]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("shapes")
    return {"train": write_folder(folder / "train", pictures(12, seed=10)),
            "test": write_folder(folder / "test", pictures(4, seed=11))}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> dict[str, Path]:
    """One run by the CLI, exported: the slow tests share it."""
    folder = tmp_path_factory.mktemp("run")
    env = {"ZOO_HOME": str(folder / "home")}
    done = run_zoo(*_finetune(folder, data), "--out", str(folder / "run"), env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    exported = run_zoo("export", str(folder / "run"), env=env, timeout=600)
    assert exported.returncode == 0, exported.stderr
    return {"run": folder / "run", "model": folder / "run" / "model.onnx", "home": folder / "home", "env": env,
            "folder": folder}


@pytest.mark.slow
def test_a_run_writes_pixel_metrics_pictures_and_its_baseline(trained):
    run = zoo.open_run(trained["run"])
    test = run.metrics["test"]
    assert set(test) >= {"miou", "iou", "pixel_accuracy", "confusion", "n", "pixels"}
    assert test["n"] == 4 and set(test["iou"]) == set(CLASSES) and 0 <= test["miou"] <= 1
    assert np.asarray(test["confusion"]).shape == (3, 3) and np.asarray(test["confusion"]).sum() == test["pixels"]
    assert run.task_name == "segmentation" and run.classes == CLASSES and run.choices["head"]["segmenter"] == "fpn"
    assert [r["phase"] for r in run.history] == [0, 0, 1, 1]
    assert "mIoU" in run.metrics["baseline_line"]
    for name in ("masks_test.png", "confusion_test.png", "masks_val.png", "index.html"):
        assert (trained["run"] / "report" / name).is_file(), name
    page = (trained["run"] / "report" / "index.html").read_text()
    assert 'id="pixels"' in page and "pixel confusion matrix" in page
    lines = [json.loads(line) for line in (trained["run"] / "report" / "predictions.jsonl").read_text().splitlines()]
    assert {line["set"] for line in lines} == {"val", "test"} and all("miou" in line for line in lines)


@pytest.mark.slow
def test_predict_without_torch_agrees_with_pytorch_on_every_test_picture(trained, data):
    """`zoo predict --out --json` in a process where torch cannot be imported: one mask PNG per
    picture, equal to the run's network in PyTorch (scaled to the picture) on >= 99.9% of pixels."""
    import torch
    from PIL import Image

    from zoo.postprocess import mask_in_picture
    from zoo.preprocess import image_array

    info = zoo.open_model(trained["model"]).info
    assert info.kind == "segmentation" and info.validation["answers"]["worst_agreement"] >= 0.999
    images = sorted((data["test"] / "images").glob("*.png"))
    out = trained["folder"] / "masks"
    script = NO_TORCH + f"""
from zoo.cli import main
try:
    main(["predict", {str(trained['model'])!r}, *{[str(p) for p in images]!r}, "--json", "--out", {str(out)!r}])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "transformers", "timm", "onnx"))
print("HEAVY", heavy, file=sys.stderr)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, **trained["env"]})
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr
    predicted = json.loads(done.stdout)["predictions"]
    network = zoo.open_run(trained["run"]).load_model()
    spec = zoo.open_run(trained["run"]).card().input
    for picture, answer in zip(images, predicted):
        mask = np.asarray(Image.open(out / picture.name))
        with torch.no_grad():
            reference = network(torch.from_numpy(image_array(picture, spec))[None])[0]["mask"].numpy()
        assert mask.shape == (SIDE, SIDE)
        assert (mask == mask_in_picture(reference, (SIDE, SIDE))).mean() >= 0.999, picture
        shares = np.bincount(mask.reshape(-1), minlength=3) / mask.size
        assert answer["shares"] == pytest.approx(dict(zip(CLASSES, shares)), abs=1e-6)


@pytest.mark.slow
def test_predict_overlays_and_serve_answers_as_predict_json(trained, data, tmp_path):
    pictures = sorted((data["test"] / "images").glob("00[01].png"))
    done = run_zoo("predict", str(trained["model"]), *map(str, pictures), "--out", str(tmp_path / "over"),
                   "--overlay", env=trained["env"])
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "over").iterdir()) == [p.name for p in pictures]
    from PIL import Image

    assert Image.open(tmp_path / "over" / pictures[0].name).mode == "RGB" and "pixels" in done.stdout
    from starlette.testclient import TestClient

    from zoo.runtime import predict
    from zoo.serve import ServeSettings, prepare

    expected = predict(trained["model"], [str(pictures[0])]).to_dict()["predictions"][0]["shares"]
    running = prepare([f"shapes={trained['model']}"], ServeSettings(port=0))
    try:
        with TestClient(running.app) as client:
            answer = client.post("/v1/models/shapes:predict", content=pictures[0].read_bytes(),
                                 headers={"content-type": "image/png"})
    finally:
        running.sock.close()
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["shares"] == expected



@pytest.mark.slow
def test_int8_is_judged_by_miou_on_the_held_out_pictures(trained, tmp_path):
    done = run_zoo("export", str(trained["run"]), "--quantize", "int8", "--max-drop", "100", "--out",
                   str(tmp_path / "int8.onnx"), env=trained["env"], timeout=600)
    assert done.returncode == 0, done.stderr
    info = zoo.open_model(tmp_path / "int8.onnx").info
    evaluation = info.quantization["evaluation"]
    assert evaluation["metric"] == "mIoU" and 0 <= evaluation["int8_metric"] <= 1
    assert evaluation["drop_points"] == pytest.approx(100 * (evaluation["fp32_metric"] - evaluation["int8_metric"]),
                                                      abs=0.01)
    assert "mIoU" in done.stdout


@full_only
@pytest.mark.slow
def test_a_killed_segmentation_run_resumes_to_the_same_weights(data, tmp_path):
    straight, killed = killed_and_resumed(_finetune(tmp_path, data), tmp_path, "checkpoints/epoch-0003.pt")
    assert_same_final_weights(straight, killed)
    metrics = [json.loads((f / "report" / "metrics.json").read_text())["test"]["miou"] for f in (straight, killed)]
    assert metrics[0] == pytest.approx(metrics[1], abs=1e-6)


@full_only
@pytest.mark.slow
def test_two_processes_train_the_segmenter_one_process_trains(data, tmp_path):
    """Cross-entropy is a mean over each process's pixels, summed over its pictures by zoo's loss:
    two processes' averaged gradient is one process's (to float rounding)."""
    args = _finetune(tmp_path, data, "--workers", "0")
    one = run_zoo(*args, "--out", str(tmp_path / "one"), timeout=900)
    assert one.returncode == 0, one.stderr
    two = run_zoo(*args, "--out", str(tmp_path / "two"), "--nproc", "2", timeout=900)
    assert two.returncode == 0, two.stderr
    assert_weights_within(tmp_path / "one", tmp_path / "two", 0.02)
    metrics = [json.loads((tmp_path / n / "report" / "metrics.json").read_text())["val"]["miou"] for n in ("one", "two")]
    assert metrics[0] == pytest.approx(metrics[1], abs=0.02)


# --------------------------------------------------------------------------- torchvision's segmentation cards


def test_torchvisions_segmentation_weights_have_cards_with_their_miou_and_strides():
    names = {c.name: c for c in zoo.list_models(task="semantic-segmentation")}
    assert set(names) == {"deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50", "deeplabv3_resnet101", "fcn_resnet50",
                          "fcn_resnet101", "lraspp_mobilenet_v3_large"}
    card = names["deeplabv3_resnet50"]
    assert card.metric("miou") == 66.4 and card.metric("pixel_acc") == 92.4 and card.head == "classifier"
    assert dict(card.strides) == {"backbone.layer1": 4, "backbone.layer4": 8}  # dilated: layer2-4 at stride 8
    from zoo.tasks import get_task

    assert get_task("segment").feature_maps(card) == ("backbone.layer1", "backbone.layer4")


@pytest.mark.slow
def test_a_segmentation_card_through_zoo_segments_as_torchvisions_own_model():
    """zoo's adapter builds a segmentation card's network as torchvision's builder does for its
    weights (random weights offline, loaded into both): the same scores; and zoo's cut inside its
    backbone gives that backbone's own maps."""
    from unittest import mock

    import torch
    import torchvision

    from zoo.plugins import get_host

    card = zoo.get_card("lraspp_mobilenet_v3_large")
    weights = torchvision.models.get_weight(card.source.get("weights"))
    ours = get_host().adapters()["torchvision"].value.build(card, None)
    torch.manual_seed(0)
    state = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in ours.state_dict().items()}
    ours.load_state_dict(state)
    with mock.patch.object(type(weights), "get_state_dict", lambda *a, **k: state):
        theirs = torchvision.models.get_model("lraspp_mobilenet_v3_large", weights=weights).eval()
    pictures = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        found, reference = ours(pictures)["out"], theirs(pictures)["out"]
        backbone = zoo.load(card, pretrained=False, features=list(card.features))
        backbone.body.load_state_dict({k: v for k, v in state.items() if k.startswith("backbone.")})
        maps = backbone(pictures)
        own = theirs.backbone(pictures)
    assert found.shape == (2, 21, 96, 128)
    torch.testing.assert_close(found, reference)
    torch.testing.assert_close(maps["backbone.16"], own["high"])  # LR-ASPP's stride-16 map
