"""What an exported dense model's raw outputs become, in numpy: the boxes or the mask a person is shown.

A segmentation graph ends in each class's score at every pixel of the network's square; its mask
is the best class of each pixel, scaled to the picture nearest-neighbour (:func:`mask_in_picture`,
also what a run's metrics score, so the report's mIoU is the runtime's).

A detection graph (``zoo finetune --task detect``, then ``zoo export``) ends in one row per anchor
point, ``[x0, y0, x1, y1, score per class]``, boxes decoded in the network's pixels. This module
repeats, step for step, what torchvision's FCOS does after its head (``postprocess_detections``):
per pyramid level, the (point, class) pairs scoring over ``score``, the best ``candidates`` of
them; then non-maximum suppression per class at ``nms`` IoU over all levels, best score first,
at most ``detections`` kept; then the boxes scaled from the network's square to the picture
(torchvision's ``resize_boxes``). Hand-written because the runtime imports no torch: numpy has no
``batched_nms``; the export checks that these boxes are PyTorch's (zoo.export).

Stdlib and numpy only (the torch-free runtime and ``zoo serve`` use it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["kept_detections", "nms", "picture_size", "mask_in_picture", "class_shares"]


def nms(boxes: Any, scores: Any, threshold: float) -> Any:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first: a box goes
    when its IoU with a kept, better one is over ``threshold`` (torchvision's ``nms``)."""
    import numpy as np

    order = np.argsort(-scores, kind="stable")
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x1 - x0) * (y1 - y0)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = np.clip(np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]), 0, None)
        height = np.clip(np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]), 0, None)
        inter = width * height
        with np.errstate(invalid="ignore", divide="ignore"):  # two empty boxes: 0/0, NaN, kept (as torchvision)
            iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[~(iou > threshold)]
    return np.asarray(keep, dtype=np.int64)


def kept_detections(rows: Any, levels: Sequence[int], settings: Mapping[str, Any], side: Sequence[int],
                    size: Sequence[int]) -> dict[str, Any]:
    """One picture's detections from its graph rows ``(points, 4 + classes)``: ``boxes`` (k, 4) in
    the picture's pixels (``size`` = width, height; the network read a ``side`` = height, width
    square), ``scores`` (k,) best first, ``labels`` (k,) class indices. See the module."""
    import numpy as np

    rows = np.asarray(rows, dtype=np.float32)
    classes = rows.shape[1] - 4
    boxes, scores, labels = [], [], []
    start = 0
    for count in levels:
        level = rows[start:start + count]
        start += count
        flat = level[:, 4:].reshape(-1)
        chosen = np.flatnonzero(flat > settings["score"])
        if chosen.size > settings["candidates"]:
            best = np.argsort(-flat[chosen], kind="stable")[:settings["candidates"]]
            chosen = chosen[best]
        boxes.append(level[chosen // classes, :4])
        scores.append(flat[chosen])
        labels.append(chosen % classes)
    boxes_all = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32)
    scores_all = np.concatenate(scores) if scores else np.zeros(0, np.float32)
    labels_all = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    if boxes_all.size:  # per class: boxes of different classes are moved apart (torchvision's trick)
        offsets = labels_all.astype(np.float32)[:, None] * (boxes_all.max() + 1)
        keep = nms(boxes_all + offsets, scores_all, settings["nms"])[:settings["detections"]]
    else:
        keep = np.zeros(0, np.int64)
    width, height = size
    scale = np.asarray([width / side[1], height / side[0]] * 2, dtype=np.float32)
    return {"boxes": boxes_all[keep] * scale, "scores": scores_all[keep], "labels": labels_all[keep].astype(np.int64)}


def picture_size(item: Any) -> tuple[int, int]:
    """(width, height) of a picture (a path, an open file, a PIL image or an HxW(x3) array), from its
    header when a file."""
    if isinstance(item, (str, Path)) or hasattr(item, "read"):
        from PIL import Image

        with Image.open(item) as image:
            return image.size
    if hasattr(item, "size") and not hasattr(item, "shape"):
        return tuple(item.size)
    return int(item.shape[1]), int(item.shape[0])


def mask_in_picture(mask: Any, size: Sequence[int]) -> Any:
    """A class-index mask (h, w) of the network's square scaled to a picture of ``size`` (width,
    height), nearest-neighbour at pixel centres: each of the picture's pixels takes the class of
    the network pixel its centre falls in."""
    import numpy as np

    mask = np.asarray(mask)
    width, height = size
    rows = np.minimum(((np.arange(height) + 0.5) * mask.shape[0] / height).astype(np.int64), mask.shape[0] - 1)
    columns = np.minimum(((np.arange(width) + 0.5) * mask.shape[1] / width).astype(np.int64), mask.shape[1] - 1)
    return mask[rows[:, None], columns[None, :]]


def class_shares(mask: Any, count: int) -> Any:
    """The share of the mask's pixels each of ``count`` classes holds."""
    import numpy as np

    counts = np.bincount(np.asarray(mask, np.int64).reshape(-1), minlength=count)[:count]
    return counts / max(1, int(np.asarray(mask).size))
