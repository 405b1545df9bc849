"""A detection run's pictures and predictions lines: precision-recall curves per class, held-out
pictures with their true (green) and predicted (orange) boxes, and each picture's boxes in
``report/predictions.jsonl`` (its ``score``: the objects missed plus the confident false
detections at IoU 0.5, so the report's gallery shows the worst pictures first)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_boxes", "draw_pictures", "draw_objects", "plot_curves", "CONFIDENT", "errors"]

#: A detection at this score or over counts as the network saying "an object is here" (in the
#: gallery's error count and the drawn pictures); mAP itself ranks every kept detection.
CONFIDENT = 0.5


def _iou(a: Any, b: Any) -> Any:
    import numpy as np

    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda boxes: (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def errors(predicted: Mapping[str, Any], value: Mapping[str, Any]) -> tuple[int, int]:
    """(missed objects, confident false detections) of one picture at IoU 0.5, same class, each
    true box matched once, best score first (crowd boxes neither missed nor matched)."""
    import numpy as np

    keep = np.asarray(predicted["scores"]) >= CONFIDENT
    boxes, labels = np.asarray(predicted["boxes"]).reshape(-1, 4)[keep], np.asarray(predicted["labels"])[keep]
    order = np.argsort(-np.asarray(predicted["scores"])[keep], kind="stable")
    crowd = np.asarray(value["crowd"], bool)
    truth, classes = np.asarray(value["boxes"]).reshape(-1, 4), np.asarray(value["labels"])
    overlap = _iou(boxes, truth)
    used = np.zeros(len(truth), bool)
    false = 0
    for i in order:
        candidates = [j for j in np.argsort(-overlap[i]) if overlap[i, j] >= 0.5 and classes[j] == labels[i]
                      and not used[j]]
        if candidates:
            used[candidates[0]] = True
        else:
            false += 1
    return int((~used & ~crowd).sum()), false


def write_boxes(folder: Path, name: str, dataset: Any, outputs: Sequence[Mapping[str, Any]], targets: Any,
                side: Sequence[int]) -> Path:
    """The held-out set's lines of ``report/predictions.jsonl`` (see the module)."""
    from zoo import write_prediction_lines
    from zoo_dense.scoring import in_picture

    names = targets.names
    lines = []
    for i, (example, answer, value) in enumerate(zip(dataset.examples, outputs, targets.values)):
        predicted = in_picture(answer, value, side)
        missed, false = errors(predicted, value)
        true = [{"label": names[c], "box": [round(float(v), 2) for v in box]}
                for box, c in zip(value["boxes"], value["labels"])]
        found = [{"label": names[c], "score": round(float(s), 4), "box": [round(float(v), 2) for v in box]}
                 for box, c, s in zip(predicted["boxes"], predicted["labels"], predicted["scores"]) if s >= CONFIDENT]
        lines.append({"set": name, "index": i, "where": example.where, "item": {"path": str(Path(example.item).resolve())},
                      "true": ", ".join(f"{o['label']}" for o in true) or "nothing",
                      "predicted": ", ".join(f"{o['label']} {o['score']:.2f}" for o in found) or "nothing",
                      "boxes": {"true": true, "predicted": found}, "missed": missed, "false": false,
                      "score": missed + false, "correct": missed + false == 0})
    return write_prediction_lines(folder, name, lines)


def draw_pictures(path: Path, dataset: Any, outputs: Sequence[Mapping[str, Any]], targets: Any, side: Sequence[int],
                  count: int = 8) -> Path | None:
    """Up to ``count`` held-out pictures (the worst first) with true and confident predicted boxes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from zoo import open_image
    from zoo_dense.scoring import in_picture

    if not len(dataset):
        return None
    scored = []
    for i, (answer, value) in enumerate(zip(outputs, targets.values)):
        predicted = in_picture(answer, value, side)
        scored.append((-sum(errors(predicted, value)), i, predicted))
    chosen = sorted(scored)[:count]
    columns = min(4, len(chosen))
    rows = (len(chosen) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (_, i, predicted) in zip(axes.flat, chosen):
        value = targets.values[i]
        axis.imshow(open_image(dataset.examples[i].item))
        for box, c in zip(value["boxes"], value["labels"]):
            axis.add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False, color="#2ca02c", lw=2))
        for box, c, s in zip(predicted["boxes"], predicted["labels"], predicted["scores"]):
            if s >= CONFIDENT:
                axis.add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False, color="#ff7f0e",
                                         lw=1.5, ls="--"))
                axis.text(box[0], box[1], f"{targets.names[c]} {s:.2f}", color="white", fontsize=7,
                          bbox={"facecolor": "#ff7f0e", "alpha": 0.8, "pad": 1, "lw": 0})
        axis.set_title(Path(str(dataset.examples[i].item)).name, fontsize=8)
    figure.suptitle("true boxes (green), predicted at score >= 0.5 (orange)", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def draw_objects(path: Path, dataset: Any, outputs: Sequence[Mapping[str, Any]], targets: Any, side: Sequence[int],
                 count: int = 6) -> Path | None:
    """Up to ``count`` held-out pictures of an instance segmenter (the worst first), each twice side
    by side: its true objects' masks, and the confident predicted ones pasted as the runtime pastes
    them, each object in its own colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from zoo import instance_mask, mask_colours, open_image, paste_masks
    from zoo_dense.masks import painted
    from zoo_dense.scoring import in_picture

    if not len(dataset):
        return None
    scored = sorted((-sum(errors(in_picture(answer, value, side), value)), i)
                    for i, (answer, value) in enumerate(zip(outputs, targets.values)))[:count]

    def tinted(pixels: Any, masks: Any, scores: Any) -> Any:
        numbers = instance_mask(np.asarray(masks, bool).reshape(-1, *pixels.shape[:2]), scores)
        shown = (numbers > 0)[..., None]
        return np.where(shown, 0.45 * pixels + 0.55 * mask_colours(numbers), pixels).astype(np.uint8)

    figure, axes = plt.subplots(len(scored), 2, figsize=(6.4, 3.2 * len(scored)), squeeze=False)
    for row, (_, i) in enumerate(scored):
        value, answer = targets.values[i], outputs[i]
        width, height = value["size"]
        pixels = np.asarray(open_image(dataset.examples[i].item).convert("RGB"), dtype=np.float64)
        truth = [painted(s, height, width) for s in value["segmentations"]]
        predicted = in_picture(answer, value, side)
        confident = np.asarray(predicted["scores"]) >= CONFIDENT
        probabilities = np.asarray(answer["masks"]).reshape(len(confident), *np.shape(answer["masks"])[-2:])
        found = paste_masks(probabilities[confident], predicted["boxes"][confident], (width, height))
        for axis, masks, scores, title in ((axes[row, 0], truth, np.ones(len(truth)), "true"),
                                           (axes[row, 1], found, predicted["scores"][confident], "predicted")):
            axis.imshow(tinted(pixels, masks, scores))
            axis.axis("off")
            axis.set_title(f"{Path(str(dataset.examples[i].item)).name}: {title} ({len(masks)})", fontsize=8)
    figure.suptitle(f"objects: true (left), predicted at score >= {CONFIDENT} (right)", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], path: Path, name: str) -> Path:
    """Each class's precision against recall at IoU 0.5 (COCO's 101 recall points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 4.2))
    for label, curve in curves.items():
        axis.plot(curve["recall"], curve["precision"], label=label, lw=1.5)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.set_title(f"precision-recall at IoU 0.5 ({name})")
    axis.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
