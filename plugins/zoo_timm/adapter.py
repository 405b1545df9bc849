"""The `timm` adapter: a timm architecture created without weights, then loaded from the pulled files."""

from __future__ import annotations

from collections.abc import Sequence

from zoo import Fetched, Field, LoadError, ModelCard, STATE_DICT_FIELDS, load_into, weights_file


class TimmAdapter:
    """A timm architecture created by name without weights, then loaded from the pulled files."""

    name = "timm"
    fields = {
        "arch": Field(str, required=True, help="timm model name, e.g. resnet50.a1_in1k"),
        **STATE_DICT_FIELDS,
    }

    def build(self, card: ModelCard, fetched: Fetched | None):
        timm = _timm(card)
        arch = card.adapter.get("arch")
        try:
            network = timm.create_model(arch, pretrained=False)
        except RuntimeError as exc:
            raise LoadError(f"model {card.name!r}: timm cannot create {arch!r}: {exc}; fix the card's adapter.arch") from None
        if fetched is not None:
            load_into(network, weights_file(fetched), model=card.name, options=card.adapter.options)
        return network.eval()

    def extractor(self, card: ModelCard, model, nodes: Sequence[str]):
        timm = _timm(card)
        try:
            return timm.models.create_feature_extractor(model, return_nodes={n: n for n in nodes})
        except ValueError as exc:
            raise LoadError(f"model {card.name!r}: cannot cut at {', '.join(nodes)}: {exc}") from None

    def tokenizer(self, card: ModelCard, fetched: Fetched):
        return None


def _timm(card: ModelCard):
    try:
        import timm
    except ImportError:
        raise LoadError(f"model {card.name!r} needs timm: pip install 'zoo[timm]'") from None
    return timm
