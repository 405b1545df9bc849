"""An instance segmenter on any backbone with feature maps, composed from torchvision's Mask R-CNN
parts (no segmenter of our own): the card's feature maps at strides 8, 16 and 32 feed a
``FeaturePyramidNetwork`` with ``LastLevelMaxPool`` (stride 64, for the proposals), and
torchvision's ``MaskRCNN`` proposes (``RegionProposalNetwork``), classifies and boxes
(``RoIHeads`` with ``TwoMLPHead``) and masks (``MaskRCNNHeads``) each object.

The heads are narrower than torchvision's (pyramid and mask convolutions of 64 channels, 2 of
them, a 256-wide box head, fewer proposals): what trains in minutes on 2 CPU cores; the shape is
:data:`SETTINGS`, recorded in the run's choices and the export.

Classes: zoo's labels are 0-based; Mask R-CNN keeps 0 for the background, so they are shifted
by one going in and back coming out. Images come whole at one size, normalised by zoo's
preprocessing, so torchvision's ``GeneralizedRCNNTransform`` is replaced by one that only batches
(it would resize and normalise again) and leaves the masks as the heads give them (m x m
probabilities per detection): :func:`zoo.postprocess.paste_masks` pastes them, for the run's
metrics and for the runtime alike.

Exported (:func:`instances_graph`) as one picture in, ``detections`` rows out ``[box, score,
class, m*m mask probabilities]``: a two-stage detector crops its proposals inside the network,
so the graph holds everything (RoIAlign and non-maximum suppression are ONNX operators); its
per-image loops trace for one picture, so the graph takes one at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["build_instances", "instances_graph", "SETTINGS"]

#: The segmenter's shape and post-processing: a pyramid of ``width`` channels, a box head of
#: ``representation`` features, ``mask_convs`` convolutions of ``width`` in the mask head
#: (torchvision's: 4 of 256), masks of ``mask_size`` squared; proposals kept before and after
#: non-maximum suppression (training / evaluation), boxes over ``score`` kept after ``nms`` at
#: most ``detections`` per picture.
SETTINGS: Mapping[str, Any] = {"detector": "maskrcnn", "width": 64, "representation": 256, "mask_convs": 2,
                               "mask_size": 28, "score": 0.05, "nms": 0.5, "detections": 100,
                               "proposals_train": (1000, 500), "proposals_test": (500, 300), "rois": 128}


@functools.cache
def _classes() -> tuple[type, ...]:
    import torch
    from torch import nn
    from torchvision.models.detection.image_list import ImageList

    from zoo_dense.network import _classes as detector_classes

    _, _, Pyramid, AsGiven = detector_classes()  # the detector's, levels numbered; answers as the heads give them

    class Instances(nn.Module):
        """The run's network: ``backbone`` (zoo's, at its feature maps), ``head`` (the pyramid, the
        proposal network, the box and mask heads: everything new) and torchvision's MaskRCNN over
        both. ``(images, targets)`` in training gives its losses; ``(images)`` in eval one answer
        per image (``boxes``, ``scores``, ``labels`` from 0, ``masks`` (n, 1, m, m) probabilities);
        ``features``: the backbone's maps of ``images``, computed already."""

        def __init__(self, backbone: nn.Module, maps: Sequence[str], channels: Sequence[int], strides: Sequence[int],
                     classes: int, settings: Mapping[str, Any]) -> None:
            from torchvision.models.detection import MaskRCNN
            from torchvision.models.detection.anchor_utils import AnchorGenerator
            from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
            from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
            from torchvision.models.detection.rpn import RPNHead
            from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
            from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

            super().__init__()
            width, representation = int(settings["width"]), int(settings["representation"])
            levels = [str(i) for i in range(len(maps))]
            sizes = (*strides, strides[-1] * 2)  # the max-pooled level
            anchors = AnchorGenerator(tuple((4 * s,) for s in sizes), ((0.5, 1.0, 2.0),) * len(sizes))
            fpn = FeaturePyramidNetwork(list(channels), width, extra_blocks=LastLevelMaxPool())
            rpn = RPNHead(width, anchors.num_anchors_per_location()[0])
            box_head = TwoMLPHead(width * 7 * 7, representation)
            box_predictor = FastRCNNPredictor(representation, classes + 1)
            mask_head = MaskRCNNHeads(width, (width,) * int(settings["mask_convs"]), 1)
            mask_predictor = MaskRCNNPredictor(width, width, classes + 1)
            self.backbone = backbone
            self.head = nn.ModuleDict({"fpn": fpn, "rpn": rpn, "box_head": box_head, "box_predictor": box_predictor,
                                       "mask_head": mask_head, "mask_predictor": mask_predictor})
            train_pre, train_post = settings["proposals_train"]
            test_pre, test_post = settings["proposals_test"]
            self.detector = MaskRCNN(
                Pyramid(backbone, fpn, maps, width, numbered=True), num_classes=None, rpn_anchor_generator=anchors, rpn_head=rpn,
                rpn_pre_nms_top_n_train=train_pre, rpn_post_nms_top_n_train=train_post,
                rpn_pre_nms_top_n_test=test_pre, rpn_post_nms_top_n_test=test_post,
                box_roi_pool=MultiScaleRoIAlign(levels, 7, 2), box_head=box_head, box_predictor=box_predictor,
                box_score_thresh=settings["score"], box_nms_thresh=settings["nms"],
                box_detections_per_img=settings["detections"], box_batch_size_per_image=settings["rois"],
                mask_roi_pool=MultiScaleRoIAlign(levels, 14, 2), mask_head=mask_head, mask_predictor=mask_predictor)
            self.detector.transform = AsGiven()
            self.record = {**settings, "maps": list(maps), "strides": list(sizes)}

        def forward(self, images: torch.Tensor, targets: Any = None, features: Any = None) -> Any:
            pyramid = self.detector.backbone
            pyramid.given = features
            if targets is not None:  # the background is Mask R-CNN's class 0
                targets = [{**t, "labels": t["labels"] + 1} for t in targets]
            try:
                out = self.detector(images, targets)
            finally:
                pyramid.given = None
            if isinstance(out, list):
                out = [{**answer, "labels": answer["labels"] - 1} for answer in out]
            return out

    class Raw(nn.Module):
        """The exported graph (see the module): one picture ``(1, 3, h, w)`` in, ``(1, detections,
        6 + m*m)`` out."""

        one_at_a_time = True  # the heads loop over the batch's pictures: traced for one

        def __init__(self, network: nn.Module) -> None:
            super().__init__()
            detector = network.detector
            self.pyramid, self.rpn, self.heads = detector.backbone, detector.rpn, detector.roi_heads
            self.rows = int(network.record["detections"])

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            batch = ImageList(images, [(images.shape[-2], images.shape[-1])])
            features = self.pyramid(images)
            proposals, _ = self.rpn(batch, features)
            answer = self.heads(features, proposals, batch.image_sizes)[0][0]
            rows = torch.cat([answer["boxes"], answer["scores"][:, None], (answer["labels"] - 1)[:, None].float(),
                              answer["masks"].flatten(1)], dim=1)
            padding = torch.zeros(self.rows, rows.shape[1], dtype=rows.dtype)
            return torch.cat([rows, padding])[:self.rows][None]

    return Instances, Raw


def build_instances(backbone: Any, maps: Sequence[str], channels: Sequence[int], strides: Sequence[int],
                    classes: int, settings: Mapping[str, Any] = SETTINGS) -> Any:
    """The instance segmenter on ``backbone`` (see the module)."""
    return _classes()[0](backbone, maps, channels, strides, classes, settings)


def instances_graph(network: Any) -> Any:
    """The module to export (see the module)."""
    return _classes()[1](network).eval()
