"""Instance segmentation by transfer (plugin zoo_dense, ``--task instance``: Mask R-CNN on the
card's feature maps): COCO polygons and RLE read as each object's mask, an object without one
is one line, the task never inferred, the runtime's mask pasting equal to torchvision's, and
(slow) a real run: mask and box metrics, export checked against PyTorch's objects, `zoo predict`
without torch (object masks, overlays, boxes with their pixels), zoo serve.

The data are test_segmentation's generated pictures (squares as polygons, discs as RLE); the
network is test_detection's efficientnet_lite0 card read at 96 pixels.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import NO_TORCH, assert_same_final_weights, assert_weights_within, full_only, killed_and_resumed, run_zoo
from test_detection import MODEL, small_card
from test_segmentation import SIDE, pictures, write_coco

import zoo
from zoo.data import open_dataset


def test_polygons_and_rle_are_each_objects_mask_and_the_task_is_asked_for_by_name(tmp_path):
    from zoo.runs.options import FinetuneOptions
    from zoo.tasks import get_task
    from zoo.tasks.choosing import choose_task
    from zoo_dense.masks import painted

    made = pictures(3, seed=1)
    path = write_coco(tmp_path / "coco", "train", made)
    dataset = open_dataset(path, modality="image")
    task = get_task("instance")
    assert task.name == "instance-segmentation" and get_task("instances") is task
    options = FinetuneOptions.from_flat(MODEL, str(path), task="instance")
    targets = task.targets(dataset, options)
    assert targets.names == ("disc", "square")
    for value, (_, _, shapes) in zip(targets.values, made):
        decoded = [painted(s, SIDE, SIDE) for s in value["segmentations"]]
        truth = {(cls, int(inside.sum())) for cls, inside in shapes}
        assert {(targets.names[label], int(mask.sum())) for label, mask in zip(value["labels"], decoded)} == truth
    chosen, _ = choose_task("auto", dataset, FinetuneOptions.from_flat(MODEL, str(path)))
    assert chosen.name == "detection"  # boxes with polygons: detection unless asked


def test_an_object_without_a_polygon_is_one_line(tmp_path):
    from zoo.tasks import get_task

    path = write_coco(tmp_path / "coco", "train", pictures(3, seed=2))
    data = json.loads(path.read_text())
    data["annotations"][0]["segmentation"] = []
    path.write_text(json.dumps(data))
    example = open_dataset(path, modality="image").examples[0]
    assert "an empty polygon" in get_task("instance").problem(example, None)


def test_the_runtimes_pasted_masks_are_torchvisions():
    import torch
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    from zoo.postprocess import instance_mask, paste_masks

    rng = np.random.default_rng(0)
    probabilities = rng.random((6, 28, 28)).astype(np.float32)
    boxes = np.asarray([[10, 12, 60, 90], [0, 0, 20, 20], [100, 50, 160, 120], [30.5, 40.2, 45.7, 41.9],
                        [150, 110, 200, 140], [-8, -3, 30, 25]], np.float32)
    ours = paste_masks(probabilities, boxes, (180, 130))
    theirs = paste_masks_in_image(torch.from_numpy(probabilities)[:, None], torch.from_numpy(boxes), (130, 180))
    assert np.array_equal(ours, theirs[:, 0].numpy() > 0.5)
    numbers = instance_mask(ours, np.asarray([0.9, 0.8, 0.7, 0.6, 0.5, 0.95]))
    assert set(np.unique(numbers)) <= set(range(7)) and (numbers[ours[5]] == 6).all()  # the best covers the rest


# --------------------------------------------------------------------------- a real run (slow)


def _finetune(folder: Path, data: dict[str, Path], *more: str) -> list[str]:
    """`zoo finetune --task instance` of the small card: a frozen phase, one unfrozen stage."""
    return ["--registry", str(small_card(folder)), "finetune", MODEL, "--data", str(data["train"]), "--test",
            str(data["test"]), "--task", "instance", "--unfreeze", "1", "--unfreeze-epochs", "1", "--batch-size", "8",
            "--seed", "0", "--quiet", *more]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """One run by the CLI (a frozen phase, one unfrozen stage), exported: the slow tests share it."""
    folder = tmp_path_factory.mktemp("instances")
    data = {"train": write_coco(folder / "data", "train", pictures(16, seed=20)),
            "test": write_coco(folder / "data", "test", pictures(4, seed=21))}
    env = {"ZOO_HOME": str(folder / "home")}
    done = run_zoo(*_finetune(folder, data), "--out", str(folder / "run"), env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    exported = run_zoo("export", str(folder / "run"), env=env, timeout=600)
    assert exported.returncode == 0, exported.stderr
    return {"run": folder / "run", "model": folder / "run" / "model.onnx", "env": env, "folder": folder,
            "test": data["test"]}


@pytest.mark.slow
def test_a_run_scores_masks_and_boxes_and_draws_its_report(trained):
    run = zoo.open_run(trained["run"])
    test = run.metrics["test"]
    assert {"map", "map_50", "box_map", "box_map_50", "per_class", "n", "objects"} <= set(test)
    assert test["n"] == 4 and 0 <= test["map"] <= 1 and 0 <= test["box_map"] <= 1
    assert run.task_name == "instance-segmentation" and run.choices["head"]["detector"] == "maskrcnn"
    assert [r["phase"] for r in run.history][-1] == 1
    assert "mask mAP" in run.metrics["baseline_line"]
    for name in ("pr_test.png", "boxes_test.png", "objects_test.png", "objects_val.png", "index.html"):
        assert (trained["run"] / "report" / name).is_file(), name
    page = (trained["run"] / "report" / "index.html").read_text()
    assert "COCO mask metrics" in page and 'id="objects"' in page and "true and predicted objects" in page


@pytest.mark.slow
def test_predict_without_torch_gives_pytorchs_objects_their_masks_and_overlays(trained):
    """The export was checked against PyTorch's objects; `zoo predict --json --out` in a process
    where torch cannot be imported writes one object-number PNG per picture whose objects are the
    JSON's boxes, each with its pixels."""
    from PIL import Image

    info = zoo.open_model(trained["model"]).info
    assert info.kind == "instances" and info.validation["answers"]["worst_agreement"] >= 0.999
    images = sorted((trained["test"].parent / "images").glob("test-*.png"))
    out = trained["folder"] / "objects"
    script = NO_TORCH + f"""
from zoo.cli import main
try:
    main(["predict", {str(trained['model'])!r}, *{[str(p) for p in images]!r}, "--json", "--min-score", "0",
          "--out", {str(out)!r}])
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
    for picture, answer in zip(images, predicted):
        numbers = np.asarray(Image.open(out / picture.name))
        assert numbers.shape == (SIDE, SIDE)
        for k, box in enumerate(answer["boxes"], start=1):
            assert box["pixels"] == int((numbers == k).sum())
        assert numbers.max(initial=0) <= len(answer["boxes"])
    over = run_zoo("predict", str(trained["model"]), str(images[0]), "--out", str(trained["folder"] / "over"),
                   "--overlay", env=trained["env"])
    assert over.returncode == 0, over.stderr
    assert Image.open(trained["folder"] / "over" / images[0].name).mode == "RGB"


@full_only
@pytest.mark.slow
def test_int8_is_calibrated_one_picture_at_a_time_and_judged_by_mask_map(trained, tmp_path):
    done = run_zoo("export", str(trained["run"]), "--quantize", "int8", "--max-drop", "100", "--out",
                   str(tmp_path / "int8.onnx"), env=trained["env"], timeout=600)
    assert done.returncode == 0, done.stderr
    evaluation = zoo.open_model(tmp_path / "int8.onnx").info.quantization["evaluation"]
    assert evaluation["metric"] == "mask mAP" and 0 <= evaluation["int8_metric"] <= 1


@pytest.mark.slow
def test_serve_answers_what_predict_prints(trained):
    """zoo serve batches pictures; the graph takes one at a time, so the runtime runs them one by one."""
    from starlette.testclient import TestClient

    from zoo.runtime import predict
    from zoo.serve import ServeSettings, prepare

    images = sorted((trained["test"].parent / "images").glob("test-*.png"))[:2]
    expected = [p["boxes"] for p in predict(trained["model"], [str(p) for p in images]).to_dict()["predictions"]]
    running = prepare([f"objects={trained['model']}"], ServeSettings(port=0))
    try:
        with TestClient(running.app) as client:
            answers = [client.post("/v1/models/objects:predict", content=p.read_bytes(),
                                   headers={"content-type": "image/png"}) for p in images]
    finally:
        running.sock.close()
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    assert [a.json()["predictions"][0]["boxes"] for a in answers] == expected


@pytest.mark.slow
def test_a_mask_rcnn_card_through_zoo_segments_as_torchvisions_own_model():
    """zoo's adapter builds maskrcnn_resnet50_fpn as torchvision's builder does for its weights
    (random weights offline, loaded into both): the same objects and masks."""
    from unittest import mock

    import torch
    import torchvision

    from zoo.plugins import get_host

    card = zoo.get_card("maskrcnn_resnet50_fpn")
    assert card.task == "instance-segmentation" and card.metrics["coco-val2017/mask_map"] == 34.6
    weights = torchvision.models.get_weight(card.source.get("weights"))
    ours = get_host().adapters()["torchvision"].value.build(card, None)
    torch.manual_seed(0)
    state = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in ours.state_dict().items()}
    ours.load_state_dict(state)
    with mock.patch.object(type(weights), "get_state_dict", lambda *a, **k: state):
        theirs = torchvision.models.get_model("maskrcnn_resnet50_fpn", weights=weights).eval()
    ours.eval()
    for model in (ours, theirs):  # a smaller picture side: the same network, a quicker check
        model.transform.min_size, model.transform.max_size = (320,), 400
    pictures = [torch.rand(3, 240, 300, generator=torch.Generator().manual_seed(1))]
    with torch.no_grad():
        found, reference = ours(pictures), theirs(pictures)
    assert len(found[0]["boxes"]) == len(reference[0]["boxes"]) > 0
    for key in ("boxes", "scores", "labels", "masks"):
        torch.testing.assert_close(found[0][key], reference[0][key])


@full_only
@pytest.mark.slow
def test_a_killed_instance_run_resumes_to_the_same_weights_and_two_processes_train_as_one(tmp_path):
    """The one loop's exact resume, and DDP, with Mask R-CNN's losses (each process's means over
    its own sampled proposals: two processes are one within a few percent, as for FCOS)."""
    data = {"train": write_coco(tmp_path / "data", "train", pictures(16, seed=30)),
            "test": write_coco(tmp_path / "data", "test", pictures(4, seed=31))}
    args = [*_finetune(tmp_path, data, "--workers", "0"), "--unfreeze-epochs", "2"]
    straight, killed = killed_and_resumed(args, tmp_path, "checkpoints/epoch-0003.pt")
    assert_same_final_weights(straight, killed)
    two = run_zoo(*args, "--out", str(tmp_path / "two"), "--nproc", "2", timeout=900)
    assert two.returncode == 0, two.stderr
    assert_weights_within(straight, tmp_path / "two", 0.05)
