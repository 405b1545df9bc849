"""Generate zoo cards for torchvision's classification weights: ``python -m zoo_torchvision.generate``.

One card per weight of ``list_models(module=torchvision.models)`` x ``get_model_weights()``, every
value from torchvision itself:

- the weight's meta: ``num_params``, ``_metrics`` (ImageNet-1K acc@1 and acc@5), ``_ops``
  (GFLOPS), ``_file_size`` (MB), ``recipe`` (the homepage), ``_docs`` (the description's second
  half), ``license`` where torchvision states one (SWAG);
- its eval transform ``weights.transforms()``: crop, resize, mean, std, interpolation;
- its URL, whose file name carries the sha256 prefix torch.hub checks;
- the paper: the first arXiv link of the builder's docstring (none when it has none);
- where to cut it: the rules of :mod:`zoo_torchvision.families`, applied to the architecture as
  the builder makes it for that weight, built under ``torch.device("meta")`` (exact parameters, no
  memory, no init), and checked here with torchvision's feature extraction run on a meta tensor.

Names: the architecture for the enum's DEFAULT weight (``resnet50`` = ``IMAGENET1K_V2``), and
``<arch>.<member lower-cased>`` for the others (``resnet50.imagenet1k_v1``).

The catalogue (``catalog.json`` beside this file) is written atomically, one card per line, sorted
by name; weights that get no card are listed under ``skipped`` with the reason. Rerun it when
torchvision changes; the output is shipped, and ``zoo list`` never imports torch to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import posixpath
import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import unquote, urlsplit

import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification

from zoo import render_catalogue, write_catalogue
from zoo_torchvision import families
from zoo_torchvision.source import hash_prefix

CATALOG = Path(__file__).with_name("catalog.json")
GENERATED_BY = "python -m zoo_torchvision.generate"
LIBRARY = f"torchvision {torchvision.__version__.split('+')[0]}"  # 0.29.1+cu130: the build tag is no version
#: torchvision's weights license, as the built-in cards always said; a weight's meta may state another
DEFAULT_LICENSE = "BSD-3-Clause"
#: SPDX ids of the licenses torchvision's meta links to (an unknown link stops the generator: read
#: it, then add it). SWAG's LICENSE and README: "released under the CC-BY-NC 4.0 license".
LICENSES = {"https://github.com/facebookresearch/SWAG/blob/main/LICENSE": "CC-BY-NC-4.0"}
HASH_NOTE = ("Full sha256 unknown offline: only the 8-hex prefix in the file name is checked; the full digest is "
             "trusted on first pull and recorded in the pull record.")
_ARXIV = re.compile(r"https?://arxiv\.org/abs/[0-9]{4}\.[0-9]{4,5}")
_RST_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_+")


class Skipped(Exception):
    """A weight that gets no card; the message says why."""


# --------------------------------------------------------------------------- the weights


def all_weights() -> Iterator[tuple[str, Any]]:
    """(architecture, weight) for every classification weight torchvision has, in a fixed order:
    architectures by name, each enum's members in definition order."""
    for arch in sorted(torchvision.models.list_models(module=torchvision.models)):
        for weights in torchvision.models.get_model_weights(arch):
            yield arch, weights


def card_name(arch: str, weights: Any) -> str:
    """``arch`` for the enum's DEFAULT weight, ``arch.<member lower-cased>`` for the others."""
    return arch if weights is type(weights).DEFAULT else f"{arch}.{weights.name.lower()}"


def weights_id(weights: Any) -> str:
    """The name ``torchvision.models.get_weight`` takes: ``ResNet50_Weights.IMAGENET1K_V2``."""
    return f"{type(weights).__name__}.{weights.name}"


def skip_reason(weights: Any) -> str | None:
    """Why a weight gets no card, or None. A weight without ImageNet accuracy (NaN in its meta: VGG16's
    IMAGENET1K_FEATURES, whose classifier torchvision says has missing values) is not a classifier,
    and a card's accuracy is what the conventions test checks against the enum."""
    metrics = weights.meta.get("_metrics", {}).get("ImageNet-1K", {})
    if not all(isinstance(metrics.get(k), float) and math.isfinite(metrics[k]) for k in ("acc@1", "acc@5")):
        docs = _plain(weights.meta.get("_docs", "")) or "no ImageNet-1K accuracy in its meta"
        return f"not a classifier: {weights_id(weights)} has no ImageNet-1K accuracy ({docs})"
    return None


# --------------------------------------------------------------------------- one card


def card_table(arch: str, weights: Any) -> tuple[str, dict[str, Any]]:
    """The card for one weight, as a registry entry spells it (JSON types only)."""
    reason = skip_reason(weights)
    if reason:
        raise Skipped(reason)
    meta = weights.meta
    family = families.family_of(arch)
    spec = _input(weights)
    size = spec["size"][0]
    network = meta_network(arch, weights)
    cut = families.cut(arch, network, size, len(meta["categories"]))
    check(arch, weights, network, cut, size)
    license_, license_note = _license(meta)
    file_name = posixpath.basename(unquote(urlsplit(weights.url).path))
    prefix = hash_prefix(file_name)
    if not prefix:
        raise Skipped(f"no hash: {weights.url} names no sha256 prefix")
    table: dict[str, Any] = {
        "description": _description(weights),
        "modality": "image",
        "task": "image-classification",
        "license": license_,
        "params": int(meta["num_params"]),
        "family": family.name,
        "gflops": float(meta["_ops"]),
        "weights_mb": float(meta["_file_size"]),
    }
    if str(meta.get("recipe", "")).startswith("https://"):
        table["homepage"] = meta["recipe"]
    paper = _paper(arch)
    if paper:
        table["paper"] = paper
    swag = ["swag"] if "SWAG" in weights.name else []
    table["tags"] = ["torchvision", "imagenet-1k", family.kind, family.name, *swag]
    note = family.note.format(node=cut.node, head=cut.head, dim=cut.dim, size=size)
    table["notes"] = " ".join(part for part in (note, license_note, HASH_NOTE) if part)
    table["provenance"] = f"generated by {GENERATED_BY} from {LIBRARY}'s {weights_id(weights)} meta and transforms"
    table["source"] = {"type": "torchvision", "weights": weights_id(weights), "url": weights.url}
    table["files"] = [{"name": file_name, "sha256_prefix": prefix}]
    table["adapter"] = {"type": "torchvision", "arch": arch}
    table["input"] = spec
    table["embedding"] = {"node": cut.node, "dim": cut.dim}
    table["head"] = cut.head
    table["stages"] = list(cut.stages)
    if cut.features:  # each with its output stride, for dense heads
        table["features"] = {path: {"channels": channels, "stride": cut.strides[path]}
                             for path, channels in cut.features.items()}
    metrics = meta["_metrics"]["ImageNet-1K"]
    table["metrics"] = {"imagenet-1k/acc@1": float(metrics["acc@1"]), "imagenet-1k/acc@5": float(metrics["acc@5"])}
    return card_name(arch, weights), table


def meta_network(arch: str, weights: Any) -> nn.Module:
    """The architecture as the builder makes it for ``weights`` (:func:`families.build`), on the
    meta device: exact parameters, no memory, no init."""
    with warnings.catch_warnings(), on_meta():
        warnings.simplefilter("ignore")  # builders warn about init choices that do not matter on meta
        return families.build(arch, weights)


@contextlib.contextmanager
def on_meta() -> Iterator[None]:
    """``torch.device("meta")`` for building any torchvision classifier. RegNet's builder computes
    its block widths with torch ops and ``.tolist()``, which meta tensors cannot give: that
    arithmetic runs on the CPU, the network itself on meta."""
    from torchvision.models.regnet import BlockParams

    widths = BlockParams.from_init_params.__func__

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return widths(cls, *args, **kwargs)

    with mock.patch.object(BlockParams, "from_init_params", classmethod(on_cpu)), torch.device("meta"):
        yield


def _input(weights: Any) -> dict[str, Any]:
    """The card's input table from the weight's eval transform (torchvision's ImageClassification
    preset: Resize(shorter side) then CenterCrop, which zoo's preprocessing reproduces)."""
    transform = weights.transforms()
    if not isinstance(transform, ImageClassification) or len(transform.resize_size) != 1:
        raise Skipped(f"transform: {weights_id(weights)} is not a shorter-side Resize + CenterCrop preset")
    crop = [int(c) for c in transform.crop_size] * (2 // len(transform.crop_size))
    return {
        "size": crop,
        "resize": int(transform.resize_size[0]),
        "mean": [float(m) for m in transform.mean],
        "std": [float(s) for s in transform.std],
        "interpolation": InterpolationMode(transform.interpolation).value,
    }


def _license(meta: dict[str, Any]) -> tuple[str, str]:
    """The SPDX id and a note: torchvision's weights license, unless the meta links another."""
    url = meta.get("license")
    if url is None:
        return DEFAULT_LICENSE, ""
    if url not in LICENSES:
        raise LookupError(f"torchvision states the license {url}: read it, then add its SPDX id to "
                          f"zoo_torchvision.generate.LICENSES")
    return LICENSES[url], f"torchvision's meta gives the weights' license as {url} ({LICENSES[url]})."


def _plain(text: str) -> str:
    """RST as one line of plain text: links become their words, backticks go."""
    return " ".join(_RST_LINK.sub(r"\1", text).replace("`", "").split())


def _description(weights: Any) -> str:
    """The enum's words: ``ResNet50 ImageNet-1k classifier, torchvision ResNet50_Weights.IMAGENET1K_V2:``
    then the weight's own ``_docs``."""
    model = type(weights).__name__.removesuffix("_Weights")
    docs = _plain(weights.meta.get("_docs", ""))
    return f"{model} ImageNet-1k classifier, torchvision {weights_id(weights)}" + (f": {docs}" if docs else "")


def _paper(arch: str) -> str | None:
    """The first arXiv abstract the builder's docstring links to, as https."""
    match = _ARXIV.search(torchvision.models.get_model_builder(arch).__doc__ or "")
    return match.group(0).replace("http://", "https://") if match else None


# --------------------------------------------------------------------------- checks


def check(arch: str, weights: Any, network: nn.Module, cut: families.Cut, size: int) -> None:
    """Check a rule's result against the network, independently of how the rule found it: the
    parameter count is the meta's, the head and stages are modules, every node is in the eval graph
    (``get_graph_node_names``), and torchvision's feature extractor at all of them, run on a meta
    batch, gives the embedding's dim (and the head takes it) and each feature's channels."""
    where = f"{weights_id(weights)} ({arch})"
    params = sum(p.numel() for p in network.parameters())
    if params != weights.meta["num_params"]:
        raise AssertionError(f"{where}: {params} parameters built, the meta says {weights.meta['num_params']}: "
                             f"fix families.pretrained_kwargs")
    head = network.get_submodule(cut.head)
    for stage in cut.stages:
        network.get_submodule(stage)
    nodes = [cut.node, *cut.features]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "eval nodes are a subsequence of train nodes": dropout, aux heads
        _, eval_nodes = get_graph_node_names(network)
        extractor = create_feature_extractor(network, return_nodes={n: n for n in nodes})
    for node in nodes:
        if not any(n == node or n.startswith(node + ".") for n in eval_nodes):
            raise AssertionError(f"{where}: {node!r} is not a node of the eval graph")
    with torch.no_grad():
        outputs = extractor.eval()(torch.empty(2, 3, size, size, device="meta"))
    shape = outputs[cut.node].shape
    if math.prod(shape[1:]) != cut.dim:
        raise AssertionError(f"{where}: the embedding {cut.node!r} has shape {tuple(shape)}, not dim {cut.dim}")
    takes = head.in_features if isinstance(head, nn.Linear) else head.in_channels
    if takes != (cut.dim if isinstance(head, nn.Linear) else shape[1]):
        raise AssertionError(f"{where}: the head {cut.head!r} takes {takes}, the embedding gives {tuple(shape)}")
    for node, channels in cut.features.items():
        got = outputs[node].shape
        if len(got) != 4 or got[1] != channels:
            raise AssertionError(f"{where}: feature {node!r} has shape {tuple(got)}, not {channels} channels")


# --------------------------------------------------------------------------- the catalogue


def generate() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Every weight's card, and the weights skipped with the reason, both sorted by name."""
    cards, skipped = {}, {}
    for arch, weights in all_weights():
        try:
            name, table = card_table(arch, weights)
        except Skipped as exc:
            skipped[card_name(arch, weights)] = str(exc)
            continue
        if name in cards:
            raise AssertionError(f"two weights are named {name!r}")
        cards[name] = table
    return dict(sorted(cards.items())), dict(sorted(skipped.items()))


def summary(cards: dict[str, dict[str, Any]], skipped: dict[str, str]) -> str:
    """Counts: cards per family, and the skipped weights with their reasons."""
    counts = Counter(table["family"] for table in cards.values())
    lines = [f"{len(cards)} cards, {len(skipped)} skipped"]
    lines += [f"  {count:4d}  {family}" for family, count in sorted(counts.items())]
    lines += [f"  skipped {name}: {reason}" for name, reason in skipped.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=GENERATED_BY, description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=CATALOG, help=f"where to write (default {CATALOG})")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the catalogue differs from what would be written")
    args = parser.parse_args(argv)
    started = time.monotonic()
    text = render_catalogue(*generate(), generated_by=GENERATED_BY, library=LIBRARY)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        print(f"{args.output} is {'up to date' if current == text else 'stale: run ' + GENERATED_BY}")
        return 0 if current == text else 1
    write_catalogue(args.output, text)
    data = json.loads(text)
    print(summary(data["models"], data["skipped"]))
    print(f"wrote {args.output} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
