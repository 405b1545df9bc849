"""Where to cut and how strong a head, chosen by cross-validation over every labelled example.

With a few labels per class, setting a fifth aside to pick an epoch wastes data and lets one or two
validation examples per class decide (issue 11: on digits with 10 labels per class, 0.895 mean /
0.863 worst). For small sets ``zoo finetune`` instead:

1. takes, from one frozen pass through the feature cache, the pooled output of every cut
   candidate: the card's embedding, each of its ``features``, and all of them joined
   (:func:`zoo.backbone.join_cut`: several depths at once, the "hypercolumn" idea);
2. scores each with the probe's nested cross-validation (:func:`zoo.probing.cross_validate`:
   L2-normalised logistic regression, ``C`` chosen inside the folds) and keeps the one with the
   lowest cross-validated log-loss (the probe's ranking, measured there);
3. fits that logistic regression on all labelled examples: the run's head
   (:class:`zoo.train.heads.NormalisedLinear`).

On digits with 10 labels per class (efficientnet_lite0, seeds 0-4, bench/finetune_digits_cv.py)
the card's embedding alone gave a mean test accuracy of 0.907 (worst 0.889), the choice among
single layers 0.913 (0.893), and the choice with the joined candidate 0.919 (0.900).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import InputError
from zoo.probing.cuts import ALL, candidates, joined

__all__ = ["Selection", "select_cut", "choose", "candidates", "joined", "parse_cut", "CV_PER_CLASS", "CV_LIMIT", "ALL"]

#: ``--validation auto`` cross-validates when there are at most this many labelled examples per
#: class (on average); above, a validation split of a fifth is large enough to judge by. Measured
#: on digits (efficientnet_lite0, bench/finetune_cv.py --threshold, test accuracy, cv vs split
#: with the card's cut): 10/class (seeds 0-4) 0.918 vs 0.895; 20/class (seeds 0-2) 0.941 vs
#: 0.938; 30/class 0.952 vs 0.952 (worst 0.937 vs 0.951); 50/class (seed 0) 0.956 vs 0.966;
#: 100/class 0.967 vs 0.971. The cross-over lies between 20 and 30.
CV_PER_CLASS = 25
#: ... and at most this many in all: the nested cross-validation of every candidate grows with
#: the data (on 2 cores, 100 examples about 10 s, 500 about 70 s, 1,000 about 130 s).
CV_LIMIT = 2000
def parse_cut(card: Any, cut: str) -> tuple[str, ...] | None:
    """``--cut``: ``auto`` (None: choose), ``all``, a layer, or layers joined by ``+``."""
    if cut == "auto":
        return None
    if cut == ALL:
        return candidates(card)[-1]
    from zoo.backbone import cut_dim
    from zoo.errors import LoadError

    layers = tuple(part.strip() for part in cut.split("+") if part.strip())
    try:
        cut_dim(card, layers)
    except LoadError as exc:
        raise InputError(f"--cut {cut!r}: {exc}") from None
    return layers


def cut_name(layers: Sequence[str]) -> str:
    return "+".join(layers)


@dataclass(frozen=True)
class Selection:
    """What the cross-validation chose, and every candidate's estimate (for the report)."""

    cut: tuple[str, ...]
    C: float
    metric: str
    estimate: dict[str, Any]  # the chosen candidate's CVScore as a dict
    rows: tuple[dict[str, Any], ...] = ()  # every candidate: cut, dim, CVScore fields
    chosen_by: str = "cross-validated log-loss"
    requested: str = "auto"
    seconds: float = 0.0
    features: dict[str, Any] = field(default_factory=dict)  # how the frozen pass ran

    def to_dict(self) -> dict[str, Any]:
        return {"cut": list(self.cut), "C": self.C, "metric": self.metric, "estimate": self.estimate,
                "rows": list(self.rows), "chosen_by": self.chosen_by, "requested": self.requested,
                "seconds": round(self.seconds, 2), "features": self.features}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        return cls(cut=tuple(data["cut"]), C=float(data["C"]), metric=data["metric"], estimate=data["estimate"],
                   rows=tuple(data.get("rows", ())), chosen_by=data.get("chosen_by", ""),
                   requested=data.get("requested", "auto"), seconds=data.get("seconds", 0.0),
                   features=data.get("features", {}))

    def table(self) -> str:
        from zoo.render import table

        rows = [[cut_name(r["cut"]) if len(r["cut"]) < 3 else f"all {len(r['cut'])} joined", str(r["dim"]),
                 f"{r['accuracy']:.3f} +- {r['accuracy_std']:.3f}", f"{r['macro_f1']:.3f}", f"{r['log_loss']:.3f}",
                 f"{r['C']:g}", "<-" if tuple(r["cut"]) == self.cut else ""] for r in self.rows]
        return table(["cut", "dim", "cv accuracy", "macro-F1", "log-loss", "C", ""], rows)


def select_cut(card: Any, labelled: Any, held_out: Any, *, cut: tuple[str, ...] | None, seed: int,
               class_weight: str | None, metric: str, engine: str, device: Any = None, workers: int | None = None,
               log: Callable[[str], None]) -> tuple[Selection, Any, Any]:
    """Cross-validate every candidate (or only ``cut``) on ``labelled``; returns the selection and
    the chosen cut's features for ``labelled`` and ``held_out`` (None without one)."""
    import time

    from zoo.probing.run import layer_features

    started = time.perf_counter()
    tried = [cut] if cut is not None else candidates(card)
    needed = sorted({name for c in tried for name in c})
    features, record = layer_features(card, labelled, held_out, engine=engine, say=log, device=device,
                                      workers=workers, layers=needed)
    train = {name: x for name, (x, _) in features.items()}
    test = {name: x_test for name, (_, x_test) in features.items()}
    selection = choose(train, labelled, tried, seed=seed, class_weight=class_weight, metric=metric,
                       requested=cut, started=started, record=record)
    x_test = joined(test, selection.cut) if held_out is not None else None
    return selection, joined(train, selection.cut), x_test


def choose(features: dict[str, Any], labelled: Any, tried: Sequence[tuple[str, ...]], *, seed: int,
           class_weight: str | None, metric: str, requested: tuple[str, ...] | None, started: float,
           record: dict[str, Any] | None = None) -> Selection:
    """Cross-validate each candidate of ``tried`` on ``features`` (layer name -> labelled rows) and
    keep the lowest log-loss: the :class:`Selection`."""
    import time

    from zoo.probing.linear import cross_validate

    rows = []
    for candidate in tried:
        score = cross_validate(joined(features, candidate), labelled.labels, seed=seed, class_weight=class_weight,
                               metric=metric, where=labelled.name)
        rows.append({"cut": list(candidate), "dim": int(sum(features[n].shape[1] for n in candidate)),
                     **score.to_dict()})
    best = min(rows, key=lambda r: (r["log_loss"], -r["accuracy"]))
    return Selection(cut=tuple(best["cut"]), C=best["C"], metric=metric,
                     estimate={k: v for k, v in best.items() if k not in ("cut", "dim")}, rows=tuple(rows),
                     requested="auto" if requested is None else cut_name(requested),
                     chosen_by="cross-validated log-loss" if requested is None else "--cut",
                     seconds=time.perf_counter() - started, features=record or {})
