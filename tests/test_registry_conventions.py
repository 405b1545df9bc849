"""Conventions every shipped registry entry keeps, checked against the installed libraries.

Parametrized over the registry itself (timm's style): a new entry is tested the moment it is added.
Building architectures and loading weights is tested with the sources and adapters.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re

import pytest

from zoo.catalog import load_registry
from zoo.plugins import PluginHost

REGISTRY = load_registry(host=PluginHost(), user_files=False)  # at collection: never the user's own files
CARDS = list(REGISTRY.values())
BY_SOURCE = {kind: [c for c in CARDS if c.source.type == kind] for kind in {c.source.type for c in CARDS}}


def ids(cards):
    return [c.name for c in cards]


@pytest.mark.parametrize("card", CARDS, ids=ids(CARDS))
def test_common_fields(card):
    assert card.name not in REGISTRY.unavailable, REGISTRY.unavailable.get(card.name)
    assert card.description and "\n" not in card.description
    assert card.license
    for url in (card.homepage, card.paper):
        assert url is None or url.startswith("https://")
    assert card.embedding.dim > 0 and card.embedding.node
    if card.modality == "image":
        assert len(card.input.mean) == len(card.input.std) == 3
        assert all(0 < s <= 1 for s in card.input.std) and all(0 <= m < 1 for m in card.input.mean)
        if card.task == "image-classification":
            assert card.head, "image classifiers name the head a new one replaces"
    if card.modality == "text":
        assert card.embedding.pooling in ("mean", "cls", "pooler")
        assert card.input.max_length and card.input.max_length <= 8192


#: torchvision's classification weights (ImageNet numbers, eval transforms); its detection and
#: segmentation weights' cards are checked against their enums by tests/test_detection.py and
#: tests/test_segmentation.py (COCO and VOC numbers, the detector's own transform)
CLASSIFIERS = [c for c in BY_SOURCE.get("torchvision", []) if c.task == "image-classification"]


@pytest.mark.slow
@pytest.mark.parametrize("card", CLASSIFIERS, ids=ids(CLASSIFIERS))
def test_torchvision_cards_match_the_installed_weight_enums(card):
    torchvision = pytest.importorskip("torchvision")
    from torchvision.transforms import InterpolationMode

    weights = torchvision.models.get_weight(card.source.get("weights"))
    assert card.source.get("url") == weights.url
    assert card.params == weights.meta["num_params"]
    metrics = weights.meta["_metrics"]["ImageNet-1K"]
    assert card.metrics["imagenet-1k/acc@1"] == pytest.approx(metrics["acc@1"])
    assert card.metrics["imagenet-1k/acc@5"] == pytest.approx(metrics["acc@5"])
    transform = weights.transforms()
    assert list(card.input.size) == list(transform.crop_size) * (2 // len(transform.crop_size))
    assert card.input.resize == transform.resize_size[0]
    assert card.input.mean == pytest.approx(transform.mean) and card.input.std == pytest.approx(transform.std)
    assert InterpolationMode(card.input.interpolation) == transform.interpolation
    (spec,) = card.files
    assert spec.name == weights.url.rsplit("/", 1)[-1]
    assert re.search(rf"-{spec.sha256_prefix}\.pth$", spec.name)
    assert card.adapter.get("arch") == weights.__class__.__name__.split("_Weights")[0].lower()


@pytest.mark.parametrize("card", BY_SOURCE.get("package", []), ids=ids(BY_SOURCE.get("package", [])))
def test_package_cards_match_the_installed_files(card):
    package = card.source.get("package")
    pytest.importorskip(package, reason=f"pip install {card.source.get('distribution')}")
    root = importlib.resources.files(package) / card.source.get("resource")
    assert card.files, "offline entries pin every file they load"
    for spec in card.files:
        target = root if root.is_file() else root / spec.name
        data = target.read_bytes()
        assert hashlib.sha256(data).hexdigest() == spec.sha256, spec.name
        assert len(data) == spec.size


TIMM_CARDS = [c for c in CARDS if c.adapter.type == "timm" and c.source.type == "hf"]


@pytest.mark.parametrize("card", TIMM_CARDS, ids=ids(TIMM_CARDS))
def test_timm_cards_match_timms_pretrained_configs(card):
    timm = pytest.importorskip("timm")
    cfg = timm.models.get_pretrained_cfg(card.adapter.get("arch"))
    assert card.source.get("repo") == f"timm/{card.adapter.get('arch')}"
    assert tuple(cfg.input_size[1:]) == card.input.size
    assert card.input.mean == pytest.approx(cfg.mean) and card.input.std == pytest.approx(cfg.std)
    assert card.input.interpolation == cfg.interpolation
    # timm's own eval transform is the reference (it floors size / crop_pct: 224 / 0.95 -> 235)
    from timm.data import create_transform, resolve_data_config
    from torchvision.transforms import Resize

    reference = create_transform(**resolve_data_config(pretrained_cfg=cfg.to_dict()))
    resize = next(t for t in reference.transforms if isinstance(t, Resize))
    if card.input.crop_mode == "squash":  # both sides: zoo scales the crop's shape by resize / its shorter side
        height, width = card.input.size
        scale = card.input.resize / min(height, width)
        assert [int(height * scale), int(width * scale)] == list(resize.size)
    else:
        assert card.input.resize == (resize.size if isinstance(resize.size, int) else resize.size[0])


def test_every_catalogue_card_passes_the_full_check_and_equals_its_fast_build():
    """A generated catalogue's cards are listed as built by card_from_table and checked when
    used (zoo.registries.read_catalogue): here every shipped one is checked now, and must be the
    card the listing showed."""
    checked = 0
    for card in CARDS:
        if card.origin.path is not None and card.origin.path.suffix == ".json":
            assert REGISTRY.card(card.name) == card, card.name  # card() runs parse_card + the plugin fields
            checked += 1
    assert checked >= 100  # torchvision's (and timm's, when timm is installed)
