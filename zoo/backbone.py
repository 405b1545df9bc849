"""The Backbone: a pretrained network cut at its card's cut point.

Its forward returns the embedding (or named intermediate features, or the original logits with
``head="pretrained"``); ``stages`` groups its parameters from input to output so that training
can freeze it and unfreeze the top stages one by one; ``preprocess`` turns PIL images or texts
into the tensors it expects, exactly as the card says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zoo.card import ModelCard
from zoo.errors import InputError, LoadError
from zoo.preprocess import image_batch

__all__ = ["Backbone", "pool_tokens", "pool_feature", "join_cut", "cut_dim", "cut_nodes", "split_layer", "layout_name",
           "LAYOUT"]

#: A feature map pooled over a LAYOUT x LAYOUT grid instead of over all of it: ``blocks.1@2`` is
#: ``blocks.1`` averaged over each quarter of the picture, in order. Global pooling keeps what is in a
#: picture and forgets where; the grid keeps a coarse where, which a target such as the angle a
#: digit is turned by, or the pitch of a spectrogram, needs (bench/regression.py: rotated digits).
LAYOUT = 2


def split_layer(name: str) -> tuple[str, int | None]:
    """``blocks.1@2`` -> (``blocks.1``, 2); a plain layer name -> (name, None)."""
    node, sep, grid = name.rpartition("@")
    if sep and grid.isdigit() and node:
        return node, int(grid)
    return name, None


def layout_name(node: str, grid: int = LAYOUT) -> str:
    return f"{node}@{grid}"


def pool_tokens(states: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """One vector per text from token states: mean over real tokens, the first token, or max."""
    if how == "cls":
        return states[:, 0]
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    if how == "max":
        return states.masked_fill(mask == 0, torch.finfo(states.dtype).min).max(dim=1).values
    return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def pool_feature(value: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 grid: int | None = None) -> torch.Tensor:
    """One vector per input from an intermediate feature: the mean over space (N, C, H, W), over
    real tokens (N, T, C with a mask; over all tokens without one), or the vector itself (N, C).
    ``grid``: a map's means over each cell of a grid x grid division of its space instead (channels
    of the first cell, then the next: row by row), its layout kept coarsely."""
    if value.dim() == 4:
        if grid:
            return _grid_means(value, grid)
        return value.mean(dim=(2, 3))
    if value.dim() == 3:
        if attention_mask is not None:
            return pool_tokens(value, attention_mask, "mean")
        return value.mean(dim=1)
    return value.flatten(1)


def _grid_means(value: torch.Tensor, grid: int) -> torch.Tensor:
    """The mean of each cell of a grid x grid division of a map's space (cells as
    ``adaptive_avg_pool2d`` bounds them: rows ``floor(i H / g)`` to ``ceil((i + 1) H / g)``), cell
    by cell, each cell's channels together. Written as slices because onnx cannot export adaptive
    pooling when the map's size is not a static of the traced graph; a card's input size is fixed,
    so the bounds are constants of the graph."""
    height, width = int(value.shape[2]), int(value.shape[3])
    cells = []
    for i in range(grid):
        for j in range(grid):
            top, bottom = (i * height) // grid, -((-(i + 1) * height) // grid)
            left, right = (j * width) // grid, -((-(j + 1) * width) // grid)
            cells.append(value[:, :, top:bottom, left:right].mean(dim=(2, 3)))
    return torch.cat(cells, dim=1)


def join_cut(pooled: Sequence[torch.Tensor]) -> torch.Tensor:
    """The embedding of a cut at several layers from their pooled vectors: each L2-normalised (a
    shallow layer's activations are on another scale than a deep one's, and none should outweigh
    the others), concatenated, over sqrt(count) so the result has unit norm. One layer is itself.

    The one definition of a multi-layer cut: the backbone's forward, the exported graph and the
    cached features that ``zoo finetune`` selects on all use it."""
    if len(pooled) == 1:
        return pooled[0]
    scale = len(pooled) ** 0.5
    return torch.cat([nn.functional.normalize(v, dim=1) for v in pooled], dim=1) / scale


def cut_dim(card: ModelCard, cut: Sequence[str]) -> int:
    """The embedding size of a cut at ``cut`` (the card's embedding node and its ``features``, a
    feature map pooled on a grid: ``NAME@2``)."""
    dims = {**card.features, card.embedding.node: card.embedding.dim}
    parts = [split_layer(name) for name in cut]
    unknown = [name for name, (node, grid) in zip(cut, parts)
               if node not in dims or (grid is not None and node == card.embedding.node)]
    if unknown or not cut:
        raise LoadError(f"model {card.name!r}: cannot cut at {', '.join(unknown) or 'nothing'}; choose from "
                        f"{', '.join(dims)} (the card's embedding and features; a feature map on a grid: "
                        f"NAME@{LAYOUT}), or several joined by '+'")
    return sum(dims[node] * (grid * grid if grid else 1) for node, grid in parts)


def cut_nodes(cut: Sequence[str]) -> list[str]:
    """The network nodes a cut reads (each once, in order): a grid-pooled layer reads its map."""
    return list(dict.fromkeys(split_layer(name)[0] for name in cut))


class Backbone(nn.Module):
    """A network cut at ``card.embedding``; build it with :func:`zoo.load`."""

    def __init__(
        self,
        card: ModelCard,
        body: nn.Module,
        *,
        features: Sequence[str] | None = None,
        head: nn.Module | None = None,
        tokenizer: Any = None,
        cut: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.card = card
        self.body = body
        self.head = head
        self.tokenizer = tokenizer
        self.features = tuple(features) if features else None
        # a cut other than the card's: the layers whose pooled outputs make the embedding (join_cut)
        self.cut = tuple(cut) if cut else None
        self.feature_dim = cut_dim(card, self.cut) if self.cut else card.embedding.dim
        self._frozen: Any = None  # a zoo.frozen.FrozenPass that embed() uses while the weights are unchanged
        self._frozen_at: int | None = None

    # ----------------------------------------------------------------- forward

    def forward(self, *inputs: torch.Tensor, **named: torch.Tensor) -> Any:
        """Images: a float NCHW batch. Text: ``input_ids`` and ``attention_mask`` (from :meth:`preprocess`)."""
        outputs = self.body(*inputs, **named)
        if self.features is not None:
            return {name: outputs[name] for name in self.features}
        embedding = self.embedding_of(outputs, *inputs, **named)
        return self.head(embedding) if self.head is not None else embedding

    def embedding_of(self, outputs: dict[str, torch.Tensor], *inputs: torch.Tensor,
                     **named: torch.Tensor) -> torch.Tensor:
        """The embedding from the body's outputs: at the card's node, token states pooled as the card
        says and flattened; with a ``cut``, its layers pooled and joined (:func:`join_cut`)."""
        if self.cut:
            mask = _attention_mask(outputs[self.cut[0]], inputs, named) if self.card.modality == "text" else None
            return join_cut([self._card_embedding(outputs, inputs, named) if name == self.card.embedding.node
                             else pool_feature(outputs[split_layer(name)[0]], mask, split_layer(name)[1])
                             for name in self.cut])
        return self._card_embedding(outputs, inputs, named)

    def _card_embedding(self, outputs: dict[str, torch.Tensor], inputs: Sequence[torch.Tensor],
                        named: dict[str, torch.Tensor]) -> torch.Tensor:
        embedding = outputs[self.card.embedding.node]
        pooling = self.card.embedding.pooling
        if self.card.modality == "text":
            pooling = pooling or "mean"
            if pooling != "pooler":
                embedding = pool_tokens(embedding, _attention_mask(embedding, inputs, named), pooling)
        elif pooling in ("cls", "token") and embedding.dim() == 3:  # image tokens (N, T, C): a ViT's class token
            embedding = embedding[:, 0]
        elif pooling in ("mean", "avg") and embedding.dim() > 2:
            embedding = pool_feature(embedding)
        return embedding.flatten(1)

    # ----------------------------------------------------------------- inputs

    def preprocess(self, items: Sequence[Any]) -> Any:
        """PIL images / paths / arrays -> an NCHW tensor; texts -> a dict of token tensors; another
        modality through the card's front end (a sound as a spectrogram image, ``zoo.frontend``)."""
        if self.card.input.front_end is not None:
            from zoo.frontend import batch

            return torch.from_numpy(batch(items, self.card.input))
        if self.card.modality == "image":
            return torch.from_numpy(image_batch(items, self.card.input))
        if self.card.modality == "text":
            if isinstance(items, str) or not all(isinstance(t, str) for t in items):
                raise InputError(f"model {self.card.name!r} takes a list of strings")
            encoded = self.tokenizer(list(items), padding=True, truncation=True,
                                     max_length=self.card.input.max_length, return_tensors="pt")
            return {k: encoded[k] for k in ("input_ids", "attention_mask")}
        raise InputError(f"model {self.card.name!r}: {self.card.modality} inputs are not supported yet")

    def use_engine(self, frozen: Any) -> Backbone:
        """Let :meth:`embed` run through ``frozen`` (a :class:`zoo.frozen.FrozenPass`, see
        ``zoo.load(..., engine=...)``) for as long as the weights stay as they are now; ``None``
        drops it."""
        self._frozen = frozen
        self._frozen_at = self._weights_state() if frozen is not None else None
        return self

    @property
    def engine(self) -> str:
        """The engine :meth:`embed` uses now: ``onnxruntime`` or ``torch``."""
        return self._frozen.engine if self._engine_current() else "torch"

    def _weights_state(self) -> int:
        # A parameter or buffer replaced (another storage) or changed in place (an optimizer step,
        # load_state_dict's copy, an in-place op under no_grad: each bumps the tensor's version
        # counter) changes this. An in-place change through ``.data`` bypasses the counter: drop
        # the engine with use_engine(None) after such surgery.
        return hash(tuple((t.data_ptr(), t._version) for t in (*self.parameters(), *self.buffers())))

    def _engine_current(self) -> bool:
        return self._frozen is not None and self._frozen_at == self._weights_state()

    @torch.no_grad()
    def embed(self, items: Sequence[Any]) -> torch.Tensor:
        """Preprocess and run in eval mode: embeddings (or logits / features) for a list of inputs."""
        if self._engine_current():
            if isinstance(items, (str, bytes)) or not len(items):
                raise InputError(f"model {self.card.name!r}: give a non-empty list of inputs")
            if self.card.modality == "text" and not all(isinstance(t, str) for t in items):
                raise InputError(f"model {self.card.name!r} takes a list of strings")
            return self._frozen.embed(list(items)).to(next(self.parameters()).device)
        device = next(self.parameters()).device
        batch = self.preprocess(items)
        was_training = self.training
        self.eval()
        try:
            if isinstance(batch, dict):
                return self(**{k: v.to(device) for k, v in batch.items()})
            return self(batch.to(device))
        finally:
            self.train(was_training)

    # ----------------------------------------------------------------- stages

    def stages(self) -> list[tuple[str, list[nn.Parameter]]]:
        """Parameter groups from input to output, named after the card's stages.

        A parameter outside every named stage joins the stage registered just before it (a
        ResNet's ``bn1`` joins ``conv1``, an EfficientNet's final ``bn2`` joins ``conv_head``), or
        the first stage when it comes before all of them (a ViT's class token). Stages the cut
        left out (features taken before them) are skipped.
        """
        owner: dict[int, int] = {}
        present: list[str] = []
        for name in self.card.stages:
            try:
                module = self.body.get_submodule(_body_path(self.body, name))
            except AttributeError:
                continue
            present.append(name)
            for p in module.parameters():
                owner.setdefault(id(p), len(present) - 1)
        if not present:
            raise LoadError(f"model {self.card.name!r}: none of the card's stages ({', '.join(self.card.stages)}) "
                            f"exist in the network; fix the card's `stages`")
        groups: list[list[nn.Parameter]] = [[] for _ in present]
        current, seen = 0, set()
        for p in self.body.parameters():  # registration order runs from input to output
            if id(p) in seen:
                continue
            seen.add(id(p))
            current = owner.get(id(p), current)
            groups[current].append(p)
        return list(zip(present, groups))

    def freeze(self) -> Backbone:
        """No gradients for the body; BatchNorm statistics are kept by :meth:`train` staying False."""
        for p in self.body.parameters():
            p.requires_grad_(False)
        return self

    def unfreeze(self, top: int | str = "all") -> list[str]:
        """Let the top ``top`` stages (or all) learn; returns their names, output side first."""
        groups = self.stages()
        chosen = groups if top == "all" else groups[len(groups) - int(top):] if int(top) > 0 else []
        for _, params in chosen:
            for p in params:
                p.requires_grad_(True)
        return [name for name, _ in reversed(chosen)]


def _attention_mask(states: torch.Tensor, inputs: Sequence[torch.Tensor], named: dict[str, torch.Tensor]) -> torch.Tensor:
    mask = named.get("attention_mask")
    if mask is None:
        mask = inputs[1] if len(inputs) > 1 else torch.ones(states.shape[:2], device=states.device)
    return mask


def _body_path(body: nn.Module, name: str) -> str:
    """Stage names are the original network's module paths; wrappers may nest it under ``model``."""
    prefix = getattr(body, "stage_prefix", "")
    return f"{prefix}{name}"
