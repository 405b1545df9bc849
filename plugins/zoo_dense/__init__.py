"""zoo plugin: dense tasks. Object detection (``--task detect``) and segmentation on any backbone
whose card has feature maps, with torchvision's detection and segmentation models on top; the
COCO JSON, YOLO and Pascal VOC formats; the offline ``pasted-photos`` demo.

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks
(tasks through ``register_tasks``, the task contract's dense members), and imports nothing heavy
at import time (torch, torchvision, torchmetrics load when a task runs).
"""

from __future__ import annotations

from zoo import hookimpl

from zoo_dense.demo import PastedPhotosFormat
from zoo_dense.formats import CocoFormat, VocFormat, YoloFormat


@hookimpl
def register_dataset_formats(register):
    register(CocoFormat())
    register(YoloFormat())
    register(VocFormat())
    register(PastedPhotosFormat())


@hookimpl
def register_tasks(register):
    from zoo_dense.detection import Detection

    register(Detection())
