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

An instance segmentation graph (``--task instance``: Mask R-CNN) takes one picture and ends in
``detections`` rows ``[x0, y0, x1, y1, score, class, mask probabilities (m x m)]``, the boxes in
the network's pixels, rows past the kept detections all zero. :func:`kept_instances` scales each
box to the picture and pastes its mask as torchvision's ``paste_masks_in_image`` does (the
square mask padded by one pixel and its box widened to match, resized bilinearly into the box,
over 0.5); a run's mask mAP is scored on the same pasted masks, so the report's numbers are the
runtime's.

Stdlib and numpy only (the torch-free runtime and ``zoo serve`` use it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["kept_detections", "nms", "picture_size", "mask_in_picture", "class_shares", "kept_instances",
           "paste_masks", "instance_mask", "MASK_THRESHOLD"]

#: A pasted mask probability over this is the object's pixel (torchvision's, and Mask R-CNN's paper).
MASK_THRESHOLD = 0.5


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


def _bilinear(count: int, size: int) -> Any:
    """The (size, count) matrix that resizes ``count`` samples to ``size`` bilinearly, as
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` does (no antialias)."""
    import numpy as np

    source = np.maximum((np.arange(size) + 0.5) * (count / size) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), count - 1)
    high = np.minimum(low + 1, count - 1)
    weight = source - low
    matrix = np.zeros((size, count))
    matrix[np.arange(size), low] += 1 - weight
    matrix[np.arange(size), high] += weight
    return matrix


def paste_masks(probabilities: Any, boxes: Any, size: Sequence[int], threshold: float = MASK_THRESHOLD) -> Any:
    """Each box's square mask of probabilities ``(n, m, m)`` pasted into a picture of ``size``
    (width, height) at its box ``(n, 4)`` (the picture's pixels): ``(n, height, width)`` booleans
    (see the module)."""
    import numpy as np

    probabilities = np.asarray(probabilities, np.float64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    width, height = int(size[0]), int(size[1])
    out = np.zeros((len(boxes), height, width), bool)
    if not len(boxes):
        return out
    m = probabilities.shape[-1]
    padded = np.pad(probabilities.reshape(-1, m, m), ((0, 0), (1, 1), (1, 1)))
    scale = (m + 2) / m
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    half_w, half_h = (boxes[:, 2] - boxes[:, 0]) / 2 * scale, (boxes[:, 3] - boxes[:, 1]) / 2 * scale
    widened = np.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], 1)
    for k, (x0, y0, x1, y1) in enumerate(np.trunc(widened).astype(np.int64)):
        w, h = max(int(x1 - x0 + 1), 1), max(int(y1 - y0 + 1), 1)
        resized = _bilinear(m + 2, h) @ padded[k] @ _bilinear(m + 2, w).T > threshold
        top, left = max(int(y0), 0), max(int(x0), 0)
        bottom, right = min(int(y1) + 1, height), min(int(x1) + 1, width)
        if bottom > top and right > left:
            out[k, top:bottom, left:right] = resized[top - y0:bottom - y0, left - x0:right - x0]
    return out


def kept_instances(rows: Any, side: Sequence[int], size: Sequence[int]) -> dict[str, Any]:
    """One picture's instances from its graph rows ``(detections, 6 + m*m)`` (see the module):
    ``boxes`` (k, 4) in the picture of ``size`` (width, height), ``scores``, ``labels``, ``masks``
    (k, height, width) booleans; ``side``: the network's square (height, width)."""
    import numpy as np

    rows = np.asarray(rows, np.float64)
    rows = rows[rows[:, 4] > 0]
    width, height = size
    scale = np.asarray([width / side[1], height / side[0]] * 2)
    boxes = rows[:, :4] * scale
    m = int(round((rows.shape[1] - 6) ** 0.5))
    return {"boxes": boxes, "scores": rows[:, 4], "labels": rows[:, 5].round().astype(np.int64),
            "masks": paste_masks(rows[:, 6:].reshape(-1, m, m), boxes, size)}


def instance_mask(masks: Any, scores: Any) -> Any:
    """The instances' masks ``(k, h, w)`` as one index mask (uint8): 0 where no object is, else the
    number (from 1, in the order given) of the best-scoring instance covering the pixel."""
    import numpy as np

    masks = np.asarray(masks, bool)
    out = np.zeros(masks.shape[1:], np.uint8)
    for k in np.argsort(-np.asarray(scores), kind="stable")[:255][::-1]:  # the best last: it covers the others
        out[masks[k]] = k + 1
    return out
