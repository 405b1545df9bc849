"""Semantic segmentation (``--task segment``): a class for every pixel, on any backbone whose card
has feature maps.

- Targets: each picture's class-index mask, kept as where to read it (:mod:`zoo_dense.masks`: a
  folder of ``images/``, ``masks/`` and ``classes.txt``, Pascal VOC's ``SegmentationClass/``, or
  COCO JSON whose objects' polygons or RLE are painted in order, ``background`` being index 0).
  255 is ignore: never trained on, never scored. Classes keep the data's index order.
- Network: the card's maps at strides 4 to 32 through an FPN and a light decoder
  (:mod:`zoo_dense.segnet`, which says why not DeepLabHead), upsampled to the input; the loss is
  cross-entropy, with balanced class weights when the training pixels' classes are extremely
  unbalanced (:data:`IMBALANCE`; ``--class-weight`` decides as for classification).
- Recipe: zoo's gradual recipe over the one epoch loop, as for a detector (the pyramid and decoder
  through the frozen backbone, then the top stages unfrozen), judged on the validation split by
  mIoU (or ``--metric pixel_accuracy``); the best epoch is restored. Augmentation moves the mask
  with the picture (``tv_tensors.Mask``).
- Metrics: ``miou``, ``iou`` per class and ``pixel_accuracy`` in the pictures' own pixels
  (:mod:`zoo_dense.pixels`), with the pixel confusion matrix, in ``report/metrics.json``.
- Report: held-out pictures beside their true and predicted masks, the confusion matrix, each
  picture's classes and mIoU in ``report/predictions.jsonl``.
- Export: each class's score at every pixel of the network's square; the runtime takes the best
  class and scales the mask to the picture (``zoo.postprocess.mask_in_picture``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo import InputError
from zoo_dense.common import DenseBase

__all__ = ["Segmentation", "LEARNING", "IMBALANCE"]

#: The recipe's defaults (as a detector's: bench/segment_pasted.py): the pyramid and decoder
#: train through the frozen backbone, then the top 2 stages are unfrozen, each phase up to 16
#: epochs (stopping when validation stops improving); the new network learns at 10x the
#: backbone's rate; batches of 4 pictures. On seed 1's validation split (never the test
#: pictures), batches of 32 reached mIoU 0.611 in 104 s, batches of 4 0.682 in 90 s, both
#: phases still improving at their 8th epoch.
LEARNING: Mapping[str, Any] = {"unfreeze": 2, "unfreeze_epochs": 16, "backbone_lr": 2e-4, "batch_size": 4}
#: ``--class-weight auto`` weights the loss only when the most frequent class has this many times
#: the training pixels of the rarest: a background that covers most of every picture is the rule
#: in segmentation, and balancing it away costs more than it gives. On pasted-photos (background
#: 77x the rarest class) balanced weights took the test mIoU from 0.480 to 0.256 (background IoU
#: 0.96 -> 0.67; efficientnet_lite0, the frozen phase alone, 6 epochs, seed 0:
#: bench/segment_pasted.py --heads --class-weight); ``--class-weight balanced`` still weights.
IMBALANCE = 1000.0
#: The first class of COCO data (painted where no object is).
BACKGROUND = "background"


class Segmentation(DenseBase):
    """The semantic segmentation task (see the module)."""

    name = "segmentation"
    aliases = ("segment",)
    description = ("a class for every pixel (masks folder, VOC SegmentationClass, COCO polygons/RLE): FPN + decoder on "
                   "the card's feature maps")
    making = "masks"
    strides = (4, 8, 16, 32)
    metrics = {"miou": True, "pixel_accuracy": True}
    metric_names = {"miou": "mIoU", "pixel_accuracy": "pixel accuracy"}
    rank_name = "1 - mIoU"
    learning = LEARNING

    # ----------------------------------------------------------------- data

    def claims(self, dataset: Any, options: Any) -> bool:
        return not options.data.target and any(e.fields is not None and "mask" in e.fields
                                                for e in dataset.examples[:50])

    def problem(self, example: Any, options: Any) -> str | None:
        """Why a picture cannot be learnt from: no mask nor objects, or an object whose polygon is
        empty (a mask file's own faults are its format's to report)."""
        from zoo_dense.masks import objects_problem

        fields = example.fields or {}
        if "mask" in fields:
            return None
        if "objects" not in fields:
            return "no mask (a segmentation needs a mask per picture, or COCO objects with polygons or RLE)"
        return objects_problem(fields["objects"], fields.get("size"))

    def targets(self, dataset: Any, options: Any, like: Any = None) -> Any:
        import hashlib

        import numpy as np

        from zoo import Targets

        examples = dataset.examples
        if any(e.fields is None or not ({"mask", "objects"} & set(e.fields)) for e in examples):
            raise InputError(f"{dataset.name}: a segmentation needs a mask per picture (a folder with images/, masks/ "
                             f"and classes.txt, VOC's SegmentationClass/, or COCO JSON with polygons or RLE), and this "
                             f"data has none; give such data, or choose another --task")
        names = tuple(like.names) if like is not None else _names(examples)
        index = {name: i for i, name in enumerate(names)}
        values = np.empty(len(examples), dtype=object)
        for row, example in enumerate(examples):
            fields = example.fields
            size = [int(v) for v in fields["size"]]
            if "mask" in fields:  # its bytes' digest: an edited mask is other data to a resumed run
                digest = hashlib.sha256(Path(fields["mask"]).read_bytes()).hexdigest()
                values[row] = {"mask": str(fields["mask"]), "size": size, "sha256": digest}
                continue
            unknown = next((o["class"] for o in fields["objects"] if o["class"] not in index), None)
            if unknown is not None:
                raise InputError(f"{example.where}: class {unknown!r} is not one of the training classes "
                                 f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}); fix the data or add the "
                                 f"class to the training data")
            values[row] = {"objects": [{"index": index[o["class"]], "segmentation": o["segmentation"],
                                        "crowd": bool(o.get("crowd"))} for o in fields["objects"]], "size": size}
        return Targets(names, values, None, {"names": list(names)})

    # ----------------------------------------------------------------- the network

    def network(self, backbone: Any, targets: Any, context: Any) -> Any:
        from zoo_dense.segnet import build_segmenter

        card = backbone.card
        maps = self.feature_maps(card)
        weights = _weights(targets, context) if len(targets.values) else None
        network = build_segmenter(backbone, maps, [card.features[m] for m in maps], len(targets.names),
                                  weights=weights)
        network.record["size"] = list(card.input.size)
        return network

    def sampler(self, spec: Any, context: Any) -> Any:
        from zoo_dense.samples import MaskSampler

        return MaskSampler(spec, len(context.targets_record["names"]))

    def graph(self, network: Any, targets_record: Mapping[str, Any]) -> Any:
        from zoo_dense.segnet import segmenter_graph

        return segmenter_graph(network)

    # ----------------------------------------------------------------- judging

    def judge(self, outputs: Any, values: Any, context: Any) -> Any:
        from zoo import Score

        report = _measure(outputs, values, context.targets_record["names"])
        return Score(loss=1.0 - report["miou"], metric=report[self.metric(context)])

    def evaluate(self, outputs: Any, targets: Any, choices: Mapping[str, Any]) -> dict[str, Any]:
        return _measure(outputs, targets.values, targets.names)

    def predictions(self, folder: Path, name: str, dataset: Any, outputs: Any, targets: Any,
                    choices: Mapping[str, Any]) -> None:
        """Each held-out picture's classes and mIoU in ``report/predictions.jsonl``, and the worst
        of them beside their true and predicted masks (``report/masks_SET.png``)."""
        from zoo_dense.pixels import draw_masks, write_masks

        write_masks(folder, name, dataset, outputs, targets)
        draw_masks(folder / "report" / f"masks_{name}.png", dataset, outputs, targets)

    def lines(self, metrics: Mapping[str, Any]) -> tuple[str, list[str]]:
        summary = ", ".join(f"{name} mIoU {m['miou']:.3f} pixel accuracy {m['pixel_accuracy']:.3f} ({m['n']} pictures)"
                            for name in ("val", "test") if (m := metrics.get(name)))
        lines = []
        held = metrics.get("test") or metrics.get("val") or {}
        if held.get("iou"):
            lines.append("IoU per class: " + ", ".join(f"{c} {v:.3f}" if v is not None else f"{c} -"
                                                        for c, v in held["iou"].items()))
        if metrics.get("baseline_line"):
            lines.append(metrics["baseline_line"])
        return summary, lines

    def plots(self, metrics: Mapping[str, Any], names: Sequence[str], folder: Path) -> list[Path]:
        from zoo_dense.pixels import plot_confusion

        return [plot_confusion(metrics[name]["confusion"], names, folder / f"confusion_{name}.png", name)
                for name in ("val", "test") if metrics.get(name) and metrics[name].get("confusion")]

    def output(self, targets_record: Mapping[str, Any], choices: Mapping[str, Any]) -> Any:
        from zoo import Output

        return Output(kind="segmentation", activation="none")


def _names(examples: Sequence[Any]) -> tuple[str, ...]:
    """The classes in index order: a mask format's list, or COCO's categories after the background."""
    declared = tuple(str(c) for c in examples[0].fields.get("categories", ())) if examples else ()
    if examples and "mask" in examples[0].fields:
        return declared
    found = {o["class"] for e in examples for o in e.fields.get("objects", ())}
    classes = [c for c in declared if c != BACKGROUND] + sorted(found - set(declared) - {BACKGROUND})
    return (BACKGROUND, *classes)


def _measure(outputs: Sequence[Any], values: Sequence[Any], names: Sequence[str]) -> dict[str, Any]:
    """The set's pixel confusion matrix and its scores (:mod:`zoo_dense.pixels`)."""
    import numpy as np

    from zoo_dense.pixels import confusion, pairs, scores

    matrix = np.zeros((len(names), len(names)), np.int64)
    for truth, predicted in pairs(outputs, values, len(names)):
        matrix += confusion(truth, predicted, len(names))
    return {**scores(matrix, names), "confusion": matrix.tolist(), "n": len(values), "pixels": int(matrix.sum())}


def _weights(targets: Any, context: Any) -> list[float] | None:
    """The loss's class weights from the training masks' pixels (``--class-weight``: ``auto``
    balances beyond :data:`IMBALANCE`, as zoo.classweights balances classes), said in the log."""
    import numpy as np

    from zoo import class_weights
    from zoo_dense.masks import decode

    rule = context.options.head.class_weight
    if rule == "none":
        return None
    count = len(targets.names)
    pixels = np.zeros(count, np.int64)
    for value in targets.values:
        mask = decode(value, count)
        pixels += np.bincount(mask[mask < count], minlength=count)[:count]
    present = pixels[pixels > 0]
    if rule == "auto" and (not len(present) or present.max() <= IMBALANCE * present.min()):
        return None
    weights = class_weights(pixels.tolist(), "balanced")
    if weights and context.log is not None:
        context.log(f"balanced class weights in the loss (training pixels per class from {int(present.min())} to "
                    f"{int(present.max())}; --class-weight none to turn off)")
    return weights
