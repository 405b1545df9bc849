"""The `torchvision` adapter: an architecture from ``torchvision.models`` by name, then its weights."""

from __future__ import annotations

from collections.abc import Sequence

from zoo import Fetched, Field, LoadError, ModelCard, STATE_DICT_FIELDS, load_into, weights_file


class TorchvisionAdapter:
    """A ``torchvision.models`` architecture built by name with ``weights=None``, then loaded."""

    name = "torchvision"
    fields = {
        "arch": Field(str, required=True, help="builder name in torchvision.models, e.g. resnet50"),
        **STATE_DICT_FIELDS,
    }

    def build(self, card: ModelCard, fetched: Fetched | None):
        """The network torchvision's builder makes for the card's weights (a SWAG ViT at its 384-518
        px, GoogLeNet and Inception v3 re-normalising their input inside), then the file loaded."""
        import torchvision

        from zoo_torchvision.families import after_load, pretrained_kwargs

        from zoo_torchvision.detection import build, is_dense

        arch = card.adapter.get("arch")
        try:
            weights = torchvision.models.get_weight(card.source.get("weights")) if card.source.type == "torchvision" \
                else None
        except (ValueError, KeyError, AttributeError):
            weights = None  # a card of another source (a URL, a file) names no enum: the plain builder
        if weights is not None and is_dense(arch):  # a detector or segmenter: as its builder makes it for the weights
            network = build(arch, weights)
            if fetched is not None:
                load_into(network, weights_file(fetched), model=card.name, options=card.adapter.options)
            return network
        try:
            network = torchvision.models.get_model(arch, weights=None,
                                                   **(pretrained_kwargs(arch, weights) if weights else {}))
        except ValueError:
            raise LoadError(f"model {card.name!r}: torchvision has no architecture {arch!r} "
                            f"(torchvision {torchvision.__version__}); fix the card's adapter.arch") from None
        if fetched is not None:
            load_into(network, weights_file(fetched), model=card.name, options=card.adapter.options)
        return (after_load(arch, network) if weights else network).eval()

    def extractor(self, card: ModelCard, model, nodes: Sequence[str]):
        from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

        from zoo_torchvision.detection import body_path

        if hasattr(model, "backbone") and (hasattr(model, "transform") or hasattr(model, "classifier")):
            # a detector or segmenter: cut inside its backbone's body
            return _Within(body_path(model), model.get_submodule(body_path(model)), nodes)
        try:
            return create_feature_extractor(model, return_nodes={n: n for n in nodes})
        except ValueError as exc:
            _, eval_nodes = get_graph_node_names(model)
            raise LoadError(f"model {card.name!r}: cannot cut at {', '.join(nodes)}: {exc}. "
                            f"Nodes of this network include: {', '.join(eval_nodes[-8:])}") from None

    def tokenizer(self, card: ModelCard, fetched: Fetched):
        return None


def _Within(path: str, body, nodes: Sequence[str]):  # noqa: N802 - a module factory (torch loads lazily)
    """An extractor of ``nodes`` (``PATH.child`` names) inside the sub-network at ``path`` (a
    detector's backbone body, which FX traces where the whole detector does not), registered
    under the same path so the card's stage names find its modules."""
    from torch import nn
    from torchvision.models.feature_extraction import create_feature_extractor

    prefix = path + "."
    outside = [n for n in nodes if not n.startswith(prefix)]
    if outside:
        raise LoadError(f"cannot cut a detector at {', '.join(outside)}: its cards cut inside {path}")

    class Within(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            holder: nn.Module = self
            *parents, last = path.split(".")
            for part in parents:
                holder.add_module(part, nn.Module())
                holder = holder.get_submodule(part)
            holder.add_module(last, create_feature_extractor(body, return_nodes={n[len(prefix):]: n for n in nodes}))
            self.__dict__["_extract"] = holder.get_submodule(last)  # not registered twice: one name per weight

        def forward(self, x):
            return self._extract(x)

    return Within()
