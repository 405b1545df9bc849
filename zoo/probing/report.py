"""What ``zoo probe`` found: a row per (backbone, layer), best first, as a table and as JSON.

Apart from the probing itself so that each kind of probe (:mod:`zoo.probing.run` for classes,
:mod:`zoo.probing.numbers` for numbers) builds the same report without importing the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ProbeReport", "ProbeRow"]


@dataclass(frozen=True)
class ProbeRow:
    """One (backbone, layer)."""

    model: str
    layer: str  # the card's embedding node, a feature name, or "all" (every one joined: --cut all)
    dim: int
    accuracy: float  # cross-validated
    accuracy_std: float
    macro_f1: float
    log_loss: float  # cross-validated: the ranking
    C: float
    seconds: float  # the probe's fitting (the shared frozen pass is the backbone's, in ``passes``)
    embedding: bool = False  # the card's recommended cut point
    test_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # what the table and the picture show (a regression's rows show R² instead: NumberRow)
    score_name = "cv accuracy"

    @property
    def score(self) -> float:
        return self.accuracy

    @property
    def score_std(self) -> float:
        return self.accuracy_std

    @staticmethod
    def headers(with_test: bool) -> list[str]:
        return (["rank", "backbone", "layer", "dim", "cv accuracy", "macro-F1", "log-loss", "C", "seconds"]
                + (["test accuracy"] if with_test else []))

    def cells(self, rank: int, with_test: bool) -> list[str]:
        row = [str(rank), self.model, self.layer + (" (embedding)" if self.embedding else ""), str(self.dim),
               f"{self.accuracy:.3f} +- {self.accuracy_std:.3f}", f"{self.macro_f1:.3f}", f"{self.log_loss:.3f}",
               f"{self.C:g}", f"{self.seconds:.1f}"]
        return row + (["-" if self.test_accuracy is None else f"{self.test_accuracy:.3f}"] if with_test else [])


@dataclass(frozen=True)
class ProbeReport:
    """Every probe, best first, and what was skipped."""

    data: str
    classes: tuple[str, ...]
    labelled: int
    test: int
    folds: int
    repeats: int
    rows: tuple[ProbeRow, ...]
    class_weight: str | None = None  # "balanced" when the probes weighted classes
    skipped: tuple[tuple[str, str], ...] = ()  # (model, why)
    passes: dict[str, Any] = field(default_factory=dict)  # model -> how its features were computed
    seconds: float = 0.0
    files: tuple[str, ...] = ()

    @property
    def best(self) -> ProbeRow | None:
        return self.rows[0] if self.rows else None

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "classes": list(self.classes), "labelled": self.labelled, "test": self.test,
                "folds": self.folds, "repeats": self.repeats, "class_weight": self.class_weight, "seconds": round(self.seconds, 2),
                "best": self.best.to_dict() if self.best else None, "rows": [r.to_dict() for r in self.rows],
                "skipped": [{"model": m, "why": w} for m, w in self.skipped], "passes": self.passes,
                "files": list(self.files)}

    def table(self) -> str:
        from zoo.render import table

        with_test = any(r.test_accuracy is not None for r in self.rows)
        kind = type(self.rows[0]) if self.rows else ProbeRow
        rows = [r.cells(rank, with_test) for rank, r in enumerate(self.rows, start=1)]
        lines = [table(kind.headers(with_test), rows)] if rows else ["no backbone could be probed"]
        ranked = "cross-validated R²" if kind is not ProbeRow else "cross-validated log-loss"
        lines.append(f"{self.labelled} labelled examples{f', {len(self.classes)} classes' if self.classes else ''}: "
                     f"{self.folds}-fold cross-validation x {self.repeats}, regularisation chosen inside each fold, "
                     f"ranked by {ranked}"
                     + (f"; test score on {self.test} held-out examples (not used to rank)" if self.test else ""))
        lines += [f"skipped {model}: {why}" for model, why in self.skipped]
        return "\n".join(lines)
