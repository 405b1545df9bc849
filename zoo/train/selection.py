"""Where to cut and how strong a head, chosen by cross-validation over every labelled example.

With a few labels per class, setting a fifth aside to pick an epoch wastes data and lets one or two
validation examples per class decide (issue 11: on digits with 10 labels per class, 0.895 mean /
0.863 worst). ``zoo finetune`` instead, for any task:

1. takes, from one frozen pass through the feature cache, the pooled output of every cut
   candidate: the card's embedding, each of its ``features``, and all of them joined
   (:func:`zoo.backbone.join_cut`: several depths at once, the "hypercolumn" idea) - or the card's
   embedding alone for a task that does not choose its cut;
2. scores each with the task's nested cross-validation (classification: the probe's L2-normalised
   logistic regression with ``C`` chosen inside the folds; regression: ridge with its penalty chosen
   inside the folds) and keeps the one with the lowest cross-validated rank (log-loss; squared
   error), the probe's ranking, measured there;
3. fits that head on all labelled examples: the run's frozen head
   (:class:`zoo.tasks.heads.NormalisedLinear`).

On digits with 10 labels per class (efficientnet_lite0, seeds 0-4, bench/finetune_cv.py) the card's
embedding alone gave a mean test accuracy of 0.907 (worst 0.889), the choice among single layers
0.913 (0.893), and the choice with the joined candidate 0.919 (0.900).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import InputError
from zoo.fitting.cuts import ALL, candidates, joined

__all__ = ["Selection", "select_cut", "choose", "candidates", "joined", "parse_cut", "ALL"]


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


def with_layouts(tried: list[tuple[str, ...]], layouts: Sequence[str]) -> list[tuple[str, ...]]:
    """The candidates with each grid-pooled map as one more single layer, before the joined one."""
    joined_last = len(tried) > 1 and len(tried[-1]) > 1
    head, tail = (tried[:-1], tried[-1:]) if joined_last else (tried, [])
    return [*head, *((name,) for name in layouts), *tail]


def cut_name(layers: Sequence[str]) -> str:
    return "+".join(layers)


@dataclass(frozen=True)
class Selection:
    """What the cross-validation chose, and every candidate's estimate (for the report)."""

    cut: tuple[str, ...]
    params: dict[str, Any]  # what a fit on all examples uses: {"C": 100.0}, {"alpha": 0.01}, thresholds
    metric: str
    estimate: dict[str, Any]  # the chosen candidate's cross-validated scores
    rank: float = 0.0
    rows: tuple[dict[str, Any], ...] = ()  # every candidate: cut, dim, scores, rank, params
    rank_name: str = "log-loss"
    chosen_by: str = "cross-validated log-loss"
    requested: str = "auto"
    seconds: float = 0.0
    features: dict[str, Any] = field(default_factory=dict)  # how the frozen pass ran

    def to_dict(self) -> dict[str, Any]:
        return {"cut": list(self.cut), **self.params, "params": self.params, "metric": self.metric,
                "estimate": self.estimate, "rank": self.rank, "rank_name": self.rank_name, "rows": list(self.rows),
                "chosen_by": self.chosen_by, "requested": self.requested, "seconds": round(self.seconds, 2),
                "features": self.features}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        params = data.get("params") or {"C": float(data["C"])}
        return cls(cut=tuple(data["cut"]), params=params, metric=data["metric"], estimate=data["estimate"],
                   rank=float(data.get("rank", data["estimate"].get("log_loss", 0.0))), rows=tuple(data.get("rows", ())),
                   rank_name=data.get("rank_name", "log-loss"), chosen_by=data.get("chosen_by", ""),
                   requested=data.get("requested", "auto"), seconds=data.get("seconds", 0.0),
                   features=data.get("features", {}))

    def table(self, metrics: Sequence[str]) -> str:
        """Every candidate: its cross-validated ``metrics`` (the first with its spread), rank and parameters."""
        from zoo.render import table

        first, others = metrics[0], [m for m in metrics[1:] if any(m in r for r in self.rows)]
        names = list(self.params)
        rows = []
        for r in self.rows:
            spread = f" +- {r[first + '_std']:.3f}" if f"{first}_std" in r else ""
            rows.append([cut_name(r["cut"]) if len(r["cut"]) < 3 else f"all {len(r['cut'])} joined", str(r["dim"]),
                         f"{r[first]:.3f}{spread}", *(f"{r[m]:.3f}" for m in others), f"{r['rank']:.3f}",
                         *(f"{r[n]:g}" for n in names if not isinstance(r.get(n), list)),
                         "<-" if tuple(r["cut"]) == self.cut else ""])
        headers = ["cut", "dim", f"cv {first}", *others, self.rank_name,
                   *(n for n in names if not isinstance(self.params[n], list)), ""]
        return table(headers, rows)


def select_cut(task: Any, context: Any, card: Any, labelled: Any, targets: Any, held_out: Any, *,
               cut: tuple[str, ...] | None, seed: int, engine: str, device: Any = None, workers: int | None = None,
               log: Callable[[str], None]) -> tuple[Selection, Any, Any]:
    """Cross-validate every candidate (or only ``cut``; or the card's embedding for a task that
    does not choose) on ``labelled``; returns the selection and the chosen cut's features for
    ``labelled`` and ``held_out`` (None without one)."""
    import time

    from zoo.layer_features import layer_features

    started = time.perf_counter()
    choosing = cut is None and task.chooses_cut
    tried = [cut] if cut is not None else candidates(card) if task.chooses_cut else [(card.embedding.node,)]
    needed = sorted({name for c in tried for name in c})
    features, record = layer_features(card, labelled, held_out, engine=engine, say=log, device=device,
                                      workers=workers, layers=needed, layout=choosing)
    if choosing:  # the maps pooled on a grid: more single-layer candidates, the joined one still last
        tried = with_layouts(tried, [name for name in features if "@" in name])
    train = {name: x for name, (x, _) in features.items()}
    test = {name: x_test for name, (_, x_test) in features.items()}
    selection = choose(task, context, train, targets, tried, seed=seed, requested=cut, started=started, record=record)
    x_test = joined(test, selection.cut) if held_out is not None else None
    return selection, joined(train, selection.cut), x_test


def choose(task: Any, context: Any, features: dict[str, Any], targets: Any, tried: Sequence[tuple[str, ...]], *,
           seed: int, requested: tuple[str, ...] | None, started: float, record: dict[str, Any] | None = None
           ) -> Selection:
    """Cross-validate each candidate of ``tried`` on ``features`` (layer name -> labelled rows) with
    the task's frozen head and keep the lowest rank: the :class:`Selection`."""
    import time

    rows, estimates = [], []
    for candidate in tried:
        estimate = task.cross_validate(joined(features, candidate), targets, context, seed=seed)
        estimates.append(estimate)
        rows.append({"cut": list(candidate), "dim": int(sum(features[n].shape[1] for n in candidate)),
                     **estimate.scores, "rank": estimate.rank, **estimate.params})
    # lowest rank; a tie goes to the earlier candidate (the card's own embedding comes first)
    index = min(range(len(rows)), key=lambda i: (rows[i]["rank"], i))
    best, params = rows[index], dict(estimates[index].params)
    rank_name = getattr(task, "rank_name", "rank")
    return Selection(cut=tuple(best["cut"]), params=params, metric=context.options.plan.metric,
                     estimate=dict(estimates[index].scores), rank=best["rank"], rows=tuple(rows), rank_name=rank_name,
                     requested="auto" if requested is None else cut_name(requested),
                     chosen_by=f"cross-validated {rank_name}" if requested is None else "--cut",
                     seconds=time.perf_counter() - started, features=record or {})
