"""Generate zoo cards for torchvision's detection and instance segmentation weights:
``python -m zoo_torchvision.detection`` writes ``detection.json`` beside this file.

One card per weight of ``torchvision.models.detection`` (Faster R-CNN, RetinaNet, FCOS, SSD,
SSDlite, Mask R-CNN; Keypoint R-CNN's person-only weights are left out), every value from
torchvision: the meta's ``num_params``, ``_ops`` (GFLOPS), ``_file_size``, COCO-val2017 ``box_map``
(and ``mask_map``), its categories (in the notes), its URL and the detector's own transform (the
size it resizes to, its mean and std). Where to cut, by one rule for every detector, checked on
the architecture built on the meta device:

- the body: the backbone's ``body`` (a ResNet or MobileNet under an FPN) or its ``features``
  (SSD's VGG, SSDlite's MobileNet); its children that own parameters are the stages;
- features: the last stage at each output stride 4, 8, 16, 32, with channels and stride;
- embedding: the body's last stage, averaged over space (what zoo embeds and probes with);
- head: what a new task replaces: the box predictor (R-CNNs), the classification head (the others).

The zoo_torchvision adapter builds the whole detector and cuts inside its body, so a detection
card serves zoo's dense tasks (its pretrained backbone's maps) like any card with features.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

from zoo import render_catalogue, write_catalogue
from zoo_torchvision.source import hash_prefix

__all__ = ["CATALOG", "detection_cards", "body_path", "build", "is_detector", "is_dense", "cut_points", "card_table",
           "GENERATED_BY", "main"]

CATALOG = Path(__file__).with_name("detection.json")
GENERATED_BY = "python -m zoo_torchvision.detection"
LIBRARY = f"torchvision {torchvision.__version__.split('+')[0]}"
#: The task each builder's weights do, and the module a new task replaces.
TASKS = {"fasterrcnn": ("object-detection", "roi_heads.box_predictor"),
         "maskrcnn": ("instance-segmentation", "roi_heads.box_predictor"),
         "retinanet": ("object-detection", "head.classification_head"),
         "fcos": ("object-detection", "head.classification_head"),
         "ssd": ("object-detection", "head.classification_head"),
         "ssdlite": ("object-detection", "head.classification_head")}
STRIDES = (4, 8, 16, 32)
_LEFT_OUT = ("keypointrcnn",)  # person keypoints: not a detector of the 91 COCO categories


def is_detector(arch: str) -> bool:
    """Whether ``arch`` is one of torchvision's detection builders."""
    return arch in torchvision.models.list_models(module=torchvision.models.detection)


def is_dense(arch: str) -> bool:
    """Whether ``arch`` is one of torchvision's detection or segmentation builders: a network
    built whole for its weights (their classes, an auxiliary head) and cut inside its backbone."""
    return is_detector(arch) or arch in torchvision.models.list_models(module=torchvision.models.segmentation)


def build(arch: str, weights: Any) -> torch.nn.Module:
    """The detector torchvision's builder makes for ``weights`` (a pretrained backbone's frozen
    BatchNorm, the weights' categories), in eval mode, without downloading or loading the file:
    the builder's own fetch and load are skipped (the adapter loads zoo's verified file after)."""
    from unittest import mock

    with warnings.catch_warnings(), mock.patch.object(type(weights), "get_state_dict", lambda *a, **k: {}), \
            mock.patch.object(torch.nn.Module, "load_state_dict", lambda *a, **k: None):
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(arch, weights=weights).eval()


def body_path(network: torch.nn.Module) -> str:
    """Where a detector's or segmenter's backbone network is: ``backbone.body``, ``backbone.features``
    (SSD), or ``backbone`` itself (a segmentation model's layer getter)."""
    if hasattr(network.backbone, "body"):
        return "backbone.body"
    return "backbone.features" if hasattr(network.backbone, "features") else "backbone"


def cut_points(network: torch.nn.Module, side: int) -> tuple[str, list[str], dict[str, tuple[int, ...]], dict[int, str]]:
    """Where a dense network (on the meta device) is cut: its body's path, the body's children that
    own parameters (the stages), each one's output shape for a ``side`` square, and the last
    stage at each of :data:`STRIDES`."""
    path = body_path(network)
    body = network.get_submodule(path)
    children = [name for name, child in body.named_children() if any(True for _ in child.parameters())
                and not isinstance(child, torch.nn.modules.batchnorm._BatchNorm)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shapes = {name: tuple(value.shape) for name, value in create_feature_extractor(
            body, return_nodes={n: n for n in children})(torch.empty(1, 3, side, side, device="meta")).items()}
    by_stride: dict[int, str] = {}
    for name in children:
        stride = 2 ** round(math.log2(side / shapes[name][2]))
        if stride in STRIDES:
            by_stride[stride] = name
    return path, children, shapes, by_stride


def _weights() -> list[tuple[str, Any]]:
    return [(arch, weights) for arch in sorted(torchvision.models.list_models(module=torchvision.models.detection))
            if not arch.startswith(_LEFT_OUT) for weights in torchvision.models.get_model_weights(arch)]


def _card(arch: str, weights: Any) -> tuple[str, dict[str, Any]]:
    meta = weights.meta
    family = arch.split("_")[0].removesuffix("300").removesuffix("320")
    task, head = TASKS[family]
    with torch.device("meta"):
        network = build(arch, weights)
    if sum(p.numel() for p in network.parameters()) != meta["num_params"]:
        raise AssertionError(f"{weights}: the built network's parameters are not the meta's")
    network.get_submodule(head)
    transform = network.transform
    side = int(transform.min_size[0])
    metrics = meta["_metrics"]["COCO-val2017"]
    categories = [c for c in meta["categories"] if c not in ("__background__", "N/A")]
    name = arch if weights is type(weights).DEFAULT else f"{arch}.{weights.name.lower()}"
    table = card_table(arch, weights, network, side=side, mean=transform.image_mean, std=transform.image_std,
                       head=head, description=f"{arch} detector trained on COCO (torchvision {weights})", task=task,
                       family=family, tags=["torchvision", "coco", task],
                       notes=(f"{len(categories)} COCO categories ({', '.join(categories[:6])}, ...; the output's 91 ids "
                              f"keep COCO's gaps). torchvision's own transform resizes the shorter side to {side} (the "
                              f"longer at most {int(transform.max_size)}) and normalises; zoo's dense tasks read the "
                              f"body's maps at their own size. Full sha256 unknown offline: only the 8-hex prefix in "
                              f"the file name is checked."),
                       provenance=f"generated by {GENERATED_BY} from {LIBRARY}'s {weights} meta and its detector's "
                                  f"transform",
                       metrics={f"coco-val2017/{key}": float(value) for key, value in metrics.items()})
    return name, table


def card_table(arch: str, weights: Any, network: torch.nn.Module, *, side: int, mean: Any, std: Any, head: str,
               description: str, task: str, family: str, tags: list[str], notes: str, provenance: str,
               metrics: dict[str, float]) -> dict[str, Any]:
    """A dense weight's card: what torchvision's meta says of ``weights``, the input ``side``,
    ``mean`` and ``std`` its transform reads at, and where ``network`` (on the meta device) is cut
    (:func:`cut_points`), with the words and metrics given."""
    meta, url = weights.meta, weights.url
    path, children, shapes, by_stride = cut_points(network, side)
    return {
        "description": description, "modality": "image", "task": task, "license": "BSD-3-Clause",
        "params": meta["num_params"], "family": family, "gflops": float(meta["_ops"]),
        "weights_mb": float(meta["_file_size"]), "homepage": meta["recipe"], "tags": tags, "notes": notes,
        "provenance": provenance,
        "source": {"type": "torchvision", "weights": str(weights), "url": url},
        "files": [{"name": url.rsplit("/", 1)[-1], "sha256_prefix": hash_prefix(url)}],
        "adapter": {"type": "torchvision", "arch": arch},
        "input": {"size": [side, side], "resize": side, "mean": [float(v) for v in mean], "std": [float(v) for v in std],
                  "interpolation": "bilinear", "crop_mode": "squash"},
        "embedding": {"node": f"{path}.{children[-1]}", "dim": int(shapes[children[-1]][1]), "pooling": "mean"},
        "head": head,
        "stages": [f"{path}.{n}" for n in children],
        "features": {f"{path}.{by_stride[s]}": {"channels": int(shapes[by_stride[s]][1]), "stride": s}
                     for s in STRIDES if s in by_stride},
        "metrics": metrics,
    }


def detection_cards() -> dict[str, dict[str, Any]]:
    """Every detection weight's card, by name."""
    return dict(sorted(_card(arch, weights) for arch, weights in _weights()))


def main() -> int:
    cards = detection_cards()
    write_catalogue(CATALOG, render_catalogue(cards, {}, generated_by=GENERATED_BY, library=LIBRARY))
    print(f"wrote {len(cards)} cards to {CATALOG}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
