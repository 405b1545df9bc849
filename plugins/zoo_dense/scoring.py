"""COCO's detection metrics, by torchmetrics' ``MeanAveragePrecision`` on pycocotools (the
reference implementation), under the names torchmetrics gives them: ``map`` (mAP@[.5:.95]),
``map_50``, ``map_75``, ``map_small/medium/large``, ``mar_1/10/100``..., per class ``map`` and
``mar_100``, and each class's precision-recall curve at IoU 0.5.

Predictions come in the network's pixels (the squashed square) and are scaled back to each
picture's own before scoring: IoU is not kept by a change of aspect ratio, and COCO's small /
medium / large areas are the picture's.

An instance segmenter's answers also hold each detection's mask (m x m probabilities): they are
pasted into the picture as the runtime pastes them (:func:`zoo.postprocess.paste_masks`) and
scored against the objects' own masks (COCO's ``segm`` IoU); the mask metrics take the names
above, the boxes' get ``box_`` before theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["average_precision", "in_picture", "SCALARS"]

SCALARS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100",
           "mar_small", "mar_medium", "mar_large")


def in_picture(answer: dict[str, Any], value: dict[str, Any], side: Sequence[int]) -> dict[str, Any]:
    """A network's answer (boxes in the ``side`` = (height, width) square) in the picture's pixels."""
    import numpy as np

    width, height = value["size"]
    scale = np.asarray([width / side[1], height / side[0]] * 2, dtype=np.float64)
    return {"boxes": np.asarray(answer["boxes"], np.float64).reshape(-1, 4) * scale,
            "scores": np.asarray(answer["scores"], np.float64), "labels": np.asarray(answer["labels"], np.int64)}


def average_precision(answers: Sequence[dict[str, Any]], values: Sequence[dict[str, Any]], names: Sequence[str],
                      side: Sequence[int], *, curves: bool = False, masks: bool = False) -> dict[str, Any]:
    """The metrics of ``answers`` (per picture, network pixels) against ``values`` (the task's
    targets: boxes in the picture's pixels, labels, crowd flags, size; ``segmentations`` with
    ``masks``); ``curves``: also each class's precision-recall curve at IoU 0.5 (all areas, 100
    detections); ``masks``: scored on the masks (see the module)."""
    import numpy as np
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", iou_type=("bbox", "segm") if masks else "bbox",
                                  class_metrics=True, extended_summary=curves, backend="pycocotools")
    for answer, value in zip(answers, values):  # one picture at a time: its masks are RLE once given
        scaled = {k: torch.as_tensor(v) for k, v in in_picture(answer, value, side).items()}
        truth = {"boxes": torch.as_tensor(np.asarray(value["boxes"], np.float64).reshape(-1, 4)),
                 "labels": torch.as_tensor(np.asarray(value["labels"], np.int64)),
                 "iscrowd": torch.as_tensor(np.asarray(value["crowd"], np.int64))}
        if masks:
            from zoo import paste_masks
            from zoo_dense.masks import painted

            width, height = value["size"]
            probabilities = np.asarray(answer["masks"]).reshape(len(scaled["boxes"]), *np.shape(answer["masks"])[-2:])
            scaled["masks"] = torch.from_numpy(paste_masks(probabilities, scaled["boxes"].numpy(), (width, height)))
            shapes = [painted(s, height, width) for s in value["segmentations"]]
            truth["masks"] = torch.from_numpy(np.stack(shapes) if shapes else np.zeros((0, height, width), bool))
        metric.update([scaled], [truth])
    result = metric.compute()
    if masks:  # the masks' metrics under the usual names, the boxes' as box_*
        boxes = {f"box_{k[5:]}": v for k, v in result.items() if k.startswith("bbox_")}
        result = {**{k[5:]: v for k, v in result.items() if k.startswith("segm_")}, "classes": result["classes"],
                  **boxes}
    report: dict[str, Any] = {key: float(result[key]) for key in SCALARS}
    if masks:
        report.update({f"box_{key}": float(result[f"box_{key}"]) for key in SCALARS})
    present = [int(c) for c in torch.atleast_1d(result["classes"]).tolist()]
    per_ap = torch.atleast_1d(result["map_per_class"]).tolist()
    per_ar = torch.atleast_1d(result["mar_100_per_class"]).tolist()
    report["per_class"] = {names[c]: {"map": float(ap), "mar_100": float(ar)}
                           for c, ap, ar in zip(present, per_ap, per_ar) if 0 <= c < len(names)}
    report["n"] = len(values)
    report["objects"] = int(sum(len(v["labels"]) for v in values))
    if curves:
        precision = result["precision"]  # (iou thresholds, recall points, classes, areas, max detections)
        recall_points = np.linspace(0, 1, precision.shape[1])
        report["curves"] = {names[c]: {"recall": recall_points.tolist(),
                                       "precision": [max(0.0, float(p)) for p in precision[0, :, k, 0, -1].tolist()]}
                            for k, c in enumerate(present) if 0 <= c < len(names)}
    return report
