"""Every ``auto`` of a run decided once, from the data, with the line that says why.

The decisions, in order (each may depend on the ones before):

- the metric: ``auto`` is the task's first (accuracy; RMSE for a regression);
- the recipe: ``contrastive`` for cross-validated text classification with 5 to 25 labelled texts
  per class (where it was measured best); ``wise-ft`` for an image-text model (CLIP, SigLIP) whose
  task starts from the class names' zero-shot classifier (:mod:`zoo.train.wiseft`; its cut is
  the joint embedding); else ``gradual``;
- unfreezing: how many stages, for how many epochs, at which learning rate (the modality's and
  the front end's defaults);
- how the head is fitted (``head``): ``cv``, the task's cross-validated frozen head on every
  labelled example (the default wherever the features fit in memory), or ``epochs``, trained on a
  validation split (``--head mlp``, ``--validation split``, ``--val``/``--val-split``, a class
  with a single example, which no fold can both train on and test, or a dense task, whose network
  on feature maps has no cross-validated frozen fit);
- how unfrozen phases are judged (``unfrozen``): ``folds`` on small data (at most
  :data:`CV_PER_CLASS` labelled examples per class and :data:`CV_LIMIT` in all), ``split`` above
  (a validation fifth, early stopping, rollback; kept only when it beats the head on the same
  split), or None when nothing is unfrozen;
- ``validation``, the record's word for it: ``split`` when a validation split is held out, else ``cv``.

Measured for the mid-size default (bench/midsize.py): the head trained by epochs on four fifths
scored below a logistic regression cross-validated on the same embeddings and fitted on all
(a held-out 12-class task, about 32 images per class: 0.626 against 0.660), so above 25 per class
the frozen head is cross-validated too, and a split is used only for what needs epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from zoo.errors import ZooError

__all__ = ["Plan", "make_plan", "CV_PER_CLASS", "CV_LIMIT", "CV_SMALL"]

#: Unfrozen phases get their schedule from folds up to this many labelled examples per class (on
#: average); above, a validation split judges them. Measured on digits (efficientnet_lite0,
#: bench/finetune_cv.py --threshold, test accuracy, cv vs split with the card's cut): 10/class
#: (seeds 0-4) 0.918 vs 0.895; 20/class (seeds 0-2) 0.941 vs 0.938; 30/class 0.952 vs 0.952 (worst
#: 0.937 vs 0.951); 50/class (seed 0) 0.956 vs 0.966; 100/class 0.967 vs 0.971. The cross-over lies
#: between 20 and 30.
CV_PER_CLASS = 25
#: ... and at most this many in all: each fold replays the whole unfrozen schedule.
CV_LIMIT = 2000
#: A task without classes (a regression) gets its unfrozen schedule from folds up to this many
#: labelled examples: the same budget as 10 classes at CV_PER_CLASS.
CV_SMALL = 250


@dataclass(frozen=True)
class Plan:
    """What the run will do, decided (see the module)."""

    task: str
    metric: str
    recipe: str
    head: str  # "cv" | "epochs"
    unfrozen: str | None  # "folds" | "split" | None
    reasons: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def validation(self) -> str:
        """``split`` when a validation split is held out (for epochs), else ``cv``."""
        return "split" if self.head == "epochs" or self.unfrozen == "split" else "cv"

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "metric": self.metric, "recipe": self.recipe, "head": self.head,
                "unfrozen": self.unfrozen, "validation": self.validation, "reasons": list(self.reasons),
                **self.facts}


def make_plan(options: Any, card: Any, task: Any, splits: Any, learning: Any = None) -> tuple[Any, Plan]:
    """The options with every ``auto`` decided, and the :class:`Plan` with its reasons."""
    from zoo.tasks.contract import is_dense
    from zoo.train.contrastive import CONTRASTIVE_PER_CLASS

    plan = options.plan
    reasons: list[str] = []
    metric = next(iter(task.metrics)) if plan.metric == "auto" else plan.metric
    if metric not in task.metrics:
        raise ZooError(f"--metric {metric} does not apply to a {task.name} run; it takes "
                       f"{', '.join(task.metrics)}")
    labelled = len(splits.train) + len(splits.val)
    counts = _class_counts(splits) if task.by_class else []
    per_class = labelled / max(1, len(counts)) if task.by_class else None
    small = (per_class is not None and per_class <= CV_PER_CLASS and labelled <= CV_LIMIT) or (
        per_class is None and labelled <= CV_SMALL)
    foldable = (min(counts) >= 2) if task.by_class else labelled >= 4
    asked_split = [name for name, value in (("--val", options.data.val), ("--val-split", options.data.val_split))
                   if value is not None]

    # how the head is fitted
    if is_dense(task):
        if plan.validation == "cv":
            raise ZooError(f"--validation cv cross-validates a head on pooled features; a {task.name} network reads "
                           f"feature maps and trains by epochs: leave it out (a split judges it)")
        head, why = "epochs", (f"validation: a held-out split (a {task.name} network on the backbone's feature maps "
                               f"trains by epochs; nothing pooled to cross-validate)")
    elif plan.validation == "cv":
        if not foldable:
            raise ZooError(f"{options.data.data}: --validation cv needs at least 2 labelled examples per class (a fold "
                           f"must both train on a class and test it); give more examples, or use --validation split")
        head, why = "cv", f"validation: cross-validation on all {labelled} labelled examples (--validation cv)"
    elif plan.validation == "split":
        head, why = "epochs", "validation: a held-out split (--validation split)"
    elif asked_split:
        head, why = "epochs", f"validation: a held-out split ({' and '.join(asked_split)} given)"
    elif options.head.kind != "linear":
        head, why = "epochs", f"validation: a held-out split (--head {options.head.kind} trains by epochs)"
    elif not foldable:
        head, why = "epochs", ("validation: a held-out split (a class has a single labelled example, which no fold can "
                               "both train on and test)")
    elif not task.epochs or small:
        head, why = "cv", (f"validation: cross-validation on all {labelled} labelled examples (small data: at most "
                           f"{CV_PER_CLASS} per class); every example is trained on" if task.by_class and small else
                           f"validation: cross-validation on all {labelled} labelled examples; every example is "
                           f"trained on")
    else:
        head, why = "cv", (f"validation: the head cross-validated on all {labelled} labelled examples"
                           + (f" ({per_class:.0f} per class)" if per_class else "")
                           + "; a validation split judges only what trains by epochs")
    reasons.append(why)

    # the recipe
    recipe, how = plan.recipe, "recipe: the head on frozen embeddings, then gradual unfreezing"
    low, high = CONTRASTIVE_PER_CLASS
    if recipe == "contrastive":
        if card.modality != "text" or task.name != "classification":
            raise ZooError(f"model {card.name!r}: --recipe contrastive trains a text encoder on pairs of texts of the "
                           f"same and other classes; use --recipe gradual for {card.modality} models"
                           + ("" if task.name == "classification" else f" and {task.name} runs"))
        how = "recipe: contrastive encoder training on pairs, then the head (--recipe contrastive)"
    elif recipe == "wise-ft":
        refused = _not_mixable(options, card, task, head, why)
        if refused:
            raise ZooError(f"model {card.name!r}: --recipe wise-ft fine-tunes an image-text model's image tower "
                           f"from the class names' zero-shot classifier, but {refused}; use --recipe gradual")
        how = _WISE_FT + " (--recipe wise-ft)"
    elif recipe == "gradual":
        how += " (--recipe gradual)"
    else:
        fits = (card.modality == "text" and task.name == "classification" and head == "cv" and small
                and options.unfreezing.unfreeze == "auto" and plan.cut == "auto" and per_class is not None
                and low <= per_class <= high)
        if fits:
            recipe = "contrastive"
            how = (f"recipe: contrastive encoder training on pairs, then the head ({per_class:.0f} labelled texts per "
                   f"class: between {low} and {high}, where it was measured best; --recipe gradual for the other)")
        elif not _not_mixable(options, card, task, head, why):
            recipe = "wise-ft"
            how = _WISE_FT + " (an image-text model; --recipe gradual for the head and unfreezing alone)"
        else:
            recipe = "gradual"
    if plan.mix != "auto" and recipe != "wise-ft":
        raise ZooError(f"--mix weighs the zero-shot and fine-tuned weights of --recipe wise-ft, which this run does "
                       f"not use (recipe {recipe}); leave out --mix")
    reasons.append(how)

    # unfreezing, and how it is judged
    unfreezing = options.unfreezing.resolved(card.modality, recipe, learning)
    if not task.epochs:
        unfreezing = replace(unfreezing, unfreeze=0)
    unfrozen = None
    if unfreezing.unfreeze not in (0, "0"):
        unfrozen = "split" if head == "epochs" or not small else "folds"
        if plan.validation == "cv":
            unfrozen = "folds"
    cut = card.embedding.node if recipe == "wise-ft" else plan.cut  # where the class names' prototypes are
    resolved = replace(options, plan=replace(plan, metric=metric, recipe=recipe, cut=cut,
                                             validation="split" if head == "epochs" or unfrozen == "split" else "cv"),
                       unfreezing=unfreezing)
    return resolved, Plan(task=task.name, metric=metric, recipe=recipe, head=head, unfrozen=unfrozen,
                          reasons=tuple(reasons), facts={"labelled": labelled})


_WISE_FT = ("recipe: the image tower fine-tuned from the class names' zero-shot classifier, then the zero-shot and "
            "fine-tuned weights mixed, the mixing weight chosen on held-out data (WiSE-FT)")


def _not_mixable(options: Any, card: Any, task: Any, head: str, why_head: str) -> str | None:
    """Why the run cannot be fine-tuned from the class names' zero-shot classifier and mixed
    (:mod:`zoo.train.wiseft`), or None when it can: an image-text model, a task that starts a head
    from zero-shot prototypes, a cross-validated head, the joint embedding, stages to fine-tune."""
    if card.text is None:
        return "it has no text tower to embed the class names"
    if not hasattr(task, "zero_shot_head"):
        return f"a {task.name} run has no zero-shot classifier to start from"
    if card.input.front_end is not None:
        return f"its inputs come through the {card.input.front_end.name} front end, not as pictures"
    if head != "cv":
        return f"its head would be trained by epochs ({why_head.removeprefix('validation: ')})"
    if options.plan.cut not in ("auto", card.embedding.node):
        return (f"--cut {options.plan.cut} leaves the joint embedding ({card.embedding.node}), where the names' "
                f"prototypes are")
    if options.unfreezing.unfreeze in (0, "0"):
        return "--unfreeze 0 leaves no stage to fine-tune"
    return None


def _class_counts(splits: Any) -> list[int]:
    """Labelled examples per class, training and validation together (what folds would use)."""
    return [a + b for a, b in zip(splits.train.counts().values(), splits.val.counts().values())]
