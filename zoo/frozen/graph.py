"""What a frozen pass computes, as one traceable module: the embedding, and pooled features (a
feature named ``NAME@2`` pooled on a 2x2 grid: :func:`zoo.backbone.split_layer`).

Both engines run this same module: PyTorch directly, onnxruntime after tracing it. Its outputs are
a tuple (ONNX graphs have named outputs, not dicts): the card's embedding first, then each
requested intermediate feature pooled to one vector per input (:func:`zoo.backbone.pool_feature`),
so a probe over several cut points needs one pass over the data.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

__all__ = ["frozen_graph", "input_names", "output_names", "EMBEDDING"]

#: The name of the embedding output (the ONNX output name, and the key of ``FrozenPass.outputs``).
EMBEDDING = "embedding"


def input_names(modality: str) -> tuple[str, ...]:
    """The graph's inputs, in order: those the ONNX runtime and ``zoo export`` use too."""
    return ("input_ids", "attention_mask") if modality == "text" else ("pixel_values",)


def output_names(features: Sequence[str]) -> tuple[str, ...]:
    return (EMBEDDING, *features)


def frozen_graph(backbone: Any, features: Sequence[str] = ()) -> Any:
    """``backbone`` as a module of positional inputs (:func:`input_names`) returning a tuple of
    ``(N, D)`` tensors (:func:`output_names`). It leaves the backbone's mode alone: the pass runs
    it in eval mode (:func:`zoo.frozen.passes.in_eval_mode`).

    With ``features``, the backbone must have been loaded with ``features=[card.embedding.node,
    *features]`` so that its body returns every node in one pass.
    """
    graph = _graph_class()(backbone, tuple(features))
    graph.training = False  # the wrapper itself; not .eval(), which would switch the backbone too
    return graph


@functools.cache
def _graph_class() -> type:
    import torch
    from torch import nn

    from zoo.backbone import cut_nodes, pool_feature, split_layer

    class FrozenGraph(nn.Module):
        def __init__(self, backbone: nn.Module, features: tuple[str, ...]) -> None:
            super().__init__()
            self.backbone = backbone
            self.features = features
            self.text = backbone.card.modality == "text"
            if features:
                nodes = cut_nodes((backbone.card.embedding.node, *features))
                missing = [n for n in nodes if n not in (backbone.features or ())]
                if missing:
                    raise ValueError(f"the backbone was not loaded with the nodes {missing}")

        def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            named = {"input_ids": inputs[0], "attention_mask": inputs[1]} if self.text else {}
            args = () if self.text else (inputs[0],)
            if not self.features:
                return (self.backbone(*args, **named),)
            outputs = self.backbone.body(*args, **named)
            embedding = self.backbone.embedding_of(outputs, *args, **named)
            mask = named.get("attention_mask")
            return (embedding, *(pool_feature(outputs[split_layer(name)[0]], mask, split_layer(name)[1])
                                 for name in self.features))

    return FrozenGraph
