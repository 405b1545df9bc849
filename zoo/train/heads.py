"""New heads for a backbone's embedding, sized to the classes found."""

from __future__ import annotations

from torch import nn

from zoo.errors import ZooError

__all__ = ["make_head", "HEADS"]

HEADS = ("linear", "mlp")


def make_head(kind: str, in_dim: int, n_classes: int, *, hidden: int = 512, dropout: float = 0.2) -> nn.Module:
    """``linear``: dropout + one layer (the strong default for few labels); ``mlp``: one hidden
    layer with GELU and dropout, for larger datasets whose classes are not linearly separable."""
    if kind == "linear":
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, n_classes))
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))
    raise ZooError(f"unknown head {kind!r}: choose one of {', '.join(HEADS)}")
