"""The towers of a transformers image-text model (CLIPModel, SiglipModel) as zoo backbones' bodies.

transformers builds both towers in one network (``text_model``, ``vision_model``, their
projections, ``logit_scale`` and SigLIP's ``logit_bias``). Each of the card's views gets a module
that

- holds only its own tower's parts, registered under the network's own names (so the card's
  stages, ``vision_model.encoder.layers.3``, resolve, and training, ``.to(device)``, checkpoints
  and the exported graph see one tower, never the other);
- computes its embedding with transformers' own ``get_image_features`` / ``get_text_features``
  (``image_embeds`` / ``text_embeds``: the vectors the library compares), and the card's stages
  from the same pass;
- carries ``joint_scores``, the logit scale and bias the weights hold, which zero-shot
  classification multiplies the cosine by (``zoo.embed.towers.joint_scores``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zoo import LoadError, ModelCard

__all__ = ["tower_states", "PaddedToMaxLength", "tower_parts", "weights_scores", "check_scores"]

#: The card's tower -> the network's method that embeds it, and the nodes it answers.
_EMBEDS = {"image": ("get_image_features", "image_embeds"), "text": ("get_text_features", "text_embeds")}


def tower_parts(network: Any, card: ModelCard, tower: str) -> list[str]:
    """The network's top-level modules that make ``tower``: the text tower's are named by its
    stages and its projection (``text_model``, ``text_projection``); the image tower is every
    other module (``vision_model``, ``visual_projection``). Parameters directly on the network
    (the logit scale and bias) belong to neither."""
    assert card.text is not None
    text = {name.split(".", 1)[0] for name in (*card.text.stages, card.text.projection or "")} - {""}
    children = [name for name, _ in network.named_children()]
    missing = sorted(text - set(children))
    if missing:
        raise LoadError(f"model {card.name!r}: its text tower names {', '.join(missing)}, which "
                        f"{type(network).__name__} does not have; fix the card's text.stages / text.projection")
    return [name for name in children if (name in text) == (tower == "text")]


def weights_scores(network: Any, card: ModelCard) -> dict[str, float | None]:
    """The logit scale (``exp`` of the learned temperature, as the libraries multiply by it) and
    bias the weights hold."""
    scale_param = getattr(network, "logit_scale", None)
    if scale_param is None:
        raise LoadError(f"model {card.name!r}: {type(network).__name__} has no logit_scale, so its towers' cosine "
                        f"cannot be turned into scores; it is not an image-text model zoo knows")
    bias_param = getattr(network, "logit_bias", None)
    scores = {"logit_scale": float(scale_param.detach().float().exp().reshape(-1)[0]),
              "logit_bias": None if bias_param is None else float(bias_param.detach().float().reshape(-1)[0])}
    return scores


def check_scores(network: Any, card: ModelCard) -> None:
    """The scale and bias a card states agree with what its pretrained weights hold."""
    import math

    scores = weights_scores(network, card)
    assert card.joint is not None
    for key, stated in (("logit_scale", card.joint.logit_scale), ("logit_bias", card.joint.logit_bias)):
        held = scores[key]
        if stated is not None and (held is None or not math.isclose(stated, held, rel_tol=1e-3, abs_tol=1e-3)):
            raise LoadError(f"model {card.name!r}: the card's joint.{key} is {stated}, but the weights hold {held}; "
                            f"fix the card (or leave the value out: zoo reads it from the weights)")


def tower_states(network: Any, card: ModelCard, nodes: Sequence[str]) -> Any:
    """The body of one tower's backbone: ``{node: tensor}`` for the tower's embedding node and
    its stages (stage ``i`` is the tower's ``hidden_states[i]``). The card is the image card or
    its text view (``card.tower == "text"``)."""
    import torch.nn as nn

    tower = card.tower or card.modality
    method, embeds = _EMBEDS[tower]
    positions = {name: i for i, name in enumerate(card.stages)}
    unknown = [n for n in nodes if n not in positions and n != embeds]
    if unknown:
        raise LoadError(f"model {card.name!r}: unknown nodes {', '.join(unknown)} of its {tower} tower; use {embeds} "
                        f"or a stage: {', '.join(card.stages)}")
    parts = tower_parts(network, card, tower)
    scores = weights_scores(network, card)

    class Parts(nn.Module):
        """The tower's modules under the network's own names."""

    class TowerStates(nn.Module):
        stage_prefix = "model."

        def __init__(self) -> None:
            super().__init__()
            self.model = Parts()
            for name in parts:
                self.model.add_module(name, network.get_submodule(name))
            # the whole network computes through the parts registered above; kept out of the
            # module tree so that its other tower is never trained, moved or exported with this one
            self.__dict__["network"] = network
            self.nodes = tuple(nodes)
            self.hidden = any(n in positions for n in self.nodes)
            self.joint_scores = dict(scores)

        def outputs(self, out: Any) -> dict:
            return {node: out.hidden_states[positions[node]] if node in positions else out.pooler_output
                    for node in self.nodes}

    class ImageTower(TowerStates):
        def forward(self, pixel_values):
            return self.outputs(getattr(self.network, method)(pixel_values=pixel_values,
                                                              output_hidden_states=self.hidden))

    class TextTower(TowerStates):
        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            if attention_mask is not None and card.text.padding == "max_length":
                # trained on texts padded to max_length with every position attended (SigLIP):
                # the mask is taken, so every text graph has the same inputs, and is all ones
                attention_mask = attention_mask.new_ones(attention_mask.shape)
            return self.outputs(getattr(self.network, method)(input_ids=input_ids, attention_mask=attention_mask,
                                                              output_hidden_states=self.hidden))

    return (TextTower if tower == "text" else ImageTower)()


class PaddedToMaxLength:
    """A transformers tokenizer that always pads to ``max_length`` (SigLIP's text tower was
    trained that way: transformers' docs say to tokenize with ``padding="max_length"``), whatever
    padding its caller asks for; everything else is the tokenizer's own."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: Any, **options: Any) -> Any:
        options.update(padding="max_length", max_length=self.max_length, truncation=True)
        return self.tokenizer(texts, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tokenizer, name)
