"""A detector on any backbone with feature maps, composed from torchvision's parts (no detector of
our own): the card's feature maps at strides 8, 16 and 32 feed a ``FeaturePyramidNetwork`` with
``LastLevelP6P7`` (strides 64 and 128), and torchvision's ``FCOS`` detects on the pyramid with
its own head, anchor points, losses and post-processing.

Why FCOS: it is single-stage and anchor-free, so everything after its head is decoding and
non-maximum suppression, which the torch-free runtime repeats in numpy from the exported raw
outputs, and its graph takes batches (a two-stage detector crops proposals inside the network:
zoo's Mask R-CNN graph, :mod:`zoo_dense.maskrcnn`, holds them and takes one picture at a time);
and on 2 CPU cores its narrow head is what a detector can afford: on pasted-photos with
efficientnet_lite0 it reached test box mAP 0.327 (mean of 3 seeds) in 87 s a run, where the Mask
R-CNN instance segmenter on the same maps reached box mAP 0.345 in a 17-minute run (seed 0, the
machine shared with tests).

The images are whole pictures squashed to one size (``Detection.input_spec``) and normalised by
zoo's preprocessing, so torchvision's ``GeneralizedRCNNTransform`` is replaced by
:class:`_AsGiven` (it would resize and normalise again); boxes are in that size's pixels.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["build_detector", "detector_graph", "pyramid_maps", "SETTINGS"]

#: The detector's shape and post-processing (eval, export and the runtime alike): a pyramid of
#: ``width`` channels, ``convs`` convolutions per head branch (torchvision's FCOS uses 4 of 256
#: on GPUs; 2 of 64 train in minutes on 2 CPU cores), boxes over ``score`` kept, at most
#: ``candidates`` per level before non-maximum suppression at ``nms`` IoU, ``detections`` per image.
SETTINGS: Mapping[str, Any] = {"detector": "fcos", "width": 64, "convs": 2, "score": 0.05, "nms": 0.6,
                               "detections": 100, "candidates": 1000}
#: The pyramid's levels from the backbone: these strides (the deepest feature of each).
STRIDES = (8, 16, 32)


def pyramid_maps(features: Mapping[str, int], strides: Mapping[str, int],
                 wanted: Sequence[int] = STRIDES) -> tuple[str, ...]:
    """The features a pyramid reads: for each of ``wanted`` strides, the deepest feature at it
    (input side first); ``strides``: each feature's stride."""
    chosen: dict[int, str] = {}
    for name in features:  # the card lists features input side first
        if strides.get(name) in wanted:
            chosen[strides[name]] = name
    return tuple(chosen[s] for s in sorted(chosen))


@functools.cache
def _classes() -> tuple[type, ...]:
    import torch
    from torch import nn
    from torchvision.models.detection.image_list import ImageList

    class Pyramid(nn.Module):
        """The backbone's feature maps through the FPN: what FCOS (and Mask R-CNN) calls its
        backbone; ``numbered``: its levels named as torchvision's RoI heads expect ("0", "1", ...,
        "pool"), not after the backbone's maps."""

        def __init__(self, backbone: nn.Module, fpn: nn.Module, maps: Sequence[str], width: int,
                     numbered: bool = False) -> None:
            super().__init__()
            self.body, self.fpn, self.maps, self.out_channels = backbone, fpn, tuple(maps), width
            self.numbered = numbered
            self.given: dict[str, torch.Tensor] | None = None  # the backbone's maps, computed already

        def forward(self, x: torch.Tensor) -> Any:
            features = self.given if self.given is not None else self.body(x)
            out = self.fpn(OrderedDict((name, features[name]) for name in self.maps))
            if not self.numbered:
                return out
            return OrderedDict((key if key == "pool" else str(i), value) for i, (key, value) in enumerate(out.items()))

    class AsGiven(nn.Module):
        """torchvision's transform for images already at one size and normalised: batch them."""

        def forward(self, images: Any, targets: Any = None) -> Any:
            batch = images if isinstance(images, torch.Tensor) else torch.stack(list(images))
            return ImageList(batch, [tuple(batch.shape[-2:])] * len(batch)), targets

        def postprocess(self, result: Any, image_shapes: Any, original_sizes: Any) -> Any:
            return result

    class Detector(nn.Module):
        """The run's network: ``backbone`` (zoo's, at its feature maps), ``head`` (the pyramid and
        FCOS's head: everything new) and torchvision's FCOS over both. ``(images, targets)`` in
        training gives FCOS's losses; ``(images)`` in eval its detections per image; ``features``:
        the backbone's maps of ``images``, computed already (the images then only give the size)."""

        def __init__(self, backbone: nn.Module, maps: Sequence[str], channels: Sequence[int], strides: Sequence[int],
                     classes: int, settings: Mapping[str, Any]) -> None:
            from torchvision.models.detection import FCOS
            from torchvision.models.detection.anchor_utils import AnchorGenerator
            from torchvision.models.detection.fcos import FCOSHead
            from torchvision.ops import FeaturePyramidNetwork
            from torchvision.ops.feature_pyramid_network import LastLevelP6P7

            super().__init__()
            width = int(settings["width"])
            self.backbone = backbone
            fpn = FeaturePyramidNetwork(list(channels), width, extra_blocks=LastLevelP6P7(width, width))
            head = FCOSHead(width, 1, classes, num_convs=int(settings["convs"]))
            self.head = nn.ModuleDict({"fpn": fpn, "detector": head})
            # FCOS's anchors are points: one per location, sized by its level's stride
            sizes = (*strides, strides[-1] * 2, strides[-1] * 4)
            self.detector = FCOS(Pyramid(backbone, fpn, maps, width), classes, head=head,
                                 anchor_generator=AnchorGenerator(tuple((s,) for s in sizes), ((1.0,),) * len(sizes)),
                                 score_thresh=settings["score"], nms_thresh=settings["nms"],
                                 detections_per_img=settings["detections"], topk_candidates=settings["candidates"])
            self.detector.transform = AsGiven()
            self.record = {**settings, "maps": list(maps), "strides": list(sizes)}

        def forward(self, images: torch.Tensor, targets: Any = None, features: Any = None) -> Any:
            pyramid = self.detector.backbone
            pyramid.given = features
            try:
                return self.detector(images, targets)
            finally:
                pyramid.given = None

    class Raw(nn.Module):
        """The exported graph: images in, one row per anchor point out, ``[x0, y0, x1, y1,
        score per class]``: the boxes decoded and clipped to the image, the scores FCOS's
        ``sqrt(sigmoid(class) * sigmoid(centerness))``. Selecting, non-maximum suppression and
        scaling to the picture are the runtime's (``zoo.postprocess``), as FCOS does them."""

        def __init__(self, detector: nn.Module, size: Sequence[int]) -> None:
            super().__init__()
            fcos = detector.detector
            self.pyramid, self.head, self.coder, self.size = fcos.backbone, fcos.head, fcos.box_coder, tuple(size)
            with torch.no_grad():
                images = ImageList(torch.zeros(1, 3, *size), [tuple(size)])
                features = list(self.pyramid(images.tensors).values())
                anchors = fcos.anchor_generator(images, features)[0]
            self.register_buffer("anchors", anchors)
            self.levels = [f.shape[-2] * f.shape[-1] for f in features]

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            out = self.head(list(self.pyramid(images).values()))
            boxes = self.coder.decode(out["bbox_regression"], self.anchors)
            height, width = self.size
            boxes = torch.stack([boxes[..., 0].clamp(0, width), boxes[..., 1].clamp(0, height),
                                 boxes[..., 2].clamp(0, width), boxes[..., 3].clamp(0, height)], dim=-1)
            scores = torch.sqrt(torch.sigmoid(out["cls_logits"]) * torch.sigmoid(out["bbox_ctrness"]))
            return torch.cat([boxes, scores], dim=-1)

    return Detector, Raw, Pyramid, AsGiven


def build_detector(backbone: Any, maps: Sequence[str], channels: Sequence[int], strides: Sequence[int], classes: int,
                   settings: Mapping[str, Any] = SETTINGS) -> Any:
    """The detector network on ``backbone`` (see the module)."""
    return _classes()[0](backbone, maps, channels, strides, classes, settings)


def detector_graph(detector: Any, size: Sequence[int]) -> Any:
    """The module to export (raw rows per anchor point) and its ``levels`` (points per level)."""
    graph = _classes()[1](detector, size).eval()
    return graph
