"""Single-label classification: one class per example, softmax out.

- Targets: the dataset's label column (``label``, or ``--target COLUMN``), as class indices;
  folds and splits are stratified by class.
- Loss: cross-entropy with label smoothing, and balanced class weights when the largest training
  class has over 3x the examples of the smallest (:mod:`zoo.classweights`). Epochs are judged by
  the held-out cross-entropy (smooth on small sets), reported with ``--metric`` (accuracy or
  macro-F1).
- The frozen head: the probe's nested cross-validated logistic regression on L2-normalised
  features (:mod:`zoo.fitting.linear`), ranked by log-loss; for text models optionally mixed with
  the class names' zero-shot classifier (:mod:`zoo.tasks.prior`).
- Baseline: the same logistic regression on raw pixels, TF-IDF or a front end's features.
- Report: accuracy, macro-F1, per-class precision / recall / F1 and the confusion matrix
  (scikit-learn's), and a confusion-matrix picture per held-out set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import InputError
from zoo.tasks.contract import Estimate, Output, Score, Targets, TaskContext

__all__ = ["Classification"]

#: --metric: what the head's regularisation, keeping unfrozen layers and the baseline line judge by.
_METRICS = {"accuracy": ("accuracy", "accuracy"), "macro_f1": ("macro_f1", "macro-F1")}


class Classification:
    """The built-in single-label classification task."""

    name = "classification"
    description = "one class per example (softmax); the default for a label column"
    metrics = {"accuracy": True, "macro_f1": True}
    by_class = True
    chooses_cut = True
    epochs = True
    rank_name = "log-loss"

    def check(self, options: Any) -> None:
        return None

    # ----------------------------------------------------------------- data

    def claims(self, dataset: Any, options: Any) -> bool:
        """A label column (or ``--target COLUMN`` of class names: values a regression did not claim)."""
        target = options.data.target
        if not target:
            return bool(dataset.classes)
        return "," not in str(target) and any(str(target) in (e.fields or {}) for e in dataset.examples)

    def targets(self, dataset: Any, options: Any, like: Targets | None = None) -> Targets:
        import numpy as np

        values = np.asarray(dataset.labels, dtype=np.int64)
        if like is not None and tuple(dataset.classes) != tuple(like.names):
            raise InputError(f"{dataset.name}: classes {list(dataset.classes)[:5]} are not the training data's "
                             f"{list(like.names)[:5]}")
        return Targets(tuple(dataset.classes), values, values)

    # ----------------------------------------------------------------- heads and losses

    def head(self, in_dim: int, targets: Targets, context: TaskContext, *, normalised: bool) -> Any:
        from zoo.tasks.heads import make_head

        head = context.options.head
        return make_head("linear" if normalised else head.kind, in_dim, len(targets.names), hidden=head.hidden,
                         dropout=head.dropout, normalised=normalised)

    def class_weights(self, targets: Targets, options: Any) -> tuple[float, ...] | None:
        """Balanced weights per class (``--class-weight``: auto balances when the largest training
        class has over 3x the examples of the smallest), or None."""
        import numpy as np

        from zoo.classweights import class_weights

        counts = np.bincount(np.asarray(targets.values), minlength=len(targets.names)).tolist()
        weights = class_weights(counts, options.head.class_weight)
        return tuple(weights) if weights else None

    def loss(self, targets: Targets, context: TaskContext) -> Any:
        import torch

        weights = context.class_weights
        weight = torch.tensor(weights, dtype=torch.float32) if weights else None
        return _CrossEntropy(weight, context.options.head.label_smoothing)

    def judge(self, outputs: Any, values: Any, context: TaskContext) -> Score:
        import numpy as np
        import torch

        weights = context.class_weights
        loss = torch.nn.functional.cross_entropy(outputs.float(), torch.as_tensor(values),
                                                 weight=torch.tensor(weights, dtype=torch.float32) if weights else None)
        return Score(loss=float(loss), metric=_metric(np.asarray(values), outputs.argmax(1).numpy(),
                                                      context.options.plan.metric))

    # ----------------------------------------------------------------- the frozen head

    def cross_validate(self, x: Any, targets: Targets, context: TaskContext, *, seed: int) -> Estimate:
        from zoo.fitting.linear import cross_validate

        score = cross_validate(x, targets.values, seed=seed, class_weight=context.class_weight,
                               metric=context.options.plan.metric, where=context.where)
        scores = score.to_dict()
        return Estimate(scores={k: v for k, v in scores.items() if k != "C"}, rank=score.log_loss,
                        params={"C": score.C})

    def fit(self, x: Any, targets: Targets, params: Mapping[str, Any], context: TaskContext) -> Any:
        import numpy as np

        from zoo.fitting.linear import fit_probe
        from zoo.tasks.heads import NormalisedLinear

        weight, bias = fit_probe(x, targets.values, params["C"], class_weight=context.class_weight).linear()
        present = np.unique(targets.values)
        if len(present) < len(targets.names):  # a fold's part without a class: never predicted
            full, shifted = np.zeros((len(targets.names), weight.shape[1])), np.full(len(targets.names), -1e4)
            full[present], shifted[present] = weight, bias
            weight, bias = full, shifted
        return NormalisedLinear.fitted(weight, bias)

    def refine(self, head: Any, x: Any, targets: Targets, params: Mapping[str, Any], context: TaskContext, *,
               folder: Path, resume: bool, cut: Sequence[str]) -> tuple[Any, dict[str, Any] | None,
                                                                       dict[str, Any] | None]:
        """A text model's cross-validated head mixed with the class names' zero-shot classifier,
        the weight chosen on folds (:mod:`zoo.tasks.prior`); the head itself elsewhere. Returns the
        head, the choice for the run's record and the judgement for its report (or None, None)."""
        from zoo.tasks.prior import label_texts, mixed_head

        names = label_texts(context.options.plan.labels, targets.names, context.card, context.options.data.data)
        return mixed_head(head, x, targets, params, context, folder=folder, resume=resume, cut=cut, names=names)

    def zero_shot_head(self, prototypes: Any, scale: float, bias: float, context: TaskContext) -> Any:
        """The class names' zero-shot classifier as this task's head (an image-text model's: its
        prototypes, logit scale and bias; :mod:`zoo.train.wiseft` fine-tunes from it): a softmax
        over ``scale * cosine + bias``, the zero-shot probabilities themselves."""
        from zoo.tasks.heads import PrototypeHead

        return PrototypeHead(prototypes, scale, bias)

    def validate(self, targets: Targets, context: TaskContext) -> None:
        """Before any work: ``--labels`` names every class of the data, for a text model."""
        from zoo.tasks.prior import label_texts

        label_texts(context.options.plan.labels, targets.names, context.card, context.options.data.data)

    # ----------------------------------------------------------------- judging the result

    def evaluate(self, outputs: Any, targets: Targets, choices: Mapping[str, Any]) -> dict[str, Any]:
        import numpy as np

        from zoo.tasks.metrics import classification_report

        return classification_report(targets.values, np.asarray(outputs).argmax(1), targets.names)

    def predictions(self, folder: Path, name: str, dataset: Any, outputs: Any, targets: Targets,
                    choices: Mapping[str, Any]) -> None:
        """Each held-out example's class probabilities, for the report page's gallery."""
        import numpy as np

        from zoo.predictions import write_predictions

        shifted = np.asarray(outputs, dtype=np.float64)
        shifted = np.exp(shifted - shifted.max(1, keepdims=True))
        write_predictions(folder, name, dataset, shifted / shifted.sum(1, keepdims=True), targets.names)

    def baseline(self, modality: str, labelled: Any, targets: Targets,
                 held_out: Mapping[str, tuple[Any, Targets]], context: TaskContext, *, seed: int) -> dict[str, Any] | None:
        return _baseline(modality, labelled, targets, held_out, context, seed=seed)

    def lines(self, metrics: Mapping[str, Any]) -> tuple[str, list[str]]:
        summary = ", ".join(f"{name} acc {m['accuracy']:.3f} macro-F1 {m['macro_f1']:.3f} (n={m['n']})"
                            for name in ("val", "test") if (m := metrics.get(name)))
        lines = []
        tuned = metrics.get("contrastive")
        if tuned:
            lines.append(_contrastive_line(tuned))
        if metrics.get("validation") == "cv":
            head = metrics.get("cv", {}).get("head", {})
            after = " (optimistic: the encoder was trained on every fold)" if tuned else ""
            lines.append(f"cut {'+'.join(metrics.get('cut', []))}: cross-validated accuracy "
                         f"{head.get('accuracy', 0):.3f} macro-F1 {head.get('macro_f1', 0):.3f} over "
                         f"{head.get('folds')} folds x {head.get('repeats')}{after}")
            prior = metrics.get("cv", {}).get("label_prior")
            if prior:
                chosen = next(s for s in prior["scores"] if (s["weight"], s["scale"]) == (prior["weight"], prior["scale"]))
                alone = next(s for s in prior["scores"] if s["weight"] == 1.0)
                lines.append(f"label names as a prior, weight {prior['weight']:g}: cross-validated accuracy "
                             f"{chosen['accuracy']:.3f} (zero-shot alone {alone['accuracy']:.3f})")
        schedule = metrics.get("cv", {}).get("schedule") or metrics.get("unfrozen")
        if schedule:
            lines.append(_schedule_line(schedule, metrics.get("metric", "accuracy")))
        if metrics.get("baseline_line"):
            lines.append(metrics["baseline_line"])
        return summary, lines

    def plots(self, metrics: Mapping[str, Any], names: Sequence[str], folder: Path) -> list[Path]:
        from zoo.tasks.plots import plot_confusion

        return [plot_confusion(metrics[name]["confusion"], names, folder / f"confusion_{name}.png",
                               f"{name}: accuracy {metrics[name]['accuracy']:.3f}")
                for name in ("val", "test") if metrics.get(name)]

    def compare(self, transfer: Mapping[str, Any], base: dict[str, Any] | None, context: TaskContext) -> str:
        from zoo.tasks.baseline import compare

        key, label = _METRICS[context.options.plan.metric]
        return compare(dict(transfer), base, key, label)

    def output(self, targets_record: Mapping[str, Any], choices: Mapping[str, Any]) -> Output:
        return Output(kind="classifier", activation="softmax")


class _CrossEntropy:
    """Summed cross-entropy (the learner divides by :meth:`weight`: under torch.distributed each
    rank holds part of a batch, and the batch's mean must be the one-process mean)."""

    def __init__(self, weight: Any, smoothing: float) -> None:
        import torch

        self.weight = weight
        self.fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing, reduction="sum")

    def to(self, device: Any) -> _CrossEntropy:
        self.fn = self.fn.to(device)
        return self

    def __call__(self, outputs: Any, values: Any) -> Any:
        return self.fn(outputs.float(), values)

    def weight_of(self, values: Any) -> float:
        """What CrossEntropyLoss's mean divides a batch's summed loss by: its count, or with class
        weights the sum of its examples' weights."""
        if self.weight is None:
            return float(len(values))
        return float(self.weight[values.cpu()].sum())


def _metric(truth: Any, predicted: Any, metric: str) -> float:
    from sklearn.metrics import accuracy_score, f1_score

    if metric == "macro_f1":
        return float(f1_score(truth, predicted, average="macro", zero_division=0))
    return float(accuracy_score(truth, predicted))


def _contrastive_line(tuned: Mapping[str, Any]) -> str:
    rounds = tuned["rounds"]
    line = (f"contrastive: {tuned['pairs']} pairs, pair loss {rounds[0]['pair_loss']:.3f} -> "
            f"{rounds[-1]['pair_loss']:.3f} over {len(rounds)} rounds" if rounds else
            f"contrastive: {tuned.get('stopped', 'no round completed')}")
    if tuned.get("judged") and rounds:
        kept = tuned["best"]
        line += (f"; kept round {kept} (val loss {rounds[kept - 1]['val_loss']:.3f} vs the pulled encoder's "
                 f"{tuned['start']['val_loss']:.3f})" if kept else
                 f"; kept the pulled encoder (val loss {tuned['start']['val_loss']:.3f}, no round beat it)")
    return line


def _schedule_line(schedule: Mapping[str, Any], metric: str) -> str:
    judged = f"on {schedule['folds']} folds" if schedule.get("folds") else "on the validation split"
    return (f"unfrozen layers {'kept' if schedule['kept'] else 'not kept'}: {schedule['unfrozen']:.3f} vs the "
            f"head's {schedule['head']:.3f} {judged}")


def _baseline(modality: str, labelled: Any, targets: Targets, held_out: Mapping[str, tuple[Any, Targets]],
              context: TaskContext, *, seed: int) -> dict[str, Any] | None:
    """The logistic regression of the transfer head on the baseline's raw features (see
    :mod:`zoo.tasks.baseline`), cross-validated and scored on each held-out set."""
    import time

    from sklearn.metrics import accuracy_score, f1_score

    from zoo.fitting.linear import UNTUNED_C, cross_validate, fit_probe
    from zoo.tasks.baseline import LIMIT, raw_features, sampled

    started = time.perf_counter()
    keep = sampled(len(labelled), targets.values, seed)
    items = [labelled.examples[i].item for i in keep]
    y = targets.values[keep]
    raw = raw_features(modality, items, context.spec)
    if raw is None:
        return None
    name = (f"logistic regression on {raw.name}" if modality == "image" and context.spec.front_end is None
            else raw.name if context.spec is not None and context.spec.front_end is not None
            else f"{raw.name} + logistic regression")
    try:
        score = cross_validate(raw.features, y, seed=seed, class_weight=context.class_weight,
                               metric=context.options.plan.metric, featurizer=raw.featurizer, where=labelled.name)
        cv, C, note = score.to_dict(), score.C, None
    except InputError as exc:  # a class with one example: no folds, so C is not chosen
        cv, C, note = None, UNTUNED_C, f"not cross-validated ({exc}); C={UNTUNED_C:g}"
    result: dict[str, Any] = {"name": name, "cv": cv, "fitted_on": len(keep), "sampled": len(labelled) > LIMIT,
                              "note": note}
    for where, (dataset, truth) in held_out.items():
        if dataset is None or not len(dataset):
            continue
        x, x_test = raw.fitted([e.item for e in dataset.examples])
        predicted = fit_probe(x, y, C, class_weight=context.class_weight).predict(x_test)
        result[where] = {"accuracy": float(accuracy_score(truth.values, predicted)),
                         "macro_f1": float(f1_score(truth.values, predicted, average="macro", zero_division=0)),
                         "n": len(truth)}
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result
