"""Per-layer features of a frozen backbone: each cut candidate's pooled output, from one pass.

Shared by ``zoo probe`` (every layer of every backbone), ``zoo finetune``'s choice of cut and a
run whose backbone is cut elsewhere than its card says. One frozen pass per set computes the
embedding and every requested feature (:func:`zoo.frozen.graph.frozen_graph`), through the
feature cache (:mod:`zoo.frozen.features`), keyed per layer. It loads and pulls the backbone
itself, so it sits above :mod:`zoo.loading` and :mod:`zoo.frozen` (inside ``zoo.frozen`` it made
``zoo.loading``, which attaches a frozen pass, import back up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["layer_features", "cut_features", "layer_record", "maps_on_a_grid"]


def layer_features(card: Any, labelled: Any, held_out: Any, *, engine: str, say: Callable[[str], None],
                   layers: Sequence[str] | None = None, device: Any = None, workers: int | None = None,
                   layout: bool = False) -> tuple[dict[str, tuple[Any, Any]], dict[str, Any]]:
    """``{layer: (labelled features, held-out features or None)}`` for the card's embedding node
    and its ``features`` (or only ``layers``), pooled, from one frozen pass per set through the
    feature cache. Shared by the probe and ``zoo finetune``'s choice of cut. ``layout``: each
    feature that is a map (N, C, H, W) also pooled on a grid (``NAME@2``,
    :func:`zoo.backbone.pool_feature`), as candidates that keep where things are."""
    from zoo.backbone import cut_nodes
    from zoo.frozen.choice import LazyPass
    from zoo.frozen.features import cached_features
    from zoo.frozen.graph import EMBEDDING
    from zoo.loading import load
    from zoo.pulling import pull

    fetched = pull(card, quiet=True)
    wanted = list(card.features) if layers is None else list(layers)
    layers = [name for name in wanted if name != card.embedding.node]
    nodes = cut_nodes([card.embedding.node, *layers])
    backbone = load(card, features=nodes if layers else None, device=device)
    if layout and layers:
        layers += maps_on_a_grid(backbone, layers)
    frozen = LazyPass(backbone, fetched, engine=engine, features=layers, check=[e.item for e in labelled.examples],
                      device=device, workers=workers, log=say)
    train, record = cached_features(card, fetched, labelled, frozen, layers, log=say)
    test = cached_features(card, fetched, held_out, frozen, layers, log=say)[0] if held_out is not None else {}
    names = {EMBEDDING: card.embedding.node}
    return ({names.get(n, n): (train[n], test.get(n)) for n in (EMBEDDING, *layers)},
            {"cache": "hit" if record["hit"] else "computed", "seconds": round(record["seconds"], 2),
             **record.get("engine", {})})


def maps_on_a_grid(backbone: Any, layers: Sequence[str]) -> list[str]:
    """The grid-pooled names (``NAME@2``) of the ``layers`` that are spatial maps, found by one
    generated input through the loaded backbone (tens of milliseconds): token sequences and
    vectors have no layout to keep."""
    import torch

    from zoo.backbone import layout_name, split_layer
    from zoo.samples import generated_items

    plain = [name for name in layers if split_layer(name)[1] is None]
    if not plain:
        return []
    batch = backbone.preprocess(generated_items(backbone.card, 1, seed=5))
    device = next(backbone.parameters()).device
    with torch.no_grad():
        outputs = backbone(**{k: v.to(device) for k, v in batch.items()}) if isinstance(batch, dict) else \
            backbone(batch.to(device))
    return [layout_name(name) for name in plain if outputs[name].dim() == 4 and min(outputs[name].shape[2:]) >= 2]


def cut_features(card: Any, labelled: Any, held_out: Any, cut: Sequence[str], *, engine: str,
                 say: Callable[[str], None], device: Any = None, workers: int | None = None,
                 ) -> tuple[Any, Any, dict[str, Any]]:
    """The embedding of a backbone cut at ``cut`` (one layer, or several joined:
    :func:`zoo.fitting.cuts.joined`) for ``labelled`` and ``held_out`` (None without one), from
    :func:`layer_features`' per-layer cache, and its record."""
    from zoo.fitting.cuts import joined

    features, record = layer_features(card, labelled, held_out, engine=engine, say=say, layers=list(cut),
                                      device=device, workers=workers)
    x = joined({name: pair[0] for name, pair in features.items()}, cut)
    x_test = joined({name: pair[1] for name, pair in features.items()}, cut) if held_out is not None else None
    return x, x_test, record


def layer_record(record: dict[str, Any], layers: Any) -> dict[str, Any]:
    """A :func:`layer_features` record in the shape of a run's feature records."""
    return {"hit": record["cache"] == "hit", "seconds": record["seconds"], "layers": list(layers),
            "engine": {k: v for k, v in record.items() if k not in ("cache", "seconds")}}
