"""Pictures of a run: training/validation curves and the confusion matrix, as PNG files.

matplotlib draws off-screen (Agg); it is imported only here, when a report is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_curves", "plot_confusion"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Loss and accuracy per epoch, train and validation, with stage boundaries marked."""
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    steps = list(range(1, len(history) + 1))
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        loss_ax.plot(steps, [h.get(key) for h in history], style, label=key.replace("_", " "))
    for key, style in (("train_acc", "-"), ("val_acc", "--")):
        acc_ax.plot(steps, [h.get(key) for h in history], style, label=key.replace("_", " "))
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path, title: str) -> Path:
    """A confusion matrix heat map with counts in the cells (true classes on rows)."""
    plt = _pyplot()
    import numpy as np

    data = np.asarray(matrix)
    size = max(4.0, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
