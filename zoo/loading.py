"""``zoo.load``: from a name to a Backbone cut at its recommended point, weights verified."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.backbone import Backbone
from zoo.card import ModelCard
from zoo.errors import LoadError
from zoo.fetched import Fetched
from zoo.plugins import get_host
from zoo.protocols import Adapter
from zoo.pulling import pull, resolve_card

__all__ = ["load", "adapter_of", "assemble"]


def adapter_of(card: ModelCard) -> Adapter:
    """The loaded adapter for this card, or an error saying which plugin is missing."""
    provided = get_host().adapters().get(card.adapter.type)
    if provided is None:
        raise LoadError(f"model {card.name!r}: no loaded plugin provides adapter type {card.adapter.type!r}. "
                        f"Run `zoo plugins` to see which plugins are broken or disabled")
    return provided.value


def load(
    model: str | ModelCard,
    *,
    features: Sequence[str] | None = None,
    head: str | None = None,
    pretrained: bool = True,
    device: Any = None,
    offline: bool | None = None,
    engine: str | None = None,
    cut: Sequence[str] | None = None,
    registry_files: Sequence[str | Path] = (),
) -> Backbone:
    """A :class:`~zoo.backbone.Backbone` for ``model``, in eval mode.

    - default: forward returns the embedding at the card's cut point (``backbone.feature_dim``);
    - ``features=[...]``: forward returns ``{name: tensor}`` for named intermediate features
      (the card's ``features`` or ``stages``);
    - ``head="pretrained"``: the original classifier is kept, so forward returns its logits;
    - ``pretrained=False``: the same architecture with random weights (nothing is downloaded
      where the architecture is known without files; transformers models need their config
      and so cannot).

    - ``engine="auto" | "onnxruntime" | "torch"``: :meth:`Backbone.embed` runs through a frozen
      pass (:func:`zoo.frozen.frozen_pass`): on CPU, ``auto`` is the backbone compiled to ONNX
      (cached, validated against PyTorch) in onnxruntime, or PyTorch where that is not possible.
      The module itself stays a PyTorch module; once its weights change, ``embed`` is PyTorch's.

    - ``cut=[layer, ...]``: the embedding is taken there instead of at the card's cut point: one of
      the card's ``features`` (pooled), or several joined (:func:`zoo.backbone.join_cut`); what
      ``zoo finetune --cut`` and ``zoo probe`` choose.

    The files are pulled (verified, cached) first; offline, a cached model loads and an uncached
    one raises :class:`zoo.errors.OfflineError`.
    """
    card = resolve_card(model, registry_files)
    if engine is not None and (features or head):
        raise LoadError(f"model {card.name!r}: engine= applies to the embedding; leave out features= and head=")
    adapter = adapter_of(card)
    fetched = pull(card, offline=offline) if pretrained else None
    network = adapter.build(card, fetched)
    backbone = assemble(card, network, adapter, fetched, features=features, head=head, cut=cut)
    if device is not None:
        backbone = backbone.to(device)
    if engine is not None:
        from zoo.frozen.choice import frozen_pass

        backbone.use_engine(frozen_pass(backbone, fetched, engine=engine, device=device))
    return backbone


def assemble(
    card: ModelCard,
    network: Any,
    adapter: Adapter,
    fetched: Fetched | None,
    *,
    features: Sequence[str] | None = None,
    head: str | None = None,
    cut: Sequence[str] | None = None,
) -> Backbone:
    """Cut a built network at the card's cut point (or at ``cut``, or at the requested features)."""
    if cut:
        if features or head:
            raise LoadError(f"model {card.name!r}: cut= makes the embedding; leave out features= and head=")
        from zoo.backbone import cut_dim

        cut_dim(card, cut)  # names the layers the card knows, before anything is built
    if features:
        known = set(card.features) | set(card.stages) | {card.embedding.node}
        unknown = [f for f in features if f not in known]
        if unknown:
            raise LoadError(f"model {card.name!r}: unknown features {', '.join(unknown)}; "
                            f"choose from {', '.join(list(card.features) or card.stages)}")
    if head not in (None, "pretrained"):
        raise LoadError(f"head must be None or 'pretrained', not {head!r}: new heads come with `zoo finetune`")
    head_module = None
    if head == "pretrained":
        if not card.head:
            raise LoadError(f"model {card.name!r} has no pretrained head (it is an encoder)")
        head_module = network.get_submodule(card.head)
    from zoo.backbone import cut_nodes

    nodes = list(features) if features else cut_nodes(cut) if cut else [card.embedding.node]
    body = adapter.extractor(card, network, nodes)
    tokenizer = adapter.tokenizer(card, fetched) if card.modality == "text" and fetched is not None else None
    backbone = Backbone(card, body, features=features, head=head_module, tokenizer=tokenizer, cut=cut)
    return backbone.eval()
