"""Multi-label data: a ``label`` cell of ``;``-separated names gives an example several labels.

The dataset formats read a label cell as one name (``"politics;business"``); this module turns
such a dataset into a label space (every name that occurs in some cell, sorted) and a 0/1 matrix
with one row per example, so every format, check and ``--skip-bad`` rule applies unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zoo.errors import InputError

__all__ = ["SEPARATOR", "LabelSets", "label_sets", "multi_label_rows", "rows_with_label_sets"]

SEPARATOR = ";"


@dataclass(frozen=True)
class LabelSets:
    """The labels of a multi-label dataset: ``names`` (the label space) and ``matrix`` (examples x
    labels, 0/1 as uint8)."""

    names: tuple[str, ...]
    matrix: Any

    def counts(self) -> dict[str, int]:
        return {name: int(n) for name, n in zip(self.names, self.matrix.sum(0))}


def _parts(cell: str, where: str) -> tuple[str, ...]:
    parts = [part.strip() for part in cell.split(SEPARATOR)]
    if any(not part for part in parts):
        raise InputError(f"{where}: the label {cell!r} has an empty name between {SEPARATOR!r}; write labels as "
                         f"'a{SEPARATOR}b' with no empty parts")
    return tuple(dict.fromkeys(parts))  # a name repeated in one cell counts once


def multi_label_rows(dataset: Any) -> list[str]:
    """Where ``dataset`` has examples with several labels (their ``where``), in order."""
    return [e.where for e in dataset.examples if SEPARATOR in dataset.classes[e.label]]


def label_sets(dataset: Any, names: tuple[str, ...] | None = None) -> LabelSets:
    """``dataset``'s labels as a matrix over ``names`` (default: every name it uses, sorted); a name
    outside a given ``names`` is an error naming its row."""
    import numpy as np

    rows = [_parts(dataset.classes[e.label], e.where) for e in dataset.examples]
    if names is None:
        names = tuple(sorted({name for row in rows for name in row}))
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(rows), len(names)), dtype=np.uint8)
    for r, (row, example) in enumerate(zip(rows, dataset.examples)):
        unknown = [name for name in row if name not in index]
        if unknown:
            raise InputError(f"{example.where}: label {unknown[0]!r} does not occur in the training data "
                             f"(its labels: {', '.join(names[:8])}{'...' if len(names) > 8 else ''}); fix the row "
                             f"or add training examples of it")
        matrix[r, [index[name] for name in row]] = 1
    return LabelSets(names=names, matrix=matrix)


def rows_with_label_sets(data: Any, modality: str) -> list[str]:
    """Where the data at ``data`` has ``;``-separated labels, read by its format without the content
    checks (a listing or a manifest parse: cheap), so a run can tell which kind it is first."""
    from zoo.data.opening import pick_format

    _, contribution = pick_format(data, None)
    raw = contribution.value.load(data, modality)
    return multi_label_rows(raw) if hasattr(raw, "classes") else []
