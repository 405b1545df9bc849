"""The page's charts, drawn with matplotlib's object API (off-screen, no pyplot state) and inlined as
``data:`` URIs. A chart is drawn only when it has something to show: learning curves need two
epochs or more, a schedule two points or more; otherwise the caller says what happened in words.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

__all__ = ["data_uri", "png_uri", "cut_chart", "curves_chart", "folds_chart", "rounds_chart", "has_curves"]


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def png_uri(image: Any) -> str:
    """A PIL image as a PNG ``data:`` URI."""
    out = io.BytesIO()
    image.save(out, format="PNG")
    return data_uri(out.getvalue())


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _uri(fig: Any) -> str:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=96)
    return data_uri(out.getvalue())


def cut_chart(rows: Sequence[dict[str, Any]], chosen: Sequence[str], metric: str = "accuracy",
              rank: str = "log-loss") -> str:
    """Each cut candidate's cross-validated ``metric`` (+- its standard deviation across folds, when
    recorded) and the number the candidates were ranked by, side by side; the chosen one highlighted."""
    names = ["+".join(row["cut"]) if len(row["cut"]) < 3 else f"all {len(row['cut'])} joined" for row in rows]
    picked = [list(row["cut"]) == list(chosen) for row in rows]
    colours = ["#d9822b" if p else "#5b8db8" for p in picked]
    fig = _figure(9, 0.45 * len(rows) + 1.4)
    metric_ax, rank_ax = fig.subplots(1, 2, sharey=True)
    places = list(range(len(rows)))
    metric_ax.barh(places, [row[metric] for row in rows], xerr=[row.get(f"{metric}_std", 0) for row in rows],
                   color=colours, capsize=3)
    rank_ax.barh(places, [row.get("rank", row.get("log_loss")) for row in rows], color=colours)
    metric_ax.set_yticks(places, labels=names)
    metric_ax.invert_yaxis()
    metric_ax.set(xlabel=f"cross-validated {metric}")
    rank_ax.set(xlabel=f"cross-validated {rank} (lower is better: it chooses)")
    for ax in (metric_ax, rank_ax):
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _uri(fig)


def has_curves(history: Sequence[dict[str, Any]]) -> bool:
    """Whether epochs ran: two rows or more with a training or validation loss."""
    return sum(1 for row in history if row.get("train_loss") is not None or row.get("val_loss") is not None) >= 2


def curves_chart(history: Sequence[dict[str, Any]]) -> str:
    """Loss and accuracy per epoch (train and validation), each phase's start marked."""
    fig = _figure(10, 3.6)
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    metric = next((row["metric"] for row in history if row.get("metric")), "accuracy")
    old = any("val_acc" in row or "train_acc" in row for row in history)  # a run from before rows named their metric
    scores = ("train_acc", "val_acc") if old else ("train_metric", "val_metric")
    for ax, keys in ((loss_ax, ("train_loss", "val_loss")), (acc_ax, scores)):
        for key, style in zip(keys, ("-", "--")):
            values = [row.get(key) for row in history]
            if sum(v is not None for v in values) >= 2:
                ax.plot(epochs, [float("nan") if v is None else v for v in values], style, marker=".",
                        label=key.replace("_metric", f" {metric}").replace("_acc", " accuracy").replace("_", " ")
                        .replace("val", "validation"))
    for before, row, epoch in zip(history, history[1:], epochs[1:]):
        if row.get("stage") != before.get("stage"):
            for ax in (loss_ax, acc_ax):
                ax.axvline(epoch - 0.5, color="grey", linewidth=0.8, linestyle=":")
            acc_ax.annotate(str(row.get("stage")), (epoch - 0.4, 0.03), fontsize=8, color="grey")
    loss_ax.set(title="loss", xlabel="epoch")
    acc_ax.set(title=metric, xlabel="epoch")
    for ax in (loss_ax, acc_ax):
        if ax.lines:
            ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _uri(fig)


def folds_chart(schedule: dict[str, Any]) -> str:
    """The cross-validated schedule: each fold's held-out loss after the head and after each
    unfrozen epoch, their mean, and the point replayed on all the data."""
    points = schedule["points"]
    labels = ["head" if epoch < 0 else f"phase {phase}\nepoch {epoch + 1}" for phase, epoch in points]
    fig = _figure(max(5.0, 1.0 * len(points) + 2), 3.4)
    ax = fig.subplots()
    places = list(range(len(points)))
    for fold in schedule.get("folds", []):
        ax.plot(places[:len(fold["loss"])], fold["loss"], color="#9bb7d4", marker=".", linewidth=1)
    ax.plot(places[:len(schedule["mean_loss"])], schedule["mean_loss"], color="#1f4e79", marker="o", linewidth=2,
            label="mean over folds")
    chosen = schedule.get("chosen")
    if chosen is not None and chosen < len(schedule["mean_loss"]):
        ax.plot([chosen], [schedule["mean_loss"][chosen]], "*", color="#d9822b", markersize=14, label="lowest mean")
    ax.set_xticks(places, labels=labels, fontsize=8)
    ax.set(ylabel="held-out loss", title="unfreezing, judged on folds")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _uri(fig)


def rounds_chart(contrastive: dict[str, Any]) -> str:
    """The contrastive rounds' pair loss (and validation loss, when judged)."""
    rounds = contrastive["rounds"]
    fig = _figure(6, 3.2)
    ax = fig.subplots()
    numbers = [r["round"] for r in rounds]
    ax.plot(numbers, [r["pair_loss"] for r in rounds], marker="o", label="pair loss (training)")
    if all("val_loss" in r for r in rounds):
        ax.plot(numbers, [r["val_loss"] for r in rounds], marker="s", linestyle="--", label="head's validation loss")
    ax.set(xlabel="round", ylabel="loss", title="contrastive rounds")
    ax.set_xticks(numbers)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _uri(fig)
