"""timm's generated catalogue (plugins/zoo_timm/catalog.json): every card valid and current, and a
sample across families built through zoo's real path and checked against timm's own numbers.

``ZOO_TEST_ALL_CATALOGUE=1`` runs the sample's checks on every card: seconds a card for most, minutes
for the largest, which need tens of GB of memory (vit_5b has five billion parameters).
"""

from __future__ import annotations

import functools
import json
import os
from collections import defaultdict

import pytest
import torch

import zoo
from zoo.backbone import pool_feature
from zoo.card import Origin
from zoo.registries import parse_models
from zoo.threads import torch_threads

timm = pytest.importorskip("timm")
generate = pytest.importorskip("zoo_timm.generate")

CATALOG = json.loads(generate.CATALOG.read_text(encoding="utf-8"))
TABLES = CATALOG["models"]
ORIGIN = Origin("plugin", "zoo_timm", generate.CATALOG)
# the models the hand-written models.toml had (tests elsewhere use them) and its cut choices
HAND_WRITTEN = {
    "timm/resnet50.a1_in1k": ("global_pool.flatten", "fc"),
    "timm/convnext_tiny.fb_in1k": ("head.pre_logits", "head.fc"),
    "timm/efficientnet_b0.ra_in1k": ("global_pool.flatten", "classifier"),
    "timm/vit_small_patch16_224.augreg_in21k_ft_in1k": ("fc_norm", "head"),
}


def cost(table: dict) -> int:
    """What building and running a card costs, roughly: parameters times input pixels."""
    height, width = table["input"]["size"]
    return table["params"] * height * width


def sample(tables: dict[str, dict], families: int = 12, min_cards: int = 10) -> list[str]:
    """One card per family, chosen by rule: of the families with at least ``min_cards`` cards, the
    ``families`` whose cheapest card (:func:`cost`) is cheapest, each with that card; plus the
    cheapest squash-crop card and the cheapest feature extractor when the sample has none (their
    preprocessing and cut differ). Cheap, so the whole sample runs in seconds."""
    by_family: dict[str, list[str]] = defaultdict(list)
    for name, table in tables.items():
        by_family[table["family"]].append(name)

    def cheapest(names):
        return min(names, key=lambda n: (cost(tables[n]), n))

    picks = sorted((cheapest(names) for names in by_family.values() if len(names) >= min_cards),
                   key=lambda n: (cost(tables[n]), n))
    chosen = picks[:families]
    for wanted in (lambda t: t["input"].get("crop_mode") == "squash", lambda t: t["task"] == "image-feature-extraction"):
        if not any(wanted(tables[n]) for n in chosen) and any(wanted(t) for t in tables.values()):
            chosen.append(cheapest([n for n, t in tables.items() if wanted(t)]))
    return sorted(chosen)


SAMPLE = sample(TABLES)
EVERY = os.environ.get("ZOO_TEST_ALL_CATALOGUE") == "1"


def test_every_card_is_valid_and_names_its_timm_model():
    assert CATALOG["catalogue"] == 1 and CATALOG["generated_by"] == generate.GENERATED_BY
    assert CATALOG["library"] == f"timm {timm.__version__}", "regenerate: python -m zoo_timm.generate --jobs 2"
    cards = parse_models(TABLES, ORIGIN, str(generate.CATALOG))
    assert len(cards) == len(TABLES) > 1000
    for card in cards:
        arch = card.adapter.get("arch")
        assert card.name == f"timm/{arch}" and card.source.get("repo") == card.name, card.name
        assert card.source.type == "hf" and card.adapter.type == "timm", card.name
        assert not card.metrics, f"{card.name}: timm gives no offline accuracy"
        assert (card.head is not None) == (card.task == "image-classification"), card.name
        assert card.provenance == generate.PROVENANCE and card.family in card.tags, card.name
    assert set(TABLES) >= set(HAND_WRITTEN)
    assert not {f"timm/{n}" for n in CATALOG["skipped"]} & set(TABLES)
    assert {f"timm/{n}" for n in CATALOG["skipped"]} | set(TABLES) == {f"timm/{n}" for n in timm.list_pretrained()}


@pytest.mark.parametrize("name", sorted(TABLES, key=lambda n: (TABLES[n]["params"], n))[:3])
def test_catalogue_is_what_the_generator_makes_now(name):
    assert generate.generate_card(TABLES[name]["adapter"]["arch"]) == TABLES[name], \
        "catalog.json is stale: python -m zoo_timm.generate --jobs 2"


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_the_rules_make_the_hand_written_cut_points(name):
    node, head = HAND_WRITTEN[name]
    assert (TABLES[name]["embedding"]["node"], TABLES[name]["head"]) == (node, head)


@functools.lru_cache(maxsize=1)
def photo():
    """A real photo at a non-square size, so the resize and the crop both matter."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    return Image.fromarray(load_sample_images().images[0]).resize((331, 248), Image.BICUBIC)


def check_card(name: str, threads: int | None = None) -> None:
    """One card through zoo's real path with random weights, against timm's model and transform.

    ``threads``: PyTorch's threads for the block (the sample's small models at a batch of two ran
    over ten times faster with one thread than with two spinning on two shared cores)."""
    import numpy as np
    from timm.data import create_transform, resolve_data_config

    from zoo.preprocess import image_array

    (card,) = parse_models({name: TABLES[name]}, ORIGIN)
    arch = card.adapter.get("arch")
    with torch_threads(threads or torch.get_num_threads()), torch.no_grad():
        model = timm.create_model(arch, pretrained=False)
        assert sum(p.numel() for p in model.parameters()) == card.params
        for stage in card.stages:
            model.get_submodule(stage)
        batch = torch.randn(2, 3, *card.input.size)
        assert zoo.load(card, pretrained=False)(batch).shape == (2, card.embedding.dim)
        if card.features:
            outputs = zoo.load(card, pretrained=False, features=list(card.features))(batch[:1])
            assert {k: pool_feature(v).shape[1] for k, v in outputs.items()} == dict(card.features)
    reference = create_transform(**resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg(arch).to_dict()))
    np.testing.assert_allclose(image_array(photo(), card.input), reference(photo()).numpy(), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", SAMPLE)
def test_sample_builds_cuts_and_preprocesses_like_timm(name):
    check_card(name, threads=1)


def test_sample_spans_families_and_crop_modes():
    assert len({TABLES[n]["family"] for n in SAMPLE}) >= 12
    assert any(TABLES[n]["input"].get("crop_mode") == "squash" for n in SAMPLE)


@pytest.mark.parametrize("name", sorted(TABLES) if EVERY else [
    pytest.param("all", marks=pytest.mark.skip(reason="set ZOO_TEST_ALL_CATALOGUE=1 to check every card"))])
@pytest.mark.slow
def test_every_card_builds_cuts_and_preprocesses_like_timm(name):
    check_card(name)
