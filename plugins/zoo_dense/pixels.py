"""A segmentation run's numbers and pictures: the pixel confusion matrix and what comes of it
(``miou``, ``iou`` per class, ``pixel_accuracy``), each held-out picture's line in
``report/predictions.jsonl`` and the pictures the report shows (true and predicted masks side by
side, the confusion matrix).

Every number is counted in the picture's own pixels: the network's mask (its square) is scaled
back to the picture as the runtime does (:func:`zoo.postprocess.mask_in_picture`), so the
report's mIoU is what ``zoo predict`` answers; pixels marked ignore (255) are not counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["confusion", "scores", "pairs", "write_masks", "draw_masks", "plot_confusion"]


def pairs(answers: Sequence[Mapping[str, Any]], values: Sequence[Mapping[str, Any]], count: int) -> Any:
    """Each picture's (true mask, predicted mask), both in the picture's pixels."""
    from zoo import mask_in_picture
    from zoo_dense.masks import decode

    for answer, value in zip(answers, values):
        truth = decode(value, count)
        yield truth, mask_in_picture(answer["mask"], (truth.shape[1], truth.shape[0]))


def confusion(truth: Any, predicted: Any, count: int) -> Any:
    """The (count, count) matrix of pixels, true class by row, predicted by column, ignore left
    out. np.bincount: the one-line count torchmetrics' confusion matrix makes, without tensors."""
    import numpy as np

    keep = truth < count
    return np.bincount(truth[keep].astype(np.int64) * count + predicted[keep].astype(np.int64),
                       minlength=count * count).reshape(count, count)


def scores(matrix: Any, names: Sequence[str]) -> dict[str, Any]:
    """``miou`` (the mean over classes present in the truth or the prediction), ``iou`` per class
    (None where a class is in neither), ``pixel_accuracy``, from a pixel confusion matrix."""
    import numpy as np

    matrix = np.asarray(matrix, dtype=np.float64)
    hits = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - hits
    iou = [float(h / u) if u > 0 else None for h, u in zip(hits, union)]
    present = [v for v in iou if v is not None]
    return {"miou": float(np.mean(present)) if present else 0.0,
            "pixel_accuracy": float(hits.sum() / matrix.sum()) if matrix.sum() else 0.0,
            "iou": dict(zip(names, iou))}


def write_masks(folder: Path, name: str, dataset: Any, outputs: Sequence[Mapping[str, Any]], targets: Any) -> Path:
    """The held-out set's lines of ``report/predictions.jsonl``: each picture's classes (true and
    predicted, by their share of its pixels), its own mIoU and, as ``score``, 1 - that mIoU (the
    gallery shows the worst first)."""
    from zoo import write_prediction_lines

    names = targets.names
    lines = []
    for i, (example, (truth, predicted)) in enumerate(zip(dataset.examples,
                                                          pairs(outputs, targets.values, len(names)))):
        own = scores(confusion(truth, predicted, len(names)), names)
        lines.append({"set": name, "index": i, "where": example.where,
                      "item": {"path": str(Path(example.item).resolve())},
                      "true": _shares(truth, names), "predicted": _shares(predicted, names),
                      "miou": round(own["miou"], 4), "pixel_accuracy": round(own["pixel_accuracy"], 4),
                      "score": round(1 - own["miou"], 4), "correct": own["miou"] >= 0.5})
    return write_prediction_lines(folder, name, lines)


def _shares(mask: Any, names: Sequence[str]) -> str:
    """'cat 12%, dog 3%': the classes a mask shows (background-like index 0 left out), largest first."""
    from zoo import class_shares

    shares = class_shares(mask, len(names))
    shown = sorted(((s, names[c]) for c, s in enumerate(shares) if c > 0 and s > 0), reverse=True)
    return ", ".join(f"{label} {share:.0%}" for share, label in shown) or names[0]


def _coloured(mask: Any) -> Any:
    """A class-index mask in the palette zoo draws masks with (ignore: white)."""
    import numpy as np

    from zoo import mask_colours

    return mask_colours(np.asarray(mask))


def draw_masks(path: Path, dataset: Any, outputs: Sequence[Mapping[str, Any]], targets: Any,
               count: int = 6) -> Path | None:
    """Up to ``count`` held-out pictures (the worst first), each beside its true and predicted mask."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo import open_image

    if not len(dataset):
        return None
    names = targets.names
    found = []
    for i, (truth, predicted) in enumerate(pairs(outputs, targets.values, len(names))):
        found.append((scores(confusion(truth, predicted, len(names)), names)["miou"], i, truth, predicted))
    chosen = sorted(found, key=lambda row: (row[0], row[1]))[:count]
    figure, axes = plt.subplots(len(chosen), 3, figsize=(7.5, 2.6 * len(chosen)), squeeze=False)
    for row, (own, i, truth, predicted) in zip(axes, chosen):
        for axis in row:
            axis.axis("off")
        row[0].imshow(open_image(dataset.examples[i].item))
        row[0].set_title(Path(str(dataset.examples[i].item)).name, fontsize=8)
        row[1].imshow(_coloured(truth))
        row[1].set_title("true", fontsize=8)
        row[2].imshow(_coloured(predicted))
        row[2].set_title(f"predicted (mIoU {own:.2f})", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def plot_confusion(matrix: Sequence[Sequence[float]], names: Sequence[str], path: Path, name: str) -> Path:
    """The pixel confusion matrix, each true class's row as shares of its pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(matrix, dtype=np.float64)
    rows = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    side = 1.6 + 0.5 * len(names)
    figure, axis = plt.subplots(figsize=(side + 1, side))
    shown = axis.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    axis.set_yticks(range(len(names)), names, fontsize=7)
    for (r, c), share in np.ndenumerate(rows):
        if share >= 0.005:
            axis.text(c, r, f"{share:.2f}", ha="center", va="center", fontsize=6,
                      color="white" if share > 0.5 else "black")
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"pixels ({name}), share of each true class")
    figure.colorbar(shown, ax=axis, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
