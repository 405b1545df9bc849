"""What zoo_dense's tasks share: each feature's stride, the options that do not apply to a network
built on feature maps, pictures read whole at one square size, the maps a pyramid reads, the
baseline (the same network on random weights) and the loss (the network's own, summed).

A task subclasses :class:`DenseBase` and names what it makes (``making``: "boxes", "masks"),
its pyramid's strides (``strides``) and its metric names (``metrics``, ``metric_names``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from zoo import ZooError

__all__ = ["DenseBase", "SummedLosses", "strides_of"]


def strides_of(card: Any) -> dict[str, int]:
    """Each feature's stride: the card's (``features`` with ``stride``, as timm's ``feature_info``
    gives ``reduction``), else measured once by running the architecture (random weights) on a
    blank picture."""
    declared = dict(getattr(card, "strides", None) or {})
    if declared and all(name in declared for name in card.features):
        return declared
    return dict(_measured(card.name, card))


_MEASURED: dict[str, tuple[tuple[str, int], ...]] = {}


def _measured(name: str, card: Any) -> tuple[tuple[str, int], ...]:
    if name not in _MEASURED:
        import torch

        from zoo import load

        side = 256
        backbone = load(card, features=list(card.features), pretrained=False)
        with torch.no_grad():
            out = backbone(torch.zeros(1, 3, side, side))
        _MEASURED[name] = tuple((feature, round(side / out[feature].shape[-1])) for feature in card.features
                                if out[feature].dim() == 4)
    return _MEASURED[name]


class SummedLosses:
    """The network's losses (a dict), each a mean over the part of the batch a rank saw: summed,
    times the pictures (the learner divides by the whole batch)."""

    def to(self, device: Any) -> SummedLosses:
        return self

    def __call__(self, losses: Mapping[str, Any], targets: Sequence[Any]) -> Any:
        return sum(losses.values()) * len(targets)

    def weight_of(self, values: Any) -> float:
        return float(len(values))


class DenseBase:
    """The members a dense task shares (see the module)."""

    name: str
    making: str  # what the task learns, for messages: "boxes", "masks"
    strides: tuple[int, ...]  # the pyramid's strides, input side first
    metrics: Mapping[str, bool]
    metric_names: Mapping[str, str]  # each metric's name on the page and in lines
    by_class = False
    chooses_cut = False
    epochs = True

    def check(self, options: Any) -> None:
        asked = [flag for flag, given in (
            ("--per-class", options.data.per_class is not None), ("--target", options.data.target is not None),
            ("--recipe contrastive", options.plan.recipe == "contrastive"), ("--cut", options.plan.cut != "auto"),
            ("--label-prior always", options.plan.label_prior == "always"), ("--labels", options.plan.labels is not None),
            *self._refused(options), ("--head mlp", options.head.kind != "linear"),
            ("--multi-label", options.plan.multi_label == "yes")) if given]
        if asked:
            raise ZooError(f"a {self.name} learns {self.making} on the card's feature maps: {', '.join(asked)} "
                           f"{'does' if len(asked) == 1 else 'do'} not apply (hold data out with --val, --test or "
                           f"--val-split)")
        if options.plan.metric not in ("auto", *self.metrics):
            raise ZooError(f"--metric {options.plan.metric} does not apply to a {self.name}; it takes "
                           f"{' or '.join(self.metrics)} ({', '.join(self.metric_names[m] for m in self.metrics)})")

    def _refused(self, options: Any) -> list[tuple[str, bool]]:
        """Options this task refuses beyond the shared ones."""
        return []

    def input_spec(self, card: Any) -> Any:
        """The card's input squashed to a square of its longer side, rounded up to a multiple of 32
        (every pyramid level then divides it)."""
        from dataclasses import replace

        height, width = card.input.size or (224, 224)
        side = int(math.ceil(max(height, width) / 32) * 32)
        return replace(card.input, size=(side, side), resize=side, crop_mode="squash")

    def feature_maps(self, card: Any) -> tuple[str, ...]:
        from zoo_dense.network import pyramid_maps

        if card.modality != "image":
            raise ZooError(f"model {card.name!r} takes {card.modality}; a {self.name} reads pictures: choose an image "
                           f"model")
        maps = pyramid_maps(card.features, strides_of(card), self.strides)
        if len(maps) < self.least:
            shown = ", ".join(f"{n} (stride {s})" for n, s in strides_of(card).items()) or "none"
            raise ZooError(f"model {card.name!r}: a {self.name} reads feature maps at strides "
                           f"{', '.join(map(str, self.strides))}, and the card's features are {shown}; choose a model "
                           f"whose card lists them (zoo show MODEL), or add them to its card")
        return maps

    #: how many of :attr:`strides` the card must have a map at
    least = 1

    def class_weights(self, targets: Any, options: Any) -> None:
        return None

    def loss(self, targets: Any, context: Any) -> SummedLosses:
        return SummedLosses()

    def baseline(self, modality: str, labelled: Any, targets: Any, held_out: Mapping[str, tuple[Any, Any]],
                 context: Any, *, seed: int) -> dict[str, Any] | None:
        from zoo import scratch_baseline  # the dense tasks' baseline, zoo's own

        return scratch_baseline(self, labelled, targets, held_out, context, seed=seed)

    def compare(self, transfer: Mapping[str, Any], base: dict[str, Any] | None, context: Any) -> str:
        from zoo import baseline_line

        metric = self.metric(context)
        return baseline_line(dict(transfer), base, metric, self.metric_names[metric], higher_is_better=True,
                             points=True)

    def metric(self, context: Any) -> str:
        """The metric selection judges by: --metric's, else the task's first."""
        chosen = context.options.plan.metric
        return next(iter(self.metrics)) if chosen in ("auto", None) else chosen
