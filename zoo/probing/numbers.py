"""``zoo probe --target COLUMN``: which backbone and layer predict numbers best, by a ridge probe.

The regression twin of the class probe: each (backbone, layer) gets the nested cross-validated
ridge of :mod:`zoo.fitting.ridge` on every labelled example (targets standardised, penalty chosen
inside each fold) and the rows are ranked by their cross-validated R² (best first); with a test
set, each probe is also fitted on all labelled examples and scored there (not used to rank).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from zoo.errors import LoadError, PullError

__all__ = ["NumberRow", "probe_numbers"]


@dataclass(frozen=True)
class NumberRow:
    """One (backbone, layer) of a regression probe (scores in the targets' units, means over targets)."""

    model: str
    layer: str
    dim: int
    r2: float  # cross-validated: the ranking
    rmse: float
    mae: float
    spearman: float
    alpha: float
    seconds: float
    embedding: bool = False
    test_accuracy: float | None = None  # the test R² (named like the class probe's column for the report)

    score_name = "cross-validated R²"

    @property
    def score(self) -> float:
        return self.r2

    @property
    def score_std(self) -> float:
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def headers(with_test: bool) -> list[str]:
        return (["rank", "backbone", "layer", "dim", "cv R²", "RMSE", "MAE", "Spearman", "alpha", "seconds"]
                + (["test R²"] if with_test else []))

    def cells(self, rank: int, with_test: bool) -> list[str]:
        row = [str(rank), self.model, self.layer + (" (embedding)" if self.embedding else ""), str(self.dim),
               f"{self.r2:.3f}", f"{self.rmse:.4g}", f"{self.mae:.4g}", f"{self.spearman:.3f}", f"{self.alpha:g}",
               f"{self.seconds:.1f}"]
        return row + (["-" if self.test_accuracy is None else f"{self.test_accuracy:.3f}"] if with_test else [])


def probe_numbers(cards: Sequence[Any], data: Any, modality: str, target: str, *, test: Any, seed: int, engine: str,
                  skip_bad: bool, say: Callable[[str], None], front_end: Any,
                  candidates_of: Callable[..., Any]) -> Any:
    """The ridge probe of every cut candidate of each card (see the module): a ``ProbeReport``."""
    import numpy as np

    from zoo.data import make_splits
    from zoo.frontend import bridge
    from zoo.fitting.ridge import cross_validate_ridge, fit_ridge, folds_for_regression, regression_scores
    from zoo.fitting.linear import _normalise
    from zoo.probing.report import ProbeReport
    from zoo.runs.options import FinetuneOptions
    from zoo.tasks import get_task

    started = time.perf_counter()
    task = get_task("regression")
    options = FinetuneOptions.from_flat(cards[0].name, str(data), target=target, seed=seed, skip_bad=skip_bad)
    splits = make_splits(str(data), modality=modality, test=test, seed=seed, skip_bad=skip_bad, by_class=False,
                         problem=lambda example: task.problem(example, options))
    labelled = splits.train.joined(splits.val, f"{splits.train.name} + val")
    targets = task.targets(labelled, options)
    held_out = splits.test if test is not None else None
    test_targets = task.targets(held_out, options, targets) if held_out is not None else None
    record = targets.record
    scale, shift = np.asarray(record["std"]), np.asarray(record["mean"])
    k, repeats = folds_for_regression(len(labelled), str(data))
    rows, skipped, passes = [], [], {}
    for card in (bridge(card, labelled.modality, front_end) for card in cards):
        try:
            features, pass_record = candidates_of(card, labelled, held_out, engine, say)
        except (PullError, LoadError) as exc:
            skipped.append((card.name, str(exc).splitlines()[0]))
            say(f"skipped {card.name}: {str(exc).splitlines()[0]}")
            continue
        passes[card.name] = pass_record
        for layer, (x, x_test) in features.items():
            begun = time.perf_counter()
            score = cross_validate_ridge(x, targets.values, targets.names, scale=scale, shift=shift, seed=seed,
                                         where=str(data))
            test_r2 = None
            if x_test is not None and test_targets is not None and len(test_targets):
                weight, bias = fit_ridge(x, targets.values, score.alpha)
                predicted = (_normalise(x_test) @ weight.T + bias) * scale + shift
                test_r2 = regression_scores(test_targets.values * scale + shift, predicted, targets.names)["r2"]
            rows.append(NumberRow(model=card.name, layer=layer, dim=int(x.shape[1]), r2=score.r2, rmse=score.rmse,
                                  mae=score.mae, spearman=score.spearman, alpha=score.alpha,
                                  seconds=time.perf_counter() - begun, embedding=layer == card.embedding.node,
                                  test_accuracy=test_r2))
            say(f"  {card.name} {layer}: cv R² {score.r2:.3f} ({rows[-1].seconds:.1f}s)")
    rows.sort(key=lambda r: (-r.r2, r.rmse, r.model, r.layer))
    return ProbeReport(data=str(data), classes=(), labelled=len(labelled),
                       test=len(held_out) if held_out is not None else 0, folds=k, repeats=repeats, rows=tuple(rows),
                       skipped=tuple(skipped), passes=passes, seconds=time.perf_counter() - started,
                       files=())
