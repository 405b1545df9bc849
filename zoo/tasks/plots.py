"""Pictures of a run: training/validation curves, confusion matrices, and predicted-against-true
plots of a regression, as PNG files.

matplotlib's object API draws off-screen (its Figure renders with Agg without pyplot), so no
backend is switched and no pyplot state is left behind in the caller's process; it is imported
only here, when a report is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_curves", "plot_confusion", "plot_regression", "epochs_ran"]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _save(fig: Any, path: Path) -> None:
    from zoo.atomic import atomic_write

    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))


def epochs_ran(history: Sequence[dict[str, Any]]) -> bool:
    """Whether a run's history has curves to draw: at least two trained epochs (a cross-validated
    head is one row of estimates, a single dot)."""
    return sum(1 for row in history if row.get("train_loss") is not None) >= 2


def plot_curves(history: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Loss and score per epoch, train and validation, with stage boundaries marked; None (and no
    file) where no epochs ran (:func:`epochs_ran`)."""
    if not epochs_ran(history):
        return None
    fig = _figure(11, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    steps = list(range(1, len(history) + 1))
    # a cross-validated run has no validation set: its rows carry the folds' estimate (cv_*)
    metric = next((h["metric"] for h in history if h.get("metric")), "accuracy")
    old = any("val_acc" in h or "train_acc" in h for h in history)  # a run from before rows named their metric
    scores = ("train_acc", "val_acc", "cv_acc") if old else ("train_metric", "val_metric", "cv_metric")
    for ax, keys in ((loss_ax, ("train_loss", "val_loss", "cv_loss")), (acc_ax, scores)):
        for key, style in zip(keys, ("-", "--", ":o")):
            values = [h.get(key) for h in history]
            if any(v is not None for v in values):
                ax.plot(steps, [float("nan") if v is None else v for v in values], style,
                        label=key.replace("_metric", f" {metric}").replace("_", " ").replace("cv ", "cross-validated "))
    previous = None
    for step, row in zip(steps, history):
        if previous is not None and row["stage"] != previous:
            for ax in (loss_ax, acc_ax):
                ax.axvline(step - 0.5, color="grey", linewidth=0.8, linestyle=":")
        previous = row["stage"]
    loss_ax.set(title="loss", xlabel="epoch (all stages)")
    acc_ax.set(title=metric, xlabel="epoch (all stages)")
    for ax in (loss_ax, acc_ax):
        if ax.get_legend_handles_labels()[0]:
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


def plot_regression(truth: Sequence[Sequence[float]], predicted: Sequence[Sequence[float]], names: Sequence[str],
                    path: Path, title: str) -> Path:
    """Predicted against true (with the identity line) and residuals against predicted, per target
    (the first four), in the targets' units."""
    import numpy as np

    t = np.asarray(truth, dtype=np.float64).reshape(len(truth), -1)
    p = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
    shown = list(names)[:4]
    fig = _figure(8, 3.6 * len(shown))
    axes = np.asarray(fig.subplots(len(shown), 2, squeeze=False))
    for row, name in enumerate(shown):
        scatter, residual = axes[row]
        low, high = float(min(t[:, row].min(), p[:, row].min())), float(max(t[:, row].max(), p[:, row].max()))
        scatter.scatter(t[:, row], p[:, row], s=8, alpha=0.6)
        scatter.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--")
        scatter.set(title=f"{title}: {name}", xlabel="true", ylabel="predicted")
        residual.scatter(p[:, row], t[:, row] - p[:, row], s=8, alpha=0.6)
        residual.axhline(0, color="grey", linewidth=0.8, linestyle="--")
        residual.set(title="residuals", xlabel="predicted", ylabel="true - predicted")
        for ax in (scatter, residual):
            ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return path
