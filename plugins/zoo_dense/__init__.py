"""zoo plugin: dense tasks. Object detection (``--task detect``) and segmentation on any backbone
whose card has feature maps, with torchvision's detection and segmentation models on top; the
COCO JSON, YOLO and Pascal VOC formats, segmentation masks (a masks folder, VOC's
SegmentationClass); semantic segmentation (``--task segment``); instance
segmentation (``--task instance``: Mask R-CNN); the offline ``pasted-photos``
demo (both tasks).

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks
(tasks through ``register_tasks``, the task contract's dense members), and imports nothing heavy
at import time (torch, torchvision, torchmetrics load when a task runs).
"""

from __future__ import annotations

from zoo import hookimpl

from zoo_dense.demo import PastedPhotosFormat
from zoo_dense.formats import CocoFormat, VocFormat, YoloFormat
from zoo_dense.masks import MaskFolderFormat, VocMasksFormat


@hookimpl
def register_dataset_formats(register):
    register(CocoFormat())
    register(YoloFormat())
    register(VocFormat())
    register(MaskFolderFormat())
    register(VocMasksFormat())
    register(PastedPhotosFormat())


@hookimpl
def register_tasks(register):
    from zoo_dense.detection import Detection
    from zoo_dense.instances import InstanceSegmentation
    from zoo_dense.segmentation import Segmentation

    register(Detection())
    register(Segmentation())
    register(InstanceSegmentation())
