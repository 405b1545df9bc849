"""Instance segmentation (``--task instance``): each object's class, box and own mask, on any
backbone whose card has feature maps.

- Targets: COCO JSON whose objects carry polygons or RLE (``segmentation``), as a detection's
  (:class:`zoo_dense.detection.Detection`: boxes, classes, crowds, the picture's size) plus each
  object's segmentation, decoded when a picture is read. An object without one is a bad row
  (one line; ``--skip-bad`` leaves its picture out). Never inferred: boxes with polygons are a
  detection's data too, so this task is asked for by name.
- Network: the card's maps at strides 8, 16, 32 through an FPN into torchvision's Mask R-CNN
  (:mod:`zoo_dense.maskrcnn`); its losses are Mask R-CNN's own (proposals, boxes, classes, masks).
- Recipe: a detector's (the pyramid and heads through the frozen backbone, then the top stages
  unfrozen), judged on the validation split by mask mAP (or ``--metric map_50``).
- Metrics: torchmetrics' COCO ``segm`` metrics on the masks pasted into each picture as the
  runtime pastes them (``map``, ``map_50``, ... per class too), and the boxes' (``box_map``, ...).
- Report: precision-recall curves per class (masks), held-out pictures with their true and
  predicted boxes, and beside their true and predicted objects' masks; each picture's boxes in
  ``report/predictions.jsonl``.
- Export: one picture in, each kept detection's box, score, class and mask probabilities out;
  the runtime pastes the masks into the picture (``zoo.postprocess.kept_instances``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo import InputError
from zoo_dense.detection import LEARNING, Detection, _side

__all__ = ["InstanceSegmentation", "LEARNING"]


class InstanceSegmentation(Detection):
    """The instance segmentation task (see the module)."""

    name = "instance-segmentation"
    aliases = ("instance", "instances")
    description = ("each object's class, box and mask (COCO JSON with polygons or RLE): FPN + Mask R-CNN on the "
                   "card's feature maps")
    making = "object masks"
    metric_names = {"map": "mask mAP@[.5:.95]", "map_50": "mask mAP@.5"}
    rank_name = "1 - mask mAP"
    learning = LEARNING  # a detector's (measured there): the same data, the same reasons

    def claims(self, dataset: Any, options: Any) -> bool:
        return False  # boxes with polygons are a detection's data too: asked for by name

    def problem(self, example: Any, options: Any) -> str | None:
        """Why a picture cannot be learnt from: an object without a polygon or RLE."""
        from zoo_dense.masks import objects_problem

        fields = example.fields or {}
        if "objects" not in fields:
            return None  # the targets say it, once, for the whole set
        return objects_problem(fields["objects"], fields.get("size"))

    def targets(self, dataset: Any, options: Any, like: Any = None) -> Any:
        if any(e.fields is not None and "mask" in e.fields and "objects" not in e.fields for e in dataset.examples):
            raise InputError(f"{dataset.name}: class masks (a masks folder, VOC's SegmentationClass) do not say which "
                             f"object each pixel is; instance segmentation reads COCO JSON with polygons or RLE "
                             f"(--task segment learns class masks)")
        targets = super().targets(dataset, options, like)
        for value, example in zip(targets.values, dataset.examples):
            value["segmentations"] = [o.get("segmentation") for o in example.fields["objects"]]
        return targets

    # ----------------------------------------------------------------- the network

    def builder(self) -> Any:
        from zoo_dense.maskrcnn import build_instances

        return build_instances

    def sampler(self, spec: Any, context: Any) -> Any:
        from zoo_dense.samples import InstanceSampler

        return InstanceSampler(spec)

    def graph(self, network: Any, targets_record: Mapping[str, Any]) -> Any:
        from zoo_dense.maskrcnn import instances_graph

        return instances_graph(network)

    # ----------------------------------------------------------------- judging

    def judge(self, outputs: Any, values: Any, context: Any) -> Any:
        from zoo import Score
        from zoo_dense.scoring import average_precision

        report = average_precision(outputs, values, context.targets_record["names"], context.card.input.size,
                                   masks=True)
        return Score(loss=1.0 - report["map"], metric=report[self.metric(context)])

    def evaluate(self, outputs: Any, targets: Any, choices: Mapping[str, Any]) -> dict[str, Any]:
        from zoo_dense.scoring import average_precision

        return average_precision(outputs, targets.values, targets.names, _side(choices), curves=True, masks=True)

    def predictions(self, folder: Path, name: str, dataset: Any, outputs: Any, targets: Any,
                    choices: Mapping[str, Any]) -> None:
        """A detector's lines and pictures, and the held-out pictures' true and predicted objects
        side by side (``report/objects_SET.png``)."""
        from zoo_dense.pictures import draw_objects

        super().predictions(folder, name, dataset, outputs, targets, choices)
        draw_objects(folder / "report" / f"objects_{name}.png", dataset, outputs, targets, _side(choices))

    def lines(self, metrics: Mapping[str, Any]) -> tuple[str, list[str]]:
        summary = ", ".join(f"{name} mask mAP {m['map']:.3f} mAP@.5 {m['map_50']:.3f}, box mAP {m['box_map']:.3f} "
                            f"({m['n']} pictures, {m['objects']} objects)"
                            for name in ("val", "test") if (m := metrics.get(name)))
        _, lines = super().lines(metrics)
        return summary, [line.replace("per class AP", "per class mask AP", 1) for line in lines]

    def output(self, targets_record: Mapping[str, Any], choices: Mapping[str, Any]) -> Any:
        from zoo import Output

        network = choices.get("head") or {}
        return Output(kind="instances", activation="none",
                      metadata={key: network[key] for key in ("score", "nms", "detections", "mask_size")
                                if key in network})
