"""Label-aware heads for text: the label names' zero-shot classifier as a prior, mixed with the head.

With a handful of labelled texts per class a regression on the embeddings can do worse than
comparing each text with its label names (on BBC News with 2 per class: 0.656 against zero-shot's
0.792, bench/text_fewshot.py). When the model embeds text, ``zoo finetune`` therefore also builds
the zero-shot prototypes of the class names (:func:`zoo.embed.zero_shot`) and predicts

    p = (1 - w) * p_head + w * p_zero_shot

with the weight ``w`` chosen from :data:`WEIGHTS` by the mixture's out-of-fold accuracy (ties
by its log-loss; the head refitted on each fold's training part): ``w`` is large when the labels
are few and falls towards 0 when the head no longer needs the prior. ``w = 1`` is zero-shot
itself, so the cross-validated estimate is never below zero-shot's on the same folds.

Measured on BBC News (bench/text_fewshot.py, 5 seeds, mean test accuracy at 2 / 5 / 10 / 20
labels per class): the head alone 0.656 / 0.821 / 0.880 / 0.927; the mixture with ``w`` chosen
by accuracy 0.808 / 0.850 / 0.894 / 0.932 (zero-shot alone 0.792); chosen by log-loss
0.794 / 0.827 / 0.880 / 0.922 (the weakly regularised head is overconfident, so log-loss is the
wrong yardstick for the mixture); a fixed ``w = 0.5`` 0.830 / 0.866 / 0.904 / 0.902; the name
prompts added as one more labelled example per class 0.783 / 0.860 / 0.896 / 0.932 (below
zero-shot's 0.792 at 2 per class).

An image-text model (CLIP, SigLIP) gets the same prior on its image embeddings: the prototypes are
the class names in photo prompts through its text tower and the zero-shot probabilities use the
model's own logit scale (:func:`zoo.prompts.class_prompts`), so ``w = 1`` is exactly
``zoo fewshot MODEL --labels``. ``auto`` uses it at any size there: the folds choose ``w`` (0
included), and CLIP's paper found its zero-shot classifier level with a 4-shot linear probe on
average over 27 datasets and above a 16-shot one on several (not measured here: no pretrained
image-text weights can be downloaded on this machine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Prior", "label_prior", "mixed_head", "label_texts", "WEIGHTS", "SCALES", "PRIOR_PER_CLASS"]

#: The prior's weights tried (0: the head alone; 1: zero-shot alone).
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Temperatures tried for the zero-shot probabilities, softmax(scale x cosine). Only the few-shot
#: SCALE: letting the folds choose 10, 30 or 100 with the weight made it worse on BBC News (mean
#: 0.793 / 0.803 / 0.812 / 0.820 at 2 / 5 / 10 / 20 per class against 0.794 / 0.827 / 0.880 /
#: 0.922 with 10 alone, both chosen by log-loss): sharp zero-shot probabilities won the folds'
#: log-loss and lost on test.
SCALES = (10.0,)
#: ``--label-prior auto`` uses the prior up to this many labelled texts per class (on average),
#: where it matters most (+15.2 points at 2 per class, +2.9 at 5; see above); above, the head's
#: measured results (issue 11) stand unchanged. ``always`` uses it at any size (+1.4 at 10, +0.5
#: at 20 in the same measurement).
PRIOR_PER_CLASS = 5


@dataclass(frozen=True)
class Prior:
    weight: float
    prototypes: Any  # (classes, dim) unit rows, in the run's class order
    scale: float
    templates: tuple[str, ...]
    scores: tuple[dict[str, float], ...] = field(default_factory=tuple)  # per weight: log_loss, accuracy

    def to_dict(self) -> dict[str, Any]:
        return {"weight": self.weight, "scale": self.scale, "templates": list(self.templates),
                "scores": list(self.scores), "prototypes": [[float(v) for v in row] for row in self.prototypes]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prior:
        import numpy as np

        return cls(weight=float(data["weight"]), prototypes=np.asarray(data["prototypes"], dtype=np.float32),
                   scale=float(data["scale"]), templates=tuple(data["templates"]), scores=tuple(data["scores"]))

    def chosen(self) -> dict[str, float]:
        return next(s for s in self.scores if s["weight"] == self.weight and s.get("scale", self.scale) == self.scale)


def _softmax(logits: Any) -> Any:
    import numpy as np

    shifted = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)


def label_prior(card: Any, classes: Any, x: Any, y: Any, *, C: float, seed: int, class_weight: str | None,
                engine: str = "auto") -> Prior:
    """The zero-shot prototypes of ``classes`` (the texts to embed for each class, in class order:
    its name or description) and the mixture weight chosen on folds of ``(x, y)`` (features at the
    card's cut point)."""
    import numpy as np
    from sklearn.metrics import log_loss
    from sklearn.model_selection import RepeatedStratifiedKFold

    from zoo.fitting.linear import fit_probe, folds_for, normalise
    from zoo.prompts import class_prompts

    names = list(classes)
    prompts = class_prompts(card, names, engine=engine)
    prototypes = prompts.prototypes
    scales = SCALES if prompts.scale is None else (prompts.scale,)  # an image-text model's own
    y = np.asarray(y)
    cosines = normalise(x) @ prototypes.T
    zeros = {scale: _softmax(scale * cosines) for scale in scales}
    k, repeats = folds_for(y, "the labelled set")
    splitter = RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    totals = {(scale, w): {"log_loss": 0.0, "correct": 0.0} for scale in scales for w in WEIGHTS}
    seen = 0
    for train, held in splitter.split(x, y):
        head = fit_probe(x[train], y[train], C, class_weight=class_weight).predict_proba(x[held])
        full = np.zeros((len(held), len(names)))
        full[:, np.unique(y[train])] = head
        for (scale, w), total in totals.items():
            mixed = (1 - w) * full + w * zeros[scale][held]
            total["log_loss"] += log_loss(y[held], mixed, labels=np.arange(len(names))) * len(held)
            total["correct"] += float((mixed.argmax(1) == y[held]).sum())
        seen += len(held)
    scores = tuple({"scale": scale, "weight": w, "log_loss": t["log_loss"] / seen, "accuracy": t["correct"] / seen}
                   for (scale, w), t in totals.items())
    best = max(scores, key=lambda s: (s["accuracy"], -s["log_loss"], -s["weight"]))
    return Prior(weight=best["weight"], prototypes=prototypes, scale=best["scale"], templates=prompts.templates,
                 scores=scores)


def mixed_head(head: Any, x: Any, targets: Any, params: Any, context: Any, *, folder: Any, resume: bool,
               cut: Any, names: Any = None) -> tuple[Any, dict[str, Any] | None, dict[str, Any] | None]:
    """The cross-validated ``head`` of a text run mixed with the class names' prior when it applies
    (``--label-prior``; ``auto``: at most :data:`PRIOR_PER_CLASS` labelled texts per class, or any
    size when ``--labels`` names the classes), its weight chosen on folds; ``prior.json`` in the run
    ``folder`` keeps the choice (a resumed run reads it). ``names``: what to embed per class (the
    ``--labels`` descriptions; default the class names). Returns the head to use, the choice for
    ``choices.json`` and the judgement for the report (both None when the prior does not apply)."""
    import json

    from zoo.atomic import atomic_write_json
    from zoo.tasks.heads import LabelAwareHead

    options, card = context.options, context.card
    path = folder / "prior.json"
    if resume and path.is_file():
        prior = Prior.from_dict(json.loads(path.read_text(encoding="utf-8")))
    else:
        image_text = card.text is not None  # the names through its text tower: any size (see the module)
        if (options.plan.label_prior == "none" or (card.modality != "text" and not image_text)
                or tuple(cut) != (card.embedding.node,)
                or (options.plan.label_prior == "auto" and names is None and not image_text
                    and len(targets) > PRIOR_PER_CLASS * len(targets.names))):
            return head, None, None
        prior = label_prior(card, names or targets.names, x, targets.values, C=params["C"], seed=options.seed,
                            class_weight=context.class_weight, engine=options.engine.engine)
        atomic_write_json(path, prior.to_dict())
        chosen = prior.chosen()
        alone = next(s for s in prior.scores if s["weight"] == 1.0)
        if context.log is not None:
            context.log(f"label names as a prior: weight {prior.weight:g} (cross-validated accuracy "
                        f"{chosen['accuracy']:.3f}; the names alone, zero-shot, {alone['accuracy']:.3f}; "
                        f"--label-prior none to turn off)")
    mixed = LabelAwareHead(head, prior.prototypes, prior.weight, prior.scale)
    choice = {"weight": prior.weight, "scale": prior.scale, "templates": list(prior.templates)}
    return mixed, choice, {"weight": prior.weight, "scale": prior.scale, "scores": list(prior.scores)}


def label_texts(labels: Any, classes: Any, card: Any, where: str) -> list[str] | None:
    """What ``--labels`` says to embed for each class, in class order (None without it); a class of
    the data that it does not name is an error, and so is ``--labels`` for a model that is no text model."""
    if labels is None:
        return None
    from zoo.errors import ZooError
    from zoo.prompts import parse_labels

    if card.modality != "text" and card.text is None:
        raise ZooError(f"model {card.name!r}: --labels gives class names for a text model's label prior or an "
                       f"image-text model's zero-shot classifier; leave it out for {card.modality} models without "
                       f"a text tower")
    given = parse_labels(labels)
    missing = [name for name in classes if name not in given]
    if missing:
        raise ZooError(f"{where}: the label {missing[0]!r} is in the data but not in --labels "
                       f"({', '.join(list(given)[:8])}{'...' if len(given) > 8 else ''})"
                       f"{f', nor are {len(missing) - 1} more' if len(missing) > 1 else ''}; add it to --labels "
                       f"or fix the data")
    return [given[name] for name in classes]
