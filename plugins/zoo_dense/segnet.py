"""A semantic segmentation network on any backbone with feature maps, from torchvision's parts.

Two heads were measured (bench/segment_pasted.py's network, on pasted-photos, efficientnet_lite0,
2 CPU cores, the same epochs):

- ``fpn`` (the default): the card's maps at strides 4 to 32 through torchvision's
  ``FeaturePyramidNetwork`` (``width`` channels), every level upsampled to the finest and summed
  (Panoptic FPN's semantic branch, made light: one 3x3 convolution, then a 1x1 to the classes);
- ``deeplab``: torchvision's ``DeepLabHead`` (ASPP at rates 12, 24, 36, 256 channels) on the
  deepest map.

The FPN reads the stride-4 and stride-8 maps, which hold the objects' outlines that a stride-32
map has lost (torchvision's DeepLabV3 gets them back by dilating its backbone to stride 8, which
a card's backbone is not): on pasted-photos it was 12 points of mIoU better on both the
validation split and the unseen-background test, in about the same time (:data:`MEASURED`).

Either way the classes' scores are upsampled bilinearly to the input's size: the network answers
for every pixel it read. In training it returns its cross-entropy (ignore index 255, class weights
when given), in eval each picture's class-index mask at the input's size (uint8).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["build_segmenter", "segmenter_graph", "SETTINGS", "STRIDES", "MEASURED"]

#: The segmenter's shape: its head (``fpn`` or ``deeplab``), the pyramid's width, and the fpn
#: decoder's normalisation: GroupNorm (32 groups, as torchvision's FCOS head), not BatchNorm, whose
#: statistics over each process's part of a batch made two processes train another network than
#: one (21% of the weights' norm apart after 4 epochs, test_segmentation's DDP test) and which a
#: batch of a few pictures estimates poorly.
SETTINGS: Mapping[str, Any] = {"segmenter": "fpn", "width": 64, "norm": "group"}
#: The pyramid's levels from the backbone: these strides (the deepest feature of each).
STRIDES = (4, 8, 16, 32)
#: Each head on pasted-photos (efficientnet_lite0, the frozen phase alone, 6 epochs, seed 0, no
#: class weights; 2 shared CPU cores, so the seconds are rough): bench/segment_pasted.py --heads.
MEASURED: Mapping[str, Any] = {"fpn": {"val_miou": 0.467, "test_miou": 0.480, "seconds": 242},
                               "deeplab": {"val_miou": 0.360, "test_miou": 0.358, "seconds": 191}}


@functools.cache
def _classes() -> tuple[type, ...]:
    import torch
    from torch import nn
    from torch.nn import functional

    class Segmenter(nn.Module):
        """The run's network: ``backbone`` (zoo's, at its feature maps) and ``head`` (everything
        new). ``(images, targets)`` in training gives ``{"cross_entropy": loss}``; ``(images)`` in
        eval a ``{"mask"}`` per image; ``features``: the backbone's maps of ``images``, computed
        already (the images then only give the size)."""

        def __init__(self, backbone: nn.Module, maps: Sequence[str], channels: Sequence[int], classes: int,
                     settings: Mapping[str, Any], weights: Sequence[float] | None = None) -> None:
            from torchvision.models.segmentation.deeplabv3 import DeepLabHead
            from torchvision.ops import Conv2dNormActivation, FeaturePyramidNetwork

            super().__init__()
            self.backbone, self.maps, self.kind = backbone, tuple(maps), settings["segmenter"]
            width = int(settings["width"])
            norm = (functools.partial(nn.GroupNorm, 32) if settings.get("norm") == "group" else nn.BatchNorm2d)
            if self.kind == "fpn":
                self.head = nn.ModuleDict({
                    "fpn": FeaturePyramidNetwork(list(channels), width),
                    "decoder": nn.Sequential(Conv2dNormActivation(width, width, 3, norm_layer=norm),
                                             nn.Conv2d(width, classes, 1))})
            else:
                self.head = nn.ModuleDict({"deeplab": DeepLabHead(channels[-1], classes)})
            # the loss's class weights: not part of the checkpoint (rebuilt from the training targets)
            self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32) if weights else None,
                                 persistent=False)
            self.record = {**settings, "maps": list(maps)}

        def scores(self, images: torch.Tensor, features: Any = None) -> torch.Tensor:
            """Each class's score at every pixel of ``images`` (N, classes, H, W)."""
            features = features if features is not None else self.backbone(images)
            if self.kind == "fpn":
                levels = list(self.head["fpn"](OrderedDict((m, features[m]) for m in self.maps)).values())
                finest = levels[0]
                summed = finest + sum(functional.interpolate(level, size=finest.shape[-2:], mode="bilinear",
                                                             align_corners=False) for level in levels[1:])
                out = self.head["decoder"](summed)
            else:
                out = self.head["deeplab"](features[self.maps[-1]])
            return functional.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)

        def forward(self, images: torch.Tensor, targets: Any = None, features: Any = None) -> Any:
            scores = self.scores(images, features)
            if self.training:
                masks = torch.stack([t["mask"] for t in targets]).long()
                return {"cross_entropy": functional.cross_entropy(scores.float(), masks, weight=self.weights,
                                                                  ignore_index=255)}
            return [{"mask": mask} for mask in scores.argmax(1).to(torch.uint8)]

    class Scores(nn.Module):
        """The exported graph: pictures in, each class's score at every pixel out (N, classes, H,
        W); the runtime takes the best class and scales the mask to the picture."""

        def __init__(self, segmenter: nn.Module) -> None:
            super().__init__()
            self.segmenter = segmenter

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.segmenter.scores(images)

    return Segmenter, Scores


def build_segmenter(backbone: Any, maps: Sequence[str], channels: Sequence[int], classes: int,
                    settings: Mapping[str, Any] = SETTINGS, weights: Sequence[float] | None = None) -> Any:
    """The segmentation network on ``backbone`` (see the module)."""
    return _classes()[0](backbone, maps, channels, classes, settings, weights)


def segmenter_graph(segmenter: Any) -> Any:
    """The module to export: the classes' scores at every pixel."""
    return _classes()[1](segmenter).eval()
