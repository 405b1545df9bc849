"""The cut candidates of a backbone, and a multi-layer cut's features from per-layer ones.

Shared by ``zoo probe`` and ``zoo finetune --cut auto``: the card's embedding, each of its
``features``, and all of them joined (:func:`zoo.backbone.join_cut`, several depths at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["candidates", "joined", "ALL"]

#: The name (``--cut all``, the probe's layer column) of every candidate layer joined.
ALL = "all"


def candidates(card: Any) -> list[tuple[str, ...]]:
    """The cuts tried: the card's embedding, each feature, and (with any feature) all joined,
    input to output."""
    layers = [name for name in card.features if name != card.embedding.node]
    singles = [(card.embedding.node,), *[(name,) for name in layers]]
    return singles + ([(*layers, card.embedding.node)] if layers else [])


def joined(features: dict[str, Any], cut: Sequence[str]) -> Any:
    """The cut's embedding (numpy) from per-layer pooled features: :func:`zoo.backbone.join_cut`."""
    import torch

    from zoo.backbone import join_cut

    return join_cut([torch.from_numpy(features[name]) for name in cut]).numpy()
