"""Every built-in card whose architecture can be built offline: its real parameter count equals the
card's `params`, its embedding has the card's dim, and its stages, head and features exist.

Weights are random here (sources are tested separately); the registry drives the cases.
"""

from __future__ import annotations

import pytest
import torch

from zoo.catalog import load_registry
from zoo.loading import adapter_of, assemble
from zoo.plugins import PluginHost
from zoo.pulling import pull

# the hand-written cards; the plugins' generated catalogues have their own tests (test_*_catalog.py); a
# Hub model's architecture needs its config.json, which only the Hub has: image-text cards are checked
# against their repos' stored files in test_clip_cards.py
CARDS = [c for c in load_registry(host=PluginHost(), user_files=False).values()
         if c.origin.kind == "builtin" and ((c.modality == "image" and c.source.type != "hf")
                                            or c.source.type == "package")]


@pytest.mark.slow
@pytest.mark.parametrize("card", CARDS, ids=[c.name for c in CARDS])
def test_architecture_matches_its_card(card):
    adapter = adapter_of(card)
    fetched = pull(card) if card.adapter.type == "transformers" else None  # config.json ships with the files
    network = adapter.build(card, fetched)
    assert sum(p.numel() for p in network.parameters()) == card.params
    modules = dict(network.named_modules())
    assert card.head is None or card.head in modules
    assert all(stage in modules for stage in card.stages), [s for s in card.stages if s not in modules]
    backbone = assemble(card, network, adapter, fetched)
    with torch.no_grad():
        if card.modality == "image":
            x = torch.randn(2, 3, *card.input.size)
            assert backbone(x).shape == (2, card.embedding.dim)
            if card.features:
                features = assemble(card, network, adapter, fetched, features=list(card.features))(x)
                assert {k: v.shape[1] for k, v in features.items()} == dict(card.features)
        else:
            ids = torch.randint(1000, 2000, (2, 7))
            assert backbone(input_ids=ids, attention_mask=torch.ones_like(ids)).shape == (2, card.embedding.dim)
