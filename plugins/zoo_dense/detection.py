"""Object detection (``--task detect``): boxes and their classes, on any backbone whose card has
feature maps.

- Targets: each picture's objects (COCO JSON, YOLO or Pascal VOC, read by :mod:`zoo_dense.formats`;
  classes are the declared categories, sorted by name like every zoo label space): an object
  array of ``{"boxes", "labels", "crowd", "size"}`` per picture, boxes in its own pixels.
- Network: the card's feature maps at strides 8, 16, 32 through an FPN into torchvision's FCOS
  (:mod:`zoo_dense.network`); its losses are FCOS's own. Pictures are read whole, squashed to a
  square of the card's input size rounded up to a multiple of 32.
- Recipe: zoo's gradual recipe over the one epoch loop. Phase 0 trains the pyramid and the head
  through the frozen backbone, then the top stages are unfrozen one by one (:data:`LEARNING`),
  each phase judged on the validation split by COCO mAP (the selection metric, ``map`` or
  ``map_50``); the best epoch is restored.
- Metrics: torchmetrics' ``MeanAveragePrecision`` (:mod:`zoo_dense.scoring`) in the pictures'
  own pixels; ``report/metrics.json`` holds them under torchmetrics' names, per class too.
- Report: precision-recall curves per class, held-out pictures with their true and predicted
  boxes, each picture's boxes in ``report/predictions.jsonl``.
- Export: the raw rows per anchor point (:func:`zoo_dense.network.detector_graph`); the runtime
  selects, suppresses and scales them in numpy (``zoo.postprocess``) exactly as FCOS does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo import InputError
from zoo_dense.common import DenseBase, strides_of

__all__ = ["Detection", "LEARNING", "strides_of"]

#: The recipe's defaults for a detector (measured on pasted-photos with efficientnet_lite0, 2 CPU
#: cores, on the validation split of seeds 1 and 2, never the test pictures: bench/detect_pasted.py):
#: the pyramid and head train through the frozen backbone up to 16 epochs, then the top 2 stages
#: are unfrozen (each phase up to 16, stopping when validation stops improving); the new network
#: learns at 10x the backbone's rate; batches of 4 pictures. Batches of 32 / 8 / 4 reached mAP
#: 0.304 / 0.356 / 0.388 (seed 1, 8 epochs a phase, 95 / 101 / 67 s): a detector learns from the
#: number of steps more than from their size, and phase 0's cached maps make small steps cheap;
#: phase 0 was still improving at its 8th epoch on both seeds, and up to 16 reached 0.434 (81 s).
LEARNING: Mapping[str, Any] = {"unfreeze": 2, "unfreeze_epochs": 16, "backbone_lr": 2e-4, "batch_size": 4}


class Detection(DenseBase):
    """The detection task (see the module)."""

    name = "detection"
    aliases = ("detect",)
    description = "boxes and their classes per picture (COCO JSON, YOLO, VOC): FPN + FCOS on the card's feature maps"
    making = "boxes"
    strides = (8, 16, 32)
    metrics = {"map": True, "map_50": True}
    metric_names = {"map": "mAP@[.5:.95]", "map_50": "mAP@.5"}
    rank_name = "1 - mAP"
    learning = LEARNING

    # ----------------------------------------------------------------- options and data

    def _refused(self, options: Any) -> list[tuple[str, bool]]:
        # torchvision's automatic policies move no boxes (TrivialAugmentWide, RandAugment refuse them)
        policy = options.unfreezing.augment
        return [("--class-weight balanced", options.head.class_weight == "balanced"),
                (f"--augment {policy}", policy in ("trivialaugment", "randaugment"))]

    def claims(self, dataset: Any, options: Any) -> bool:
        return not options.data.target and any(e.fields is not None and "objects" in e.fields
                                                for e in dataset.examples[:50])

    def targets(self, dataset: Any, options: Any, like: Any = None) -> Any:
        import numpy as np

        from zoo import Targets

        examples = dataset.examples
        if any(e.fields is None or "objects" not in e.fields for e in examples):
            raise InputError(f"{dataset.name}: a detection needs boxes per picture (COCO JSON, a YOLO data.yaml or a "
                             f"Pascal VOC folder), and this data has none; give such data, or choose another --task")
        if like is None:
            names = tuple(sorted({str(c) for e in examples for c in e.fields.get("categories", ())}
                                 | {o["class"] for e in examples for o in e.fields["objects"]}))
            if not names:
                raise InputError(f"{dataset.name}: no classes declared and no objects; nothing to detect")
        else:
            names = tuple(like.names)
        index = {name: i for i, name in enumerate(names)}
        values = np.empty(len(examples), dtype=object)
        for row, example in enumerate(examples):
            objects = example.fields["objects"]
            unknown = next((o["class"] for o in objects if o["class"] not in index), None)
            if unknown is not None:
                raise InputError(f"{example.where}: class {unknown!r} is not one of the training classes "
                                 f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}); fix the data or add the "
                                 f"class to the training data")
            values[row] = {"boxes": np.asarray([o["box"] for o in objects], np.float32).reshape(-1, 4),
                           "labels": np.asarray([index[o["class"]] for o in objects], np.int64),
                           "crowd": np.asarray([bool(o.get("crowd")) for o in objects], bool),
                           "size": tuple(int(v) for v in example.fields["size"])}
        return Targets(names, values, None, {"names": list(names)})

    # ----------------------------------------------------------------- the network

    def network(self, backbone: Any, targets: Any, context: Any) -> Any:
        card = backbone.card
        maps = self.feature_maps(card)
        strides = strides_of(card)
        detector = self.builder()(backbone, maps, [card.features[m] for m in maps], [strides[m] for m in maps],
                                  len(targets.names))
        detector.record["size"] = list(card.input.size)
        return detector

    def builder(self) -> Any:
        """What builds the network on the maps: ``(backbone, maps, channels, strides, classes)``."""
        from zoo_dense.network import build_detector

        return build_detector

    def sampler(self, spec: Any, context: Any) -> Any:
        from zoo_dense.samples import BoxSampler

        return BoxSampler(spec)

    def graph(self, network: Any, targets_record: Mapping[str, Any]) -> Any:
        from zoo_dense.network import detector_graph

        return detector_graph(network, tuple(targets_record["input"]["size"]))

    # ----------------------------------------------------------------- judging

    def judge(self, outputs: Any, values: Any, context: Any) -> Any:
        from zoo import Score
        from zoo_dense.scoring import average_precision

        report = average_precision(outputs, values, context.targets_record["names"], context.card.input.size)
        return Score(loss=1.0 - report["map"], metric=report[self.metric(context)])

    def evaluate(self, outputs: Any, targets: Any, choices: Mapping[str, Any]) -> dict[str, Any]:
        from zoo_dense.scoring import average_precision

        return average_precision(outputs, targets.values, targets.names, _side(choices), curves=True)

    def predictions(self, folder: Path, name: str, dataset: Any, outputs: Any, targets: Any,
                    choices: Mapping[str, Any]) -> None:
        """Each held-out picture's boxes, true and predicted, in ``report/predictions.jsonl``, and
        a few of them drawn (``report/boxes_SET.png``)."""
        from zoo_dense.pictures import draw_pictures, write_boxes

        write_boxes(folder, name, dataset, outputs, targets, _side(choices))
        draw_pictures(folder / "report" / f"boxes_{name}.png", dataset, outputs, targets, _side(choices))

    def lines(self, metrics: Mapping[str, Any]) -> tuple[str, list[str]]:
        summary = ", ".join(f"{name} mAP {m['map']:.3f} mAP@.5 {m['map_50']:.3f} ({m['n']} pictures, "
                            f"{m['objects']} objects)" for name in ("val", "test") if (m := metrics.get(name)))
        lines = []
        held = metrics.get("test") or metrics.get("val") or {}
        per_class = held.get("per_class") or {}
        if per_class:
            lines.append("per class AP@[.5:.95]: " + ", ".join(f"{c} {v['map']:.3f}" for c, v in per_class.items()))
        if metrics.get("baseline_line"):
            lines.append(metrics["baseline_line"])
        return summary, lines

    def plots(self, metrics: Mapping[str, Any], names: Sequence[str], folder: Path) -> list[Path]:
        from zoo_dense.pictures import plot_curves

        return [plot_curves(metrics[name]["curves"], folder / f"pr_{name}.png", name)
                for name in ("val", "test") if metrics.get(name) and metrics[name].get("curves")]

    def output(self, targets_record: Mapping[str, Any], choices: Mapping[str, Any]) -> Any:
        from zoo import Output

        network = choices.get("head") or {}
        return Output(kind="detection", activation="none",
                      metadata={key: network[key] for key in ("score", "nms", "detections", "candidates")
                                if key in network})


def _side(choices: Mapping[str, Any]) -> tuple[int, int]:
    """The square the network reads (its record in ``choices.json``)."""
    return tuple(choices["head"]["size"])
