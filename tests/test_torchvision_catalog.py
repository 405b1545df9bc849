"""The torchvision plugin's generated catalogue: a card for every classification weight, still what
the generator makes, and (one card per family, or all with ZOO_TEST_ALL_CATALOGUE=1) built with
random weights through zoo's own path: parameters, embedding, stages, features, preprocessing.

The weights themselves are not downloaded here; the conventions test checks every card's numbers
against the installed weight enums.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision

import zoo
from zoo.card import Origin
from zoo.loading import adapter_of
from zoo.preprocess import image_array
from zoo.registries import parse_models
from zoo_torchvision import CATALOG, families, generate

DATA = json.loads(CATALOG.read_text(encoding="utf-8"))
MODELS = DATA["models"]
CARDS = {c.name: c for c in parse_models(MODELS, Origin("plugin", "zoo_torchvision", CATALOG))}
WEIGHTS = {generate.card_name(arch, w): (arch, w) for arch, w in generate.all_weights()}


def smallest_per_family(cards):
    """One card per family, chosen by rule: the fewest parameters, then the name."""
    chosen = {}
    for card in sorted(cards, key=lambda c: (c.params, c.name)):
        chosen.setdefault(card.family, card)
    return sorted(chosen.values(), key=lambda c: c.name)


SAMPLE = smallest_per_family(CARDS.values())
ALL = sorted(CARDS.values(), key=lambda c: c.name)


# --------------------------------------------------------------------------- the file


def test_every_weight_has_exactly_one_card_or_a_stated_skip():
    assert DATA["catalogue"] == 1 and DATA["generated_by"] == generate.GENERATED_BY
    assert DATA["library"] == generate.LIBRARY, "torchvision changed: run python -m zoo_torchvision.generate"
    skipped = DATA.get("skipped", {})
    assert set(MODELS).isdisjoint(skipped)
    assert set(MODELS) | set(skipped) == set(WEIGHTS)
    assert len(WEIGHTS) == 115  # torchvision 0.29.1: 80 architectures
    # the one weight without ImageNet accuracy: its classifier has no valid values
    assert set(skipped) == {name for name, (_, w) in WEIGHTS.items() if generate.skip_reason(w)}
    assert set(skipped) == {"vgg16.imagenet1k_features"}
    for name, table in MODELS.items():
        assert table["source"]["weights"] == generate.weights_id(WEIGHTS[name][1])


def test_every_card_parses_with_the_families_of_the_rules():
    assert len(CARDS) == len(MODELS)
    assert {c.family for c in CARDS.values()} == {f.name for f in families.FAMILIES}
    defaults = {arch: w for arch, w in generate.all_weights() if w is type(w).DEFAULT}
    assert {n for n in CARDS if "." not in n} == set(defaults)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "squeezenet1_1"])
def test_the_generator_still_makes_the_stored_card(name):
    arch, weights = WEIGHTS[name]
    got_name, table = generate.card_table(arch, weights)
    assert got_name == name
    assert json.loads(json.dumps(table)) == MODELS[name], "stale catalogue: run python -m zoo_torchvision.generate"


def test_listing_the_catalogue_imports_neither_torch_nor_torchvision():
    code = ("import sys, zoo; names = [c.name for c in zoo.list_models()]; "
            "assert 'resnet50.imagenet1k_v1' in names, names; "
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- built with random weights


@pytest.fixture(scope="module")
def photo():
    """A real photo at a non-square size (both orientations of resize and crop matter)."""
    sklearn = pytest.importorskip("sklearn.datasets")
    from PIL import Image

    return Image.fromarray(sklearn.load_sample_images().images[0]).resize((331, 250))


def check_card(card, photo):
    """The card against the network zoo builds for it (random weights): parameters, head and stages
    on the meta device, the embedding and features through zoo.load, the preprocessing against the
    weight's own eval transform. Where the adapter does not build what torchvision's builder builds
    for the weights, that gap (not the card) is what the failure names."""
    arch, weights = card.adapter.get("arch"), torchvision.models.get_weight(card.source.get("weights"))
    with generate.on_meta():
        built = adapter_of(card).build(card, None)  # what zoo.load builds, without the memory
    reference = generate.meta_network(arch, weights)
    gap = builder_gap(built, reference, families.pretrained_kwargs(arch, weights))
    assert not gap, f"the torchvision adapter does not build {arch} as torchvision's builder does: {gap}"
    assert sum(p.numel() for p in built.parameters()) == card.params
    modules = dict(built.named_modules())
    assert card.head in modules
    assert all(stage in modules for stage in card.stages), [s for s in card.stages if s not in modules]

    # on the meta device: zoo's own load, cut and forward, shapes only (no arithmetic, no memory)
    with generate.on_meta(), torch.no_grad():
        embedding = zoo.load(card, pretrained=False)(torch.randn(2, 3, *card.input.size))
        assert embedding.shape == (2, card.embedding.dim)
        if card.features:  # channels do not depend on the size: the smallest input with a stride-32 map
            side = max(32, -(-weights.meta["min_size"][0] // 32) * 32)
            outputs = zoo.load(card, pretrained=False, features=list(card.features))(torch.randn(1, 3, side, side))
            assert {k: v.shape[1] for k, v in outputs.items()} == dict(card.features)

    expected = weights.transforms()(photo).numpy()
    assert np.abs(image_array(photo, card.input) - expected).max() < 1e-6


def builder_gap(built, reference, kwargs) -> str:
    """How the adapter's network differs from the one torchvision's builder makes for the weights
    (parameter count, or a builder argument it keeps as an attribute), or ''."""
    got, want = (sum(p.numel() for p in m.parameters()) for m in (built, reference))
    if got != want:
        return f"{got} parameters instead of {want}"
    for key in kwargs:
        if getattr(built, key, None) != getattr(reference, key, None):
            return f"{key}={getattr(built, key, None)!r} instead of {getattr(reference, key, None)!r}"
    return ""


@pytest.mark.slow
@pytest.mark.parametrize("card", SAMPLE, ids=[c.name for c in SAMPLE])
def test_the_smallest_card_of_each_family_builds_as_it_says(card, photo):
    check_card(card, photo)


@pytest.mark.skipif(not os.environ.get("ZOO_TEST_ALL_CATALOGUE"),
                    reason="set ZOO_TEST_ALL_CATALOGUE=1 to build every card")
@pytest.mark.slow
@pytest.mark.parametrize("card", ALL, ids=[c.name for c in ALL])
def test_every_card_builds_as_it_says(card, photo):
    check_card(card, photo)
