"""Semantic segmentation by transfer (plugin zoo_dense, ``--task segment``): the masks folder, VOC's
SegmentationClass and COCO polygons/RLE read into the same masks, each bad input one line, the
task claimed and named, the runtime's resizing and shares, and (slow) a real run: metrics and
report, export checked against PyTorch's masks, `zoo predict` without torch (mask PNGs, overlays,
shares), `zoo serve`, kill -9 and resume.

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
from conftest import kill_when_written, run_zoo
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
    splits = make_splits(str(folder), modality="image", seed=0, by_class=False, skip_bad=True, val=None)
    kept = len(splits.train) + (len(splits.val) if splits.val is not None else 0)
    assert kept == 3 - (fault != "orphan")


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
    assert len(splits.train) + len(splits.val or ()) == 3 and "an empty polygon" in splits.problems[0].reason


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
