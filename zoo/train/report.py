"""Pictures of a run: training/validation curves and the confusion matrix, as PNG files.

matplotlib's object API draws off-screen (its Figure renders with Agg without pyplot), so no
backend is switched and no pyplot state is left behind in the caller's process; it is imported
only here, when a report is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_curves", "plot_confusion"]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _save(fig: Any, path: Path) -> None:
    from zoo.atomic import atomic_write

    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))


def plot_curves(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Loss and accuracy per epoch, train and validation, with stage boundaries marked."""
    fig = _figure(11, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    steps = list(range(1, len(history) + 1))
    # a cross-validated run has no validation set: its rows carry the folds' estimate (cv_*)
    for ax, keys in ((loss_ax, ("train_loss", "val_loss", "cv_loss")), (acc_ax, ("train_acc", "val_acc", "cv_acc"))):
        for key, style in zip(keys, ("-", "--", ":o")):
            values = [h.get(key) for h in history]
            if any(v is not None for v in values):
                ax.plot(steps, [float("nan") if v is None else v for v in values], style,
                        label=key.replace("_", " ").replace("cv ", "cross-validated "))
    previous = None
    for step, row in zip(steps, history):
        if previous is not None and row["stage"] != previous:
            for ax in (loss_ax, acc_ax):
                ax.axvline(step - 0.5, color="grey", linewidth=0.8, linestyle=":")
        previous = row["stage"]
    loss_ax.set(title="loss", xlabel="epoch (all stages)")
    acc_ax.set(title="accuracy", xlabel="epoch (all stages)", ylim=(0, 1.02))
    for ax in (loss_ax, acc_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return path


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path, title: str) -> Path:
    """A confusion matrix heat map with counts in the cells (true classes on rows)."""
    import numpy as np

    data = np.asarray(matrix)
    size = max(4.0, 0.45 * len(classes) + 2)
    fig = _figure(size, size)
    ax = fig.subplots()
    ax.imshow(data, cmap="Blues")
    ax.set_xticks(range(len(classes)), labels=classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), labels=classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    if len(classes) <= 30:
        limit = data.max() / 2 if data.size else 0
        for (i, j), value in np.ndenumerate(data):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > limit else "black",
                    fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path
