"""Exporting a dense task's run (``zoo.tasks.contract.DenseTask``: a detector, a segmenter): its
graph of raw outputs, the post-processing the runtime repeats from the metadata, and the checks
that the exported file answers as the PyTorch network does.

- The graph is the task's (:meth:`DenseTask.graph`): pictures in, a row per anchor point out (a
  detector), each class's score at every pixel (a segmenter).
- Beyond the element-wise check every export gets (onnxruntime's raw rows against PyTorch's),
  :func:`kept_agreement` compares what a person is shown: the runtime's kept detections
  (``zoo.postprocess``, through :meth:`zoo.runtime.OnnxModel.predict`) with the PyTorch network's
  own (torchvision's post-processing) on the same samples: the same count and classes, boxes
  within :data:`BOX_TOLERANCE` pixels of the picture and scores within :data:`SCORE_TOLERANCE`
  (a detection within :data:`SCORE_TOLERANCE` of the score threshold may fall either side: it
  is left out of the comparison).
- A segmenter's masks (:func:`mask_agreement`): the runtime's mask of each sample, scaled to
  the picture, against the PyTorch network's scaled the same way: the same class on at least
  :data:`MASK_AGREEMENT` of every picture's pixels.
- An instance segmenter's objects (:func:`instance_agreement`): as a detector's kept boxes, and
  their masks pasted into the picture as one mask of object numbers, the same as PyTorch's pasted
  alike on at least :data:`MASK_AGREEMENT` of every picture's pixels (a mask probability within
  float error of 0.5 may go either way: an IoU per object would fail small objects on one pixel).
- int8 is judged by the task's metric on the run's held-out pictures (mAP or mIoU points).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.errors import InputError, ValidationError

__all__ = ["prepare_dense", "kept_agreement", "mask_agreement", "instance_agreement", "BOX_TOLERANCE", "SCORE_TOLERANCE", "MASK_AGREEMENT"]

BOX_TOLERANCE = 0.5
SCORE_TOLERANCE = 1e-3
#: The share of each picture's pixels on which an exported segmenter must give PyTorch's class
#: (a pixel whose two best classes tie within float error may go either way).
MASK_AGREEMENT = 0.999
#: What the graph's one output is called, per kind of answer.
_OUTPUT_NAMES = {"detection": "detections", "segmentation": "scores", "instances": "instances"}


def prepare_dense(run: Any, folder: Path, card: Any, network: Any, weights: dict[str, Any], *, samples: int,
                  calibration: int, evaluation: int) -> Any:
    """The run's network as a :class:`zoo.export.prepared.Prepared`, validated on its held-out
    pictures (else the training ones, else generated), int8-calibrated on its training pictures
    and judged on the held-out ones."""
    from zoo.data import make_splits
    from zoo.export.prepared import finish, spread
    from zoo.runs.options import FinetuneOptions
    from zoo.samples import generated_items
    from zoo.tasks import get_task
    from zoo.tasks.contract import Targets

    task = get_task(run.task_name)
    options = FinetuneOptions.from_dict(run.config)
    data = options.data
    graph = task.graph(network, run.task)
    output = task.output(run.task, run.choices)
    notes: list[str] = []
    record = {"names": list(run.classes)}
    like = Targets(tuple(run.classes), [], None, record)
    try:
        problem = getattr(task, "problem", None)  # what the run left out (an empty polygon) is left out here too
        splits = make_splits(data.data, modality=card.modality, val=data.val, test=data.test,
                             val_split=data.split_fraction, seed=options.seed, skip_bad=True, by_class=False,
                             problem=(lambda example: problem(example, options)) if problem is not None else None)
    except InputError as exc:
        splits = None
        notes.append(f"the run's data cannot be read ({exc}); validated on generated inputs instead")
    judged: tuple[list[Any], Any] | None = None
    if splits is not None:
        import numpy as np

        held = [d for d in (splits.val, splits.test) if d is not None and len(d)]
        items = [e.item for d in held for e in d.examples]
        train = [e.item for e in splits.train.examples]
        fields: dict[str, Any] = dict(samples=(items or train)[:samples],
                                      samples_from="the run's validation and test pictures" if items else "the run's "
                                      "training pictures", calibration=spread(train, calibration),
                                      calibration_from="the run's training pictures", evaluation=None,
                                      evaluation_from="")
        if items:
            values = np.concatenate([task.targets(d, options, like).values for d in held])
            judged = (items[:evaluation], values[:evaluation])
            fields.update(evaluation_from="the run's validation and test pictures")
    else:
        fields = dict(samples=generated_items(card, samples, seed=1), samples_from="generated (no run data)",
                      calibration=[], calibration_from="", evaluation=None, evaluation_from="")
    source = {"model": card.name, "modality": card.modality, "task": task.name, "run": str(folder.resolve()),
              "head": "network", **output.metadata,
              **({"levels": [int(n) for n in graph.levels]} if hasattr(graph, "levels") else {})}
    prepared = finish(graph, card, network.backbone, probabilities=False, kind=output.kind,
                       output_name=_OUTPUT_NAMES[output.kind], labels=tuple(run.classes), source=source,
                       weights=weights, notes=notes, home=folder.resolve(), **fields)
    agreement, _ = _KINDS[output.kind]
    prepared.check = lambda model: agreement(network, model, prepared.samples)
    if judged is not None:
        metric = options.plan.metric if options.plan.metric in task.metrics else next(iter(task.metrics))
        truth = Targets(tuple(run.classes), judged[1], None, record)
        prepared.evaluation = (judged[0], list(range(len(judged[0]))))
        prepared.judge = lambda model: _metric(task, model, judged[0], truth, run.choices, metric)
        prepared.judge_metric = {"map": "mask mAP" if output.kind == "instances" else "mAP",
                                 "miou": "mIoU"}.get(metric, metric)
    return prepared


def _metric(task: Any, model: Any, items: Sequence[Any], truth: Any, choices: Any, metric: str) -> float:
    """The task's metric of the exported file's answers (in the network's pixels, as the task
    scores a run) on ``items``."""
    _, answer = _KINDS[model.info.kind]
    answers = [answer(out, model.info) for out in model.outputs(items, batch_size=8)]
    return float(task.evaluate(answers, truth, choices)[metric])


def _kept(rows: Any, info: Any) -> dict[str, Any]:
    """A detector's answer as its network gives it: the kept detections in the network's pixels."""
    from zoo.postprocess import kept_detections

    side = info.preprocessing["size"]
    return kept_detections(rows, info.source["levels"], info.source, side, (side[1], side[0]))


def _rows(rows: Any, info: Any) -> dict[str, Any]:
    """An instance segmenter's answer as its network gives it: the kept rows, masks unpasted."""
    rows = rows.reshape(-1, rows.shape[-1])  # one picture's (detections, 6 + m*m)
    kept = rows[rows[:, 4] > 0]
    side = int(info.source["mask_size"])
    return {"boxes": kept[:, :4], "scores": kept[:, 4], "labels": kept[:, 5].round().astype("int64"),
            "masks": kept[:, 6:].reshape(-1, 1, side, side)}


def _best(scores: Any, info: Any) -> dict[str, Any]:
    """A segmenter's answer as its network gives it: the best class of each pixel of its square."""
    return {"mask": scores.argmax(0).astype("uint8")}


def kept_agreement(network: Any, model: Any, items: Sequence[Any]) -> dict[str, Any]:
    """The runtime's kept detections against the PyTorch network's on ``items`` (see the module);
    a ValidationError when they differ."""
    import numpy as np
    import torch

    from zoo.postprocess import picture_size

    feeds = model.encode(list(items))
    pixels = torch.from_numpy(feeds[model.info.inputs[0]])
    network.eval()
    with torch.no_grad():
        reference = [network(pixels[i:i + 8]) for i in range(0, len(pixels), 8)]
    reference = [answer for part in reference for answer in part]
    runtime = model.predict(list(items))
    side = model.info.preprocessing["size"]
    threshold = float(model.info.source["score"])
    worst_box = worst_score = 0.0
    compared = 0
    for item, answer, predicted in zip(items, reference, runtime):
        width, height = picture_size(item)
        scale = np.asarray([width / side[1], height / side[0]] * 2)
        ours = [(b.label, b.score, np.asarray(b.box)) for b in predicted.boxes or ()]
        theirs = [(model.info.labels[int(c)], float(s), b.numpy() * scale)
                  for b, s, c in zip(answer["boxes"], answer["scores"], answer["labels"])]
        ours = [d for d in ours if d[1] > threshold + SCORE_TOLERANCE]
        theirs = [d for d in theirs if d[1] > threshold + SCORE_TOLERANCE]
        if len(ours) != len(theirs):
            raise _differ(predicted.input, f"{len(ours)} kept detections in onnxruntime, {len(theirs)} in PyTorch")
        for (label, score, box), (label2, score2, box2) in zip(sorted(ours, key=lambda d: -d[1]),
                                                               sorted(theirs, key=lambda d: -d[1])):
            if label != label2:
                raise _differ(predicted.input, f"a {label} in onnxruntime where PyTorch has a {label2}")
            worst_box = max(worst_box, float(np.abs(box - box2).max()))
            worst_score = max(worst_score, abs(score - score2))
            compared += 1
    if worst_box > BOX_TOLERANCE or worst_score > SCORE_TOLERANCE:
        raise _differ(f"{len(items)} samples", f"boxes differ by up to {worst_box:.3g} pixels (tolerance "
                                               f"{BOX_TOLERANCE}), scores by {worst_score:.3g} ({SCORE_TOLERANCE})")
    return {"pictures": len(items), "detections": compared, "max_box_diff": round(worst_box, 6),
            "max_score_diff": round(worst_score, 8), "box_tolerance": BOX_TOLERANCE, "score_tolerance": SCORE_TOLERANCE}


def _differ(where: str, what: str) -> ValidationError:
    return ValidationError(f"{where}: the exported detector keeps other boxes than PyTorch ({what}); nothing was "
                           f"written. Please report it")


def mask_agreement(network: Any, model: Any, items: Sequence[Any]) -> dict[str, Any]:
    """The runtime's masks against the PyTorch network's on ``items``, both in the picture's pixels
    (see the module); a ValidationError when a picture agrees on less than :data:`MASK_AGREEMENT`."""
    import numpy as np
    import torch

    from zoo.postprocess import mask_in_picture

    feeds = model.encode(list(items))
    pixels = torch.from_numpy(feeds[model.info.inputs[0]])
    network.eval()
    with torch.no_grad():
        reference = [a["mask"].numpy() for i in range(0, len(pixels), 8) for a in network(pixels[i:i + 8])]
    shares = []
    for answer, predicted in zip(reference, model.predict(list(items))):
        height, width = predicted.mask.shape
        shares.append(float(np.mean(mask_in_picture(answer, (width, height)) == predicted.mask)))
    worst = min(shares) if shares else 1.0
    if worst < MASK_AGREEMENT:
        where = [str(i) for i, s in zip(items, shares) if s == worst][0]
        raise ValidationError(f"{where}: the exported segmenter gives PyTorch's class on {worst:.2%} of its pixels "
                              f"(at least {MASK_AGREEMENT:.1%} required); nothing was written. Please report it")
    return {"pictures": len(shares), "worst_agreement": round(worst, 6),
            "mean_agreement": round(float(np.mean(shares)) if shares else 1.0, 6), "required": MASK_AGREEMENT}


def instance_agreement(network: Any, model: Any, items: Sequence[Any]) -> dict[str, Any]:
    """The runtime's objects against the PyTorch network's on ``items``, masks pasted alike into
    each picture (see the module); a ValidationError when they differ."""
    import numpy as np
    import torch

    from zoo.postprocess import instance_mask, kept_instances, picture_size

    side = model.info.preprocessing["size"]
    threshold = float(model.info.source["score"])
    worst_box = worst_score = 0.0
    worst_mask = 1.0
    compared = 0
    network.eval()
    for item, predicted in zip(items, model.predict(list(items))):
        pixels = torch.from_numpy(model.encode([item])[model.info.inputs[0]])
        with torch.no_grad():
            answer = {k: v.numpy() for k, v in network(pixels)[0].items()}
        size = picture_size(item)
        rows = np.concatenate([answer["boxes"], answer["scores"][:, None], answer["labels"][:, None],
                               answer["masks"].reshape(len(answer["boxes"]), answer["masks"].shape[-1] ** 2)], axis=1)
        theirs = kept_instances(rows, side, size)
        keep = theirs["scores"] > threshold + SCORE_TOLERANCE
        ours = [b for b in predicted.boxes or () if b.score > threshold + SCORE_TOLERANCE]
        if len(ours) != int(keep.sum()):
            raise _differ(predicted.input, f"{len(ours)} kept objects in onnxruntime, {int(keep.sum())} in PyTorch")
        numbers = np.flatnonzero(keep)
        mine = instance_mask(theirs["masks"], theirs["scores"])
        shown = len(ours)  # the objects over the threshold are the first (best first): compare those numbers
        same = np.where(predicted.mask > shown, 0, predicted.mask) == np.where(mine > shown, 0, mine)
        worst_mask = min(worst_mask, float(same.mean()))
        for box, k in zip(ours, numbers):
            if box.label != model.info.labels[int(theirs["labels"][k])]:
                raise _differ(predicted.input, f"a {box.label} in onnxruntime where PyTorch has a "
                                               f"{model.info.labels[int(theirs['labels'][k])]}")
            worst_box = max(worst_box, float(np.abs(np.asarray(box.box) - theirs["boxes"][k]).max()))
            worst_score = max(worst_score, abs(box.score - float(theirs["scores"][k])))
            compared += 1
    if worst_box > BOX_TOLERANCE or worst_score > SCORE_TOLERANCE or worst_mask < MASK_AGREEMENT:
        raise _differ(f"{len(items)} samples", f"boxes differ by up to {worst_box:.3g} pixels (tolerance "
                                               f"{BOX_TOLERANCE}), scores by {worst_score:.3g} ({SCORE_TOLERANCE}), "
                                               f"object masks agree on {worst_mask:.2%} of a picture's pixels "
                                               f"({MASK_AGREEMENT:.1%})")
    return {"pictures": len(items), "objects": compared, "max_box_diff": round(worst_box, 6),
            "max_score_diff": round(worst_score, 8), "worst_agreement": round(worst_mask, 6),
            "box_tolerance": BOX_TOLERANCE, "score_tolerance": SCORE_TOLERANCE, "mask_required": MASK_AGREEMENT}


#: Per kind of answer: the check of the exported file against PyTorch, and its raw output as the
#: network's own answer (what the task's metrics score).
_KINDS = {"detection": (kept_agreement, _kept), "segmentation": (mask_agreement, _best),
          "instances": (instance_agreement, _rows)}
